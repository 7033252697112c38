"""Bounces end to end: an email sent over real SMTP, the provider's signed bounce receipt,
and the next email to the address (a real aiosmtpd server on loopback counts what it hears).

A hard bounce puts the address on its tenant's suppression list, and the next
email to it ends SUPPRESSED with no mail transaction; a soft bounce is history
only, and the next email goes out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.integration.smtpsink import Server, settled

pytestmark = pytest.mark.every_store

ADA = "ada@example.com"
SIGNING_KEY = "key-mailgun-bounces-0123456789"


def settings_for(smtp: Server) -> dict[str, Any]:
    return {
        "port": free_port(),
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "none",
        "smtp_from": "Herald <noreply@herald.test>",
        "smtp_timeout": 2,
        "mailgun_signing_key": SIGNING_KEY,
    }


def failed(message_id: str, severity: str) -> bytes:
    """Mailgun's webhook for a failed delivery, signed as Mailgun signs it."""
    stamp, token = str(int(time.time())), secrets.token_hex(25)
    signature = hmac.new(SIGNING_KEY.encode(), (stamp + token).encode(), hashlib.sha256)
    data = {
        "id": secrets.token_hex(8), "timestamp": time.time(), "event": "failed",
        "severity": severity, "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": ADA, "message": {"headers": {"message-id": message_id.strip("<>")}},
        "delivery-status": {"code": 550 if severity == "permanent" else 452,
                            "description": "mailbox unavailable"},
    }  # fmt: skip
    signed = {"timestamp": stamp, "token": token, "signature": signature.hexdigest()}
    return json.dumps({"signature": signed, "event-data": data}).encode()


async def email(h: Any, status: str) -> dict[str, Any]:
    body = {"type": "EMAIL", "recipient": ADA, "subject": "Hi", "message": "Hello"}
    reply = await h.client.post("/api/notifications", json=body)
    assert reply.status_code == 201, reply.text
    found: dict[str, Any] = await h.wait_status(reply.json()["data"]["id"], status)
    return found["notification"]


async def bounce(h: Any, message_id: str, severity: str) -> None:
    async with httpx.AsyncClient(base_url=h.url, timeout=10) as mailgun:  # no API key
        reply = await mailgun.post(
            "/api/receipts/mailgun", content=failed(message_id, severity),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"]["matched"] == 1


async def test_a_hard_bounce_suppresses_and_the_next_email_is_never_sent(
    herald: Any, smtp: Server
) -> None:
    async with herald(**settings_for(smtp)) as h:
        first = await email(h, "SENT")
        assert first["providerMessageId"].startswith("<")
        await bounce(h, first["providerMessageId"], "permanent")
        assert (await h.wait_status(first["id"], "BOUNCED"))["notification"]["status"] == "BOUNCED"
        entries, _ = await h.engine.store.suppressions("default")
        assert [(e.recipient, e.reason, e.notification_id) for e in entries] == [
            (ADA, "bounce", first["id"])
        ]

        await settled(smtp)
        transactions = smtp.sink.transactions
        second = await email(h, "SUPPRESSED")
        assert second["provider"] is None
        assert smtp.sink.transactions == transactions, "the suppressed email reached SMTP"
        assert len(smtp.sink.messages) == 1


async def test_a_soft_bounce_is_history_only(herald: Any, smtp: Server) -> None:
    async with herald(**settings_for(smtp)) as h:
        first = await email(h, "SENT")
        await bounce(h, first["providerMessageId"], "temporary")
        found = (await h.client.get(f"/api/notifications/{first['id']}")).json()["data"]
        assert found["notification"]["status"] == "SENT"
        assert "Soft bounce: mailgun reported failed" in found["logs"][-1]["message"]
        assert (await h.engine.store.suppressions("default"))[1] == 0

        await email(h, "SENT")
        await settled(smtp)
        assert len(smtp.sink.messages) == 2

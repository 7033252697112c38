"""Statuses after SENT (receipts) and SUPPRESSED, as every reader shows them.

Notifications are driven through the store (claim, complete, apply receipts)
of a Herald that runs no worker, then read back over HTTP: the stats, the
queue counts, the Prometheus text, the dashboard and seed 001's signups.
"""

from __future__ import annotations

import re
import time
from typing import Any, get_args

import pytest

from herald.api.eventviews import SEED_STATUS
from herald.api.seedschemas import SeedStatus
from herald.models import Channel, NewNotification, Sent, Status, Suppressed
from herald.receipts.base import ReceiptEvent, ReceiptKind
from herald.store.base import Store
from herald.store.receipts import Suppression
from tests.scrape import Scrape

pytestmark = pytest.mark.every_store

SUPPRESSED_TO = "gone@example.com"


def receipt(message_id: str, kind: ReceiptKind, provider: str = "sendgrid") -> ReceiptEvent:
    return ReceiptEvent(provider, message_id, kind, kind.value, time.time())


async def send_all(store: Store, ids: list[str]) -> dict[str, str]:
    """Claim ``ids`` and complete each: Sent as ``msg-<id>`` (in 1 ms to sent@example.com,
    3 ms to the others), or Suppressed when the claim says so. Answers the message ids."""
    claims = {c.id: c for c in await store.claim(100, 30) if c.id in ids}
    assert set(claims) == set(ids)
    now = time.time()
    outcomes: list[Any] = []
    for c in claims.values():
        if c.suppressed:
            outcomes.append(Suppressed(c, c.suppressed, now))
        else:
            took = 1.0 if c.recipient == "sent@example.com" else 3.0
            outcomes.append(Sent(c, "capture", f"msg-{c.id}", took, now))
    assert await store.complete(outcomes) == len(ids)
    return {c.id: f"msg-{c.id}" for c in claims.values() if not c.suppressed}


async def one_of_each(store: Store) -> dict[str, str]:
    """Six notifications, one per status after SENT and one left SENT: status -> id."""
    await store.suppress([Suppression("default", SUPPRESSED_TO, "", "manual")])
    emails = await store.create(
        [NewNotification(Channel.EMAIL, f"{name}@example.com", "hi", subject="s")
         for name in ("delivered", "bounced", "complained", "sent")]
        + [NewNotification(Channel.EMAIL, SUPPRESSED_TO, "hi", subject="s")]
    )  # fmt: skip
    [sms] = await store.create([NewNotification(Channel.SMS, "+14155550100", "hi")])
    ids = [n.id for n in (*emails, sms)]
    sent = await send_all(store, ids)
    delivered, bounced, complained, still_sent, suppressed = (n.id for n in emails)
    applied = await store.apply_receipts([
        receipt(sent[delivered], ReceiptKind.DELIVERED),
        receipt(sent[bounced], ReceiptKind.BOUNCED),
        receipt(sent[complained], ReceiptKind.COMPLAINED),
        receipt(sent[sms.id], ReceiptKind.UNDELIVERED, provider="twilio"),
    ])  # fmt: skip
    assert applied.changed == 4
    moved = {("EMAIL", "DELIVERED"): 1, ("EMAIL", "BOUNCED"): 1, ("EMAIL", "COMPLAINED"): 1,
             ("SMS", "UNDELIVERED"): 1}  # fmt: skip
    assert applied.moves == moved  # what the API counts (notifications_delivered_total, ...)
    return {"DELIVERED": delivered, "BOUNCED": bounced, "COMPLAINED": complained,
            "SENT": still_sent, "SUPPRESSED": suppressed, "UNDELIVERED": sms.id}  # fmt: skip


async def test_stats_and_queue_counts(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await one_of_each(h.engine.store)
        stats = (await h.client.get("/api/notifications/stats/system")).json()["data"]
        by_status = stats["byStatus"]
        for status in ("DELIVERED", "BOUNCED", "COMPLAINED", "SENT", "SUPPRESSED", "UNDELIVERED"):
            assert by_status[status] == 1, status
        # Reached: DELIVERED, COMPLAINED, SENT; not: BOUNCED, UNDELIVERED. SUPPRESSED is neither.
        assert stats["successRate"] == 60.0
        # Of every notification a provider accepted: a receipt does not unsay the send's time.
        assert stats["averageProcessingTime"] == 2.6

        queues = (await h.client.get("/api/queue-health")).json()["data"]["queues"]
        assert queues["email"]["completed"] == 5 and queues["email"]["failed"] == 0
        assert queues["sms"]["completed"] == 1 and queues["sms"]["failed"] == 0
        assert queues["dlq"]["failed"] == 0


async def test_prometheus_shows_each_status(herald: Any) -> None:
    """The ``notifications{status}`` gauge reads the store; the counters count events as
    the API and workers make them (``tests/integration/test_metrics.py``)."""
    async with herald(deliver=False) as h:
        await one_of_each(h.engine.store)
        reply = await h.client.get("/api/metrics")
        assert reply.status_code == 200
        found = Scrape(reply.text)
        for status in ("DELIVERED", "BOUNCED", "COMPLAINED", "UNDELIVERED", "SUPPRESSED", "SENT"):
            assert found.value("notifications", status=status) == 1, status
        assert found.value("notifications", status="FAILED") == 0


async def test_dashboard_shows_each_status(herald: Any) -> None:
    async with herald(deliver=False) as h:
        ids = await one_of_each(h.engine.store)
        overview = (await h.client.get("/dashboard")).text
        for status in ("DELIVERED", "BOUNCED", "COMPLAINED", "UNDELIVERED", "SUPPRESSED"):
            card = (
                f'<a class="card status-{status.lower()}" href="/dashboard/notifications?'
                f'status={status}"><span class="label">{status.capitalize()}</span>'
                '<span class="value">1</span></a>'
            )
            assert card in overview, status
            badge = f'<span class="badge status-{status.lower()}">{status}</span>'
            assert badge in overview, status  # in the recent notifications
        assert "60.0 %" in overview

        listed = (await h.client.get("/dashboard/notifications", params={"status": "BOUNCED"})).text
        assert '<option value="BOUNCED" selected>' in listed
        assert '<option value="SUPPRESSED">' in listed
        assert ids["BOUNCED"] in listed and ids["DELIVERED"] not in listed
        assert "1 notification," in listed

        css = (await h.client.get("/dashboard/static/dashboard.css")).text
        for status in ("delivered", "bounced", "complained", "undelivered", "suppressed"):
            assert re.search(rf"\.status-{status}\b[^{{]*\{{[^}}]*background", css), status
            assert re.search(rf"\.card\.status-{status}\b[^{{]*\{{[^}}]*border-left", css), status


SIGNUP = {"username": "ada", "email": "ada@example.com", "userId": 1}


async def test_seed_001_welcome_email_says_what_receipts_said(herald: Any) -> None:
    async with herald(deliver=False) as h:
        store = h.engine.store
        await store.suppress([Suppression("default", SUPPRESSED_TO, "", "manual")])
        made = {}
        for user, email in enumerate(("ada@example.com", "bob@example.com", SUPPRESSED_TO)):
            body = {**SIGNUP, "userId": user, "email": email}
            reply = await h.client.post("/api/signups", json=body)
            assert reply.status_code == 201, reply.text
            made[email] = reply.json()["data"]

        async def seed_status(email: str) -> str:
            signup_id = made[email]["id"]
            reply = await h.client.get(f"/api/signups/{signup_id}/welcome-email-status")
            return str(reply.json()["data"]["welcomeEmail"]["status"])

        notes = {email: m["welcomeEmail"]["notificationId"] for email, m in made.items()}
        sent = await send_all(store, list(notes.values()))
        assert [await seed_status(e) for e in notes] == ["sent", "sent", "suppressed"]

        await store.apply_receipts([
            receipt(sent[notes["ada@example.com"]], ReceiptKind.DELIVERED),
            receipt(sent[notes["bob@example.com"]], ReceiptKind.BOUNCED),
        ])  # fmt: skip
        assert [await seed_status(e) for e in notes] == ["delivered", "bounced", "suppressed"]

        listed = (await h.client.get("/api/signups")).json()["data"]["signups"]
        assert {s["email"]: s["welcomeEmail"]["status"] for s in listed} == {
            "ada@example.com": "delivered", "bob@example.com": "bounced",
            SUPPRESSED_TO: "suppressed",
        }  # fmt: skip
        emails = (await h.client.get("/api/signups/statistics")).json()["data"]["welcomeEmails"]
        assert (emails["total"], emails["delivered"], emails["bounced"]) == (3, 1, 1)
        assert (emails["suppressed"], emails["sent"]) == (1, 0)


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_a_seed_001_word(status: Status) -> None:
    assert SEED_STATUS[status] in get_args(SeedStatus)

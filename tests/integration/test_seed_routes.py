"""The seeds' routes (seeds 000 and 001) as aliases over events, and what they keep secret."""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import structlog

from herald.api import signups
from herald.api.schemas import Envelope
from herald.api.seedschemas import (
    SeedRecord,
    SignupList,
    SignupOut,
    SignupStatistics,
    SignupStatus,
)

# The curl examples of seed 000, as written.
SIGNUP = {
    "username": "testuser",
    "email": "test@example.com",
    "firstName": "Test",
    "lastName": "User",
    "userId": 12345,
}
LOGIN = {
    "username": "testuser",
    "email": "test@example.com",
    "userId": 12345,
    "ipAddress": "192.168.1.1",
    "userAgent": "Mozilla/5.0...",
}
RESET = {
    "username": "testuser",
    "email": "test@example.com",
    "userId": 12345,
    "resetToken": "abc123def456",
}
# Seed 001 names these routes without bodies; these are the bodies Herald takes.
PURCHASE = {
    "userId": 12345,
    "email": "test@example.com",
    "orderId": "ORD-1001",
    "items": [{"name": "Notebook", "quantity": 2, "price": 4.5}],
    "total": 9.0,
    "currency": "USD",
}
FRIEND = {"fromUserId": 12345, "fromUsername": "testuser", "toUserId": 67890,
          "toEmail": "friend@example.com"}  # fmt: skip
VERIFY = re.compile(r"/api/signups/verify/([A-Za-z0-9_-]+)")


def mailbox_bodies(h: Any) -> list[tuple[str, str, str | None]]:
    """What the capture provider 'delivered', read from the store's file, not the API."""
    with sqlite3.connect(h.engine.settings.sqlite_path) as conn:
        return conn.execute("SELECT subject, body, html FROM mailbox ORDER BY at").fetchall()


async def verification_token(h: Any, recipient: str) -> str:
    with sqlite3.connect(h.engine.settings.sqlite_path) as conn:
        [(body,)] = conn.execute(
            "SELECT body FROM mailbox WHERE recipient = ? AND body LIKE '%/verify/%'", (recipient,)
        ).fetchall()
    found = VERIFY.search(body)
    assert found is not None
    return found.group(1)


async def test_seed_000_curl_examples_work_as_written(herald: Any) -> None:
    async with herald() as h:
        signup = await h.client.post("/api/signups", json=SIGNUP)
        assert signup.status_code == 201, signup.text
        body = signup.json()
        assert body["success"] is True and body["message"] == "Signup created; welcome email queued"
        made = Envelope[SignupOut].model_validate(body).data
        assert (made.userId, made.username, made.email) == (12345, "testuser", "test@example.com")
        assert made.emailVerified is False and made.welcomeEmail.status == "queued"

        for path, sent, kind in [
            ("/api/logins", LOGIN, "login"),
            ("/api/reset-passwords", RESET, "reset-password"),
            ("/api/purchases", PURCHASE, "purchase"),
            ("/api/friend-requests", FRIEND, "friend-request"),
        ]:
            reply = await h.client.post(path, json=sent)
            assert reply.status_code == 201, (path, reply.text)
            record = Envelope[SeedRecord].model_validate(reply.json()).data
            assert record.type == kind and len(record.notificationIds) == 1
            assert reply.json()["data"]["userId" if "userId" in sent else "fromUserId"] == 12345
            await h.wait_status(record.notificationIds[0], "SENT")

        delivered = {subject: text for subject, text, _ in mailbox_bodies(h)}
        assert "abc123def456" in delivered["Reset your password"]
        assert "192.168.1.1" in delivered["New sign-in to your account"]
        assert "2 x Notebook: 4.50 USD" in delivered["Your receipt for order ORD-1001"]
        assert (
            "testuser would like to be your friend"
            in delivered["testuser sent you a friend request"]
        )


async def test_welcome_email_status_once_sent(herald: Any) -> None:
    async with herald() as h:
        made = (await h.client.post("/api/signups", json=SIGNUP)).json()["data"]
        await h.wait_status(made["welcomeEmail"]["notificationId"], "SENT")
        for key in (made["id"], "12345"):  # by signup id, or by the seeds' userId
            reply = await h.client.get(f"/api/signups/{key}/welcome-email-status")
            assert reply.status_code == 200
            status = Envelope[SignupStatus].model_validate(reply.json()).data
            assert status.signupId == made["id"] and status.emailVerified is False
            email = status.welcomeEmail
            # "delivered" waits for a receipt (test_statuses_after_sent.py)
            assert (email.status, email.notificationStatus, email.attempts) == (
                "sent", "SENT", 1
            )  # fmt: skip
            assert email.messageId and email.messageId.startswith("capture-")
            assert [e.status for e in email.deliveryHistory] == [
                "PENDING", "QUEUED", "PROCESSING", "SENT"
            ]  # fmt: skip
        missing = await h.client.get("/api/signups/nope/welcome-email-status")
        assert missing.status_code == 404


async def test_verification_token_works_once(herald: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with herald() as h:
        made = (await h.client.post("/api/signups", json=SIGNUP)).json()["data"]
        await h.wait_status(made["welcomeEmail"]["notificationId"], "SENT")
        token = await verification_token(h, "test@example.com")

        verified = await h.client.post(f"/api/signups/verify/{token}")
        assert verified.status_code == 200 and verified.json()["message"] == "Email verified"
        shown = Envelope[SignupOut].model_validate(verified.json()).data
        assert shown.emailVerified is True and shown.verifiedAt is not None

        again = await h.client.post(f"/api/signups/verify/{token}")
        assert again.status_code == 409 and again.json()["success"] is False
        unknown = await h.client.post("/api/signups/verify/not-a-token")
        assert unknown.status_code == 404

        listed = (await h.client.get("/api/signups")).json()["data"]["signups"]
        assert listed[0]["emailVerified"] is True

        other = {**SIGNUP, "email": "late@example.com", "userId": 2}
        late = (await h.client.post("/api/signups", json=other)).json()["data"]
        await h.wait_status(late["welcomeEmail"]["notificationId"], "SENT")
        monkeypatch.setattr(signups, "VERIFY_TTL", -60.0)  # every token is now too old
        expired = await h.client.post(
            f"/api/signups/verify/{await verification_token(h, 'late@example.com')}"
        )
        assert expired.status_code == 410


async def test_list_and_statistics(herald: Any) -> None:
    async with herald() as h:
        for i in range(3):
            body = {**SIGNUP, "userId": i, "email": f"u{i}@example.com"}
            made = (await h.client.post("/api/signups", json=body)).json()["data"]
            await h.wait_status(made["welcomeEmail"]["notificationId"], "SENT")
        await h.client.post(f"/api/signups/verify/{await verification_token(h, 'u1@example.com')}")

        page = await h.client.get("/api/signups", params={"page": 1, "limit": 2})
        listed = Envelope[SignupList].model_validate(page.json()).data
        assert [s.userId for s in listed.signups] == [2, 1]  # newest first
        assert listed.pagination.model_dump() == {
            "currentPage": 1, "totalPages": 2, "totalItems": 3, "itemsPerPage": 2
        }  # fmt: skip
        assert (await h.client.get("/api/signups", params={"limit": 101})).status_code == 422

        stats = await h.client.get("/api/signups/statistics")
        data = Envelope[SignupStatistics].model_validate(stats.json()).data
        assert (data.totalSignups, data.verifiedSignups, data.unverifiedSignups) == (3, 1, 2)
        assert data.verificationRate == 33.33 and data.signupsLast24h == 3
        assert data.welcomeEmails["total"] == 3 and data.welcomeEmails["sent"] == 3
        assert data.welcomeEmails["delivered"] == 0  # no receipt yet


async def test_failed_welcome_emails_are_listed(herald: Any) -> None:
    failing = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
    async with herald(**failing) as h:
        made = (await h.client.post("/api/signups", json=SIGNUP)).json()["data"]
        await h.wait_status(made["welcomeEmail"]["notificationId"], "FAILED")
        await h.client.post("/api/logins", json=LOGIN)  # fails too, but is not a signup

        failed = await h.client.get("/api/signups/welcome-emails/failed")
        listed = Envelope[SignupList].model_validate(failed.json()).data
        [signup] = listed.signups
        assert signup.id == made["id"] and signup.welcomeEmail.status == "failed"
        assert signup.welcomeEmail.error == "injected failure"
        assert listed.pagination.totalItems == 1

        stats = (await h.client.get("/api/signups/statistics")).json()["data"]
        assert stats["welcomeEmails"]["failed"] == 1 and stats["welcomeEmails"]["sent"] == 0


async def _every_get(h: Any) -> dict[str, str]:
    """Every GET route of the OpenAPI document, with each id the store knows filled in."""
    spec = (await h.client.get("/openapi.json")).json()
    notes = (await h.client.get("/api/notifications", params={"limit": 100})).json()["data"]
    events = (await h.client.get("/api/events")).json()["data"]["events"]
    templates = (await h.client.get("/api/templates")).json()["data"]["templates"]
    values = {
        "notification_id": [n["_id"] for n in notes["notifications"]],
        "event_id": [e["id"] for e in events],
        "signup_id": [e["id"] for e in events if e["type"] == "signup"] + ["12345"],
        "name": sorted({t["name"] for t in templates} | {"signup", "reset-password"}),
    }
    seen: dict[str, str] = {}
    for path, operations in spec["paths"].items():
        if "get" not in operations or path in ("/openapi.json", "/docs", "/redoc"):
            continue
        names = re.findall(r"{(\w+)}", path)
        if len(names) > 1:
            continue
        urls = [path] if not names else [path.replace(f"{{{names[0]}}}", v)
                                         for v in values.get(names[0], [])]  # fmt: skip
        for url in urls:
            reply = await h.client.get(url)
            seen[url] = reply.text
    return seen


async def test_no_endpoint_or_log_line_shows_a_password_or_token(
    herald: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    password, reset_token = "Pa55-w0rd-correct-horse", "rst-9f8e7d6c5b4a"
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logged:
        async with herald() as h:
            answers = []
            signup = await h.client.post("/api/signups", json={**SIGNUP, "password": password})
            secret_reset = {**RESET, "resetToken": reset_token}
            reset = await h.client.post("/api/reset-passwords", json=secret_reset)
            via_events = await h.client.post(
                "/api/events", json={"type": "reset-password", "data": secret_reset}
            )
            answers += [signup.text, reset.text, via_events.text]
            for reply in (signup, reset, via_events):
                assert reply.status_code == 201, reply.text
            for nid in (signup.json()["data"]["welcomeEmail"]["notificationId"],
                        reset.json()["data"]["notificationIds"][0]):  # fmt: skip
                await h.wait_status(nid, "SENT")
            verify = await verification_token(h, "test@example.com")

            pages = await _every_get(h)
            assert "/api/mailbox" in pages and "/api/notifications/stats/system" in pages
            assert any(p.startswith("/api/signups/") for p in pages)
            detail = [p for p in pages if p.startswith("/api/notifications/0")]
            assert len(detail) == 3, "every notification's detail was read"
            for url, text in [*pages.items(), *(("POST", a) for a in answers)]:
                for secret in (password, reset_token, verify):
                    assert secret not in text, (url, secret)
            assert "[redacted: contains a secret]" in pages["/api/mailbox"]

            # Delivery did carry the secrets: the capture provider's mailbox holds them.
            delivered = " ".join(f"{b} {h_}" for _, b, h_ in mailbox_bodies(h))
            assert reset_token in delivered and verify in delivered
            # The password was never written anywhere, not even into the WAL.
            path = Path(h.engine.settings.sqlite_path)
            files = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
            assert password.encode() not in files
            with sqlite3.connect(path) as conn:
                [(hashed,)] = conn.execute("SELECT hashed FROM events WHERE type = 'signup'")
            assert hashed.startswith('{"password":"scrypt$')

    assert any(entry["event"] == "event_accepted" for entry in logged), "logs were captured"
    captured = capsys.readouterr()
    everything = " ".join(
        [repr(logged), captured.out, captured.err, *(r.getMessage() for r in caplog.records)]
    )
    for secret in (password, reset_token, verify):
        assert secret not in everything

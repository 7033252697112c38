"""End to end in one process: API, worker, retry ladder, DLQ, priority lanes, real SMTP."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port

pytestmark = pytest.mark.every_store

FAST_LADDER = {
    "retry_backoff": ["0", "0.05", "0.1"],
    "retry_1_delay_ms": 100,
    "retry_2_delay_ms": 100,
}


class Sink:
    """A real SMTP server's handler: keeps every message, or answers ``reply`` to DATA."""

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reply:
            return self.reply
        assert isinstance(envelope.content, bytes)
        self.envelopes.append(envelope)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Sink, int]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


def smtp_settings(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_from": "Herald <noreply@herald.test>",
        "smtp_timeout": 2,
        **extra,
    }


async def test_email_arrives_over_real_smtp(herald: Any, smtp_sink: tuple[Sink, int]) -> None:
    sink, port = smtp_sink
    async with herald(**smtp_settings(port)) as h:
        body = {
            "type": "EMAIL",
            "recipient": "alice@example.com",
            "subject": "Your code",
            "message": "Your code is 123456",
            "html": "<p>Your code is <b>123456</b></p>",
        }
        created = (await h.client.post("/api/notifications", json=body)).json()["data"]
        detail = await h.wait_status(created["_id"], "SENT")
    [message] = sink.messages
    assert message["From"] == "Herald <noreply@herald.test>"
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "Your code"
    assert message["X-Herald-Notification-Id"] == created["_id"]
    assert message.get_body(("plain",)).get_content().strip() == "Your code is 123456"  # type: ignore[union-attr]
    assert "<b>123456</b>" in message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert detail["notification"]["providerMessageId"] == message["Message-ID"]
    assert sink.envelopes[0].rcpt_tos == ["alice@example.com"]


async def test_smtp_down_climbs_the_ladder_into_the_dlq(herald: Any) -> None:
    closed = free_port()  # nothing listens here
    async with herald(**smtp_settings(closed), **FAST_LADDER) as h:
        created = (
            await h.client.post(
                "/api/notifications",
                json={
                    "type": "EMAIL",
                    "recipient": "a@example.com",
                    "subject": "s",
                    "message": "m",
                },
            )
        ).json()["data"]
        detail = await h.wait_status(created["_id"], "FAILED", timeout=15)
    note = detail["notification"]
    assert note["queue"] == "dlq" and note["attempts"] == 5 and note["failedAt"]
    assert note["provider"] == "smtp" and note["error"]
    statuses = [log["status"] for log in detail["logs"]]
    assert statuses == ["PENDING", "QUEUED"] + ["PROCESSING", "RETRYING"] * 4 + [
        "PROCESSING",
        "FAILED",
    ]
    queues = [log["metadata"].get("queue") for log in detail["logs"] if log["status"] == "RETRYING"]
    assert queues == ["email", "email", "retry-1", "retry-2"]
    assert all(log["metadata"]["error"] for log in detail["logs"][3::2])
    assert "retries exhausted" in detail["logs"][-1]["message"]


async def test_permanent_smtp_refusal_skips_the_ladder(herald: Any) -> None:
    sink = Sink(reply="550 5.1.1 mailbox unavailable")
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        async with herald(**smtp_settings(port), **FAST_LADDER) as h:
            created = (
                await h.client.post(
                    "/api/notifications",
                    json={
                        "type": "EMAIL",
                        "recipient": "gone@example.com",
                        "subject": "s",
                        "message": "m",
                    },
                )
            ).json()["data"]
            detail = await h.wait_status(created["_id"], "FAILED")
    finally:
        controller.stop()
    note = detail["notification"]
    assert note["attempts"] == 1 and note["queue"] == "dlq" and "550" in note["error"]
    assert detail["logs"][-1]["metadata"]["permanent"] is True


async def test_critical_does_not_wait_behind_a_low_backlog(herald: Any) -> None:
    """Every ordinary slot holds a slow LOW email; the CRITICAL SMS (a fast provider)
    goes out at once only because two slots are kept for HIGH and CRITICAL: without
    them it would wait for a LOW send to end, two seconds."""
    settings = {
        "email_providers": ["fault"],
        "fault_latency_ms": 2000,
        "worker_concurrency": 8,
        "reserved_slots": 2,
        "claim_batch": 8,
    }
    async with herald(deliver=False, **settings) as api_only:
        low = {
            "type": "EMAIL",
            "recipient": "a@example.com",
            "subject": "s",
            "message": "m",
            "priority": "LOW",
        }
        for _ in range(30):  # 30 LOW at 6 slots and 2 s each: about 10 s of backlog
            assert (await api_only.client.post("/api/notifications", json=low)).status_code == 201
        db = api_only.engine.settings.database_url
    async with herald(**{**settings, "database_url": db}) as h:
        worker = h.engine.worker
        assert worker is not None
        deadline = time.monotonic() + 5
        while worker.inflight < 6:  # every ordinary slot is taken by LOW work
            assert time.monotonic() < deadline, f"only {worker.inflight} in flight"
            await asyncio.sleep(0.01)
        started = time.perf_counter()
        sms = {"type": "SMS", "recipient": "+14155550123", "message": "m", "priority": "CRITICAL"}
        critical = (await h.client.post("/api/notifications", json=sms)).json()["data"]
        await h.wait_status(critical["_id"], "SENT")
        waited = time.perf_counter() - started
        stats = (await h.client.get("/api/notifications/stats/system")).json()["data"]
    assert waited < 1.0, f"CRITICAL took {waited:.2f}s: it waited for a LOW send to end"
    assert stats["byStatus"]["SENT"] < 10, "the LOW backlog had drained first: proved nothing"


async def test_an_attempt_is_cut_at_its_lease_deadline_and_recorded_before_it(
    herald: Any,
) -> None:
    """A provider slower than the lease: the attempt ends at the lease less its margin
    and is a retry, recorded while the lease still holds, so the sweeper never hands
    the row to anyone else (which would send it twice)."""
    settings = {
        "email_providers": ["fault"],
        "fault_latency_ms": 3000,
        "lease_seconds": 2,
        "sweep_interval": 0.1,
        "max_attempts": 2,
    }
    async with herald(**settings) as h:
        body = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}
        created = (await h.client.post("/api/notifications", json=body)).json()["data"]
        started = time.monotonic()
        detail = await h.wait_status(created["_id"], "RETRYING", "FAILED", timeout=6)
        took = time.monotonic() - started
    messages = [log["message"] for log in detail["logs"]]
    assert not any(m.startswith("Stalled") for m in messages), messages
    retrying = [log for log in detail["logs"] if log["status"] == "RETRYING"]
    assert (
        retrying and "did not answer within the attempt's 1.8s" in retrying[0]["metadata"]["error"]
    ), detail["logs"]
    assert took < 2.0 + 0.5, "recorded by the end of the lease (plus the polling's slack)"


async def test_stop_finishes_in_flight_work_without_duplicates(herald: Any) -> None:
    async with herald(email_providers=["fault"], fault_latency_ms=500, worker_concurrency=16) as h:
        body = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}

        async def post() -> str:
            reply = await h.client.post("/api/notifications", json=body)
            return str(reply.json()["data"]["_id"])

        # Posted at once: three rounds of 500 ms sends, far longer than posting takes.
        ids = await asyncio.gather(*(post() for _ in range(48)))
        await asyncio.sleep(0.1)  # 16 in flight
        h.engine.stop_delivery()
        await h.engine.wait()
        statuses = []
        for notification_id in ids:
            data = (await h.client.get(f"/api/notifications/{notification_id}")).json()["data"]
            statuses.append(data["notification"]["status"])
            logged = [log["status"] for log in data["logs"]]
            # Whatever was in flight at the stop finished (no release, no second send).
            assert logged.count("PROCESSING") == logged.count("SENT") <= 1, logged
        assert set(statuses) <= {"SENT", "QUEUED"}
        assert statuses.count("SENT") >= 12, "the in-flight sends were cut short"
        assert statuses.count("QUEUED") > 0, "everything was sent before the stop: proved nothing"

"""``GET /api/metrics`` over real HTTP: counters that only grow, gauges read from the store,
each sample once, and the delivery journal's line per outcome.

Counters live in the test process's registry, shared by every Herald a test
starts: each test reads them before it acts and judges the difference.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from herald import retention
from herald.api.ingest import accept_new
from herald.models import Channel, Dead, NewNotification
from herald.store.base import BreakerState
from tests.scrape import Scrape, promtool_check

EMAIL = {"type": "EMAIL", "recipient": "ada@example.com", "subject": "s", "message": "hi"}
SMS = {"type": "SMS", "recipient": "+14155550123", "message": "hi"}

#: Every family an operator's rules may name, with its type.
FAMILIES = {
    "notifications_created_total": "counter", "notifications_sent_total": "counter",
    "notifications_failed_total": "counter", "notifications_retried_total": "counter",
    "notifications_deferred_total": "counter", "notifications_delivered_total": "counter",
    "notifications_bounced_total": "counter", "notifications_undelivered_total": "counter",
    "notifications_complained_total": "counter", "notifications_suppressed_total": "counter",
    "herald_claims_total": "counter", "herald_receipts_total": "counter",
    "http_requests_total": "counter", "http_request_duration_seconds": "histogram",
    "notification_processing_duration_seconds": "histogram", "queue_depth": "gauge",
    "herald_queue_waiting": "gauge", "herald_oldest_waiting_seconds": "gauge",
    "herald_dlq_size": "gauge", "herald_breaker_open": "gauge", "herald_workers": "gauge",
    "herald_inflight_sends": "gauge", "notifications": "gauge",
}  # fmt: skip


async def scrape(h: Any) -> Scrape:
    reply = await h.client.get("/api/metrics")
    assert reply.status_code == 200, reply.text
    return Scrape(reply.text)


async def until(h: Any, check: Callable[[Scrape], bool], timeout: float = 10) -> Scrape:
    """Scrape until ``check`` holds: a worker counts right after its commit returns, which
    a reader may see first."""
    deadline = time.monotonic() + timeout
    while True:
        found = await scrape(h)
        if check(found):
            return found
        assert time.monotonic() < deadline, f"the scrape never got there:\n{found.text}"
        await asyncio.sleep(0.02)


async def post(h: Any, body: dict[str, Any]) -> str:
    reply = await h.client.post("/api/notifications", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["_id"])


@pytest.mark.every_store
async def test_counters_never_step_back_across_retention_and_a_dlq_delete(herald: Any) -> None:
    failing_email = {"email_providers": ["fault"], "fault_failure_rate": 1.0,
                     "fault_error": "permanent", "failed_retention_days": 1}  # fmt: skip
    async with herald(**failing_email) as h:
        start = await scrape(h)
        texts = [await post(h, SMS) for _ in range(2)]
        mails = [await post(h, EMAIL) for _ in range(2)]
        for note in texts:
            provider = (await h.wait_status(note, "SENT"))["notification"]["provider"]
        for note in mails:
            await h.wait_status(note, "FAILED")

        def grown(s: Scrape, name: str, **labels: str) -> float:
            return s.count(name, **labels) - start.count(name, **labels)

        def counted(s: Scrape) -> tuple[float, ...]:
            return (
                grown(s, "notifications_created_total", type="SMS"),
                grown(s, "notifications_created_total", type="EMAIL"),
                grown(s, "notifications_sent_total", type="SMS", provider=provider),
                grown(s, "notifications_failed_total", type="EMAIL"),
                grown(s, "herald_claims_total"),
            )

        before = await until(h, lambda s: counted(s) == (2, 2, 2, 2, 4))
        assert before.value("herald_dlq_size") == 2
        assert before.value("notifications", status="SENT") == 2

        assert (await h.client.delete(f"/api/dlq/{mails[0]}")).status_code == 200
        cleaned = await retention.clean_once(
            h.engine.store, h.engine.settings, now=time.time() + 400 * 86_400
        )
        assert (cleaned.notifications, cleaned.failed) == (2, 1)
        after = await scrape(h)

    # The rows are gone; what happened to them was counted and stays counted.
    assert after.value("herald_dlq_size") == 0
    assert after.value("notifications", status="SENT") == 0
    assert counted(after) == (2, 2, 2, 2, 4)
    stepped_back = {
        key: (value, after.samples.get(key))
        for key, value in before.growing().items()
        if after.samples.get(key, 0.0) < value
    }
    assert not stepped_back


@pytest.mark.every_store
async def test_the_store_gauges_at_a_scrape(herald: Any) -> None:
    async with herald(deliver=False) as h:
        store = h.engine.store
        asked = time.time()
        await post(h, {**EMAIL, "delaySeconds": 1})  # waits from a second after it is made
        [dead] = await store.create([NewNotification(Channel.SMS, "+14155550123", "x")])
        [claim] = await store.claim(10, 30)  # the SMS: the email is not due yet
        await store.complete([Dead(claim, "twilio", "21211 invalid number", True, time.time())])
        now = time.time()
        for instance, provider, state in (
            ("vm/worker-1", "smtp", "open"), ("vm/worker-1", "webhook:hooks.example", "half-open"),
            ("vm/worker-1", "webhook:other.example", "closed"), ("vm/worker-2", "smtp", "closed"),
        ):  # fmt: skip
            await store.heartbeat(f"{instance}#1")  # breakers show while their process lives
            await store.record_breaker(
                BreakerState(instance, provider, state, 1, now, f"{instance}#1")
            )
        await store.worker_seen("vm/worker-1#4242")

        first = await until(h, lambda s: (s.value("herald_oldest_waiting_seconds",
                                                  queue="email") or 0) > 0.2)  # fmt: skip
        waited = first.value("herald_oldest_waiting_seconds", queue="email")
        assert waited is not None and waited <= time.time() - (asked + 1)
        assert first.value("herald_oldest_waiting_seconds", queue="sms") == 0
        assert first.value("herald_queue_waiting", queue="email", priority="MEDIUM") == 1
        assert first.value("herald_queue_waiting", queue="email", priority="HIGH") == 0
        assert first.value("queue_depth", queue="email") == 1
        assert first.value("herald_dlq_size") == 1
        assert first.value("herald_workers") == 1
        open_ = {(p, i): first.value("herald_breaker_open", provider=p, process=i)
                 for p, i in (("smtp", "vm/worker-1"), ("webhook", "vm/worker-1"),
                              ("smtp", "vm/worker-2"))}  # fmt: skip
        assert open_ == {("smtp", "vm/worker-1"): 1, ("webhook", "vm/worker-1"): 1,
                         ("smtp", "vm/worker-2"): 0}  # fmt: skip
        assert not [k for k in first.samples if dict(k[1]).get("provider", "").count(":")]

        # They follow the store, both ways.
        assert (await h.client.delete(f"/api/dlq/{dead.id}")).status_code == 200
        closed = BreakerState("vm/worker-1", "smtp", "closed", 0, time.time(), "vm/worker-1#1")
        await store.record_breaker(closed)
        second = await scrape(h)
        assert second.value("herald_dlq_size") == 0
        assert second.value("herald_breaker_open", provider="smtp", process="vm/worker-1") == 0


async def test_a_scrape_has_every_family_and_each_sample_once(herald: Any) -> None:
    """Prometheus refuses a scrape with a sample twice; ``Scrape`` fails on one."""
    async with herald(sms_providers=["fault"], fault_failure_rate=1.0) as h:
        await h.wait_status(await post(h, EMAIL), "SENT")
        await h.wait_status(await post(h, SMS), "RETRYING", "FAILED")
        bulk = await h.client.post("/api/notifications/bulk", json={"notifications": [EMAIL, SMS]})
        assert bulk.status_code == 201, bulk.text
        reply = await h.client.get("/api/metrics")
    Scrape(reply.text)
    promtool_check(reply.text)
    declared = dict(
        line.split(" ")[2:4] for line in reply.text.splitlines() if line.startswith("# TYPE ")
    )
    assert {name: declared.get(name) for name in FAMILIES} == FAMILIES
    assert len(declared) == len(set(declared))


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """What Herald's loggers write, for the test to read (the structlog set-up put back)."""
    saved = structlog.get_config()
    written = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(written))
    try:
        yield written
    finally:
        structlog.configure(**saved)


def delivery_lines(text: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [entry for entry in found if entry.get("event") == "delivery"]


async def test_each_delivery_outcome_writes_one_line(herald: Any, log_output: io.StringIO) -> None:
    settings = {"email_providers": ["fault", "capture"], "sms_providers": ["fault"],
                "fault_failure_rate": 1.0, "fault_error": "transient"}  # fmt: skip
    with structlog.testing.capture_logs() as logged:
        async with herald(**settings) as h:
            mail = await post(h, EMAIL)  # fault fails, capture takes it
            text = await post(h, SMS)  # fault fails, and there is no other
            await h.wait_status(mail, "SENT")
            await h.wait_status(text, "RETRYING", "FAILED")
    lines = delivery_lines(log_output.getvalue())
    [sent] = [line for line in lines if line["notificationId"] == mail]
    assert sent["outcome"] == "sent" and sent["provider"] == "capture"
    assert (sent["tenant"], sent["channel"], sent["attempt"]) == ("default", "EMAIL", 1)
    assert sent["error"] is None and sent["level"] == "info"
    assert 0 <= sent["durationMs"] < 10_000 and sent["timestamp"].endswith("Z")
    first = [line for line in lines if line["notificationId"] == text and line["attempt"] == 1]
    assert len(first) == 1
    assert first[0]["outcome"] == "retry" and first[0]["provider"] == "fault"
    assert first[0]["error"] == "injected failure" and first[0]["level"] == "warning"
    failed_over = [e for e in logged if e["event"] == "provider_failed_over"]
    assert {e["notificationId"] for e in failed_over} >= {mail, text}


async def test_a_row_an_idempotency_key_already_names_is_not_counted_again(herald: Any) -> None:
    async with herald(deliver=False) as h:
        start = await scrape(h)
        new = NewNotification(Channel.PUSH, "device-token-0123456789", "hi", idempotency_key="k-1")
        first = await accept_new(h.engine, new)
        again = await accept_new(h.engine, new)  # the key's record gone, the row still there
        assert first["data"]["_id"] == again["data"]["_id"]
        end = await scrape(h)
    grown = end.count("notifications_created_total", type="PUSH")
    assert grown - start.count("notifications_created_total", type="PUSH") == 1

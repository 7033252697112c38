"""Failover between providers, circuit breakers in the API, status callbacks."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest
from aiosmtpd.controller import Controller

from herald import engine
from tests.conftest import free_port
from tests.integration.fakehttp import Reply, Seen, fake_server
from tests.integration.test_delivery import Sink

pytestmark = pytest.mark.every_store

EMAIL = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}


async def test_first_smtp_down_all_mail_through_the_second_and_its_breaker_opens(
    herald: Any,
) -> None:
    sink = Sink()
    port = free_port()
    backup = Controller(sink, hostname="127.0.0.1", port=port)
    backup.start()
    try:
        settings = {
            "email_providers": ["smtp", "smtp_backup"],
            "smtp_host": "127.0.0.1",
            "smtp_port": free_port(),  # nothing listens: the primary is down
            "smtp_tls": "none",
            "smtp_timeout": 2,
            "smtp_backup_host": "127.0.0.1",
            "smtp_backup_port": port,
            "breaker_threshold": 3,
        }
        async with herald(**settings) as h:
            ids = []
            for i in range(10):
                reply = await h.client.post(
                    "/api/notifications", json={**EMAIL, "message": f"m{i}"}
                )
                ids.append(reply.json()["data"]["_id"])
            details = [await h.wait_status(i, "SENT") for i in ids]
            providers = (await h.client.get("/api/providers")).json()["data"]
            health = (await h.client.get("/api/health")).json()
    finally:
        backup.stop()
    assert len(sink.messages) == 10, "every message arrived through the backup"
    assert {d["notification"]["provider"] for d in details} == {"smtp_backup"}
    assert all(d["notification"]["attempts"] == 1 for d in details), "failover is in-attempt"
    by_name = {p["name"]: p for p in providers}
    [primary] = by_name["smtp"]["breakers"]
    assert primary["state"] == "open" and primary["failures"] >= 3
    assert (
        by_name["smtp_backup"]["breakers"] == []
        or by_name["smtp_backup"]["breakers"][0]["state"] == "closed"
    )
    assert any(v == "breaker open" for k, v in health["services"].items() if "smtp@" in k)
    assert health["status"] == "healthy"


async def test_status_callbacks_for_sent_and_failed(herald: Any) -> None:
    settings = {
        "email_providers": ["fault"],
        "fault_failure_rate": 0.0,
        "callback_url": "https://hooks.example.com/tenant",
    }
    async with herald(**settings) as h:
        mine = await h.client.post(
            "/api/notifications", json={**EMAIL, "callbackUrl": "https://app.example.com/cb"}
        )
        assert mine.json()["data"]["callbackUrl"] == "https://app.example.com/cb"
        tenant = await h.client.post("/api/notifications", json=EMAIL)
        for reply in (mine, tenant):
            await h.wait_status(reply.json()["data"]["_id"], "SENT")
        await asyncio.sleep(0.3)  # the callbacks are webhooks of their own, sent to capture
        messages = (await h.client.get("/api/mailbox", params={"type": "WEBHOOK"})).json()
    by_url = {m["recipient"]: orjson.loads(m["message"]) for m in messages["data"]["messages"]}
    assert set(by_url) == {"https://app.example.com/cb", "https://hooks.example.com/tenant"}
    event = by_url["https://app.example.com/cb"]
    assert event["event"] == "notification.sent"
    assert event["notificationId"] == mine.json()["data"]["_id"]
    assert event["providerMessageId"].startswith("fault-")
    assert len(messages["data"]["messages"]) == 2, "a callback does not call back itself"


async def test_failed_notification_calls_back_with_the_error(herald: Any) -> None:
    settings = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
    async with herald(**settings) as h:
        reply = await h.client.post(
            "/api/notifications", json={**EMAIL, "callbackUrl": "https://app.example.com/cb"}
        )
        await h.wait_status(reply.json()["data"]["_id"], "FAILED")
        await asyncio.sleep(0.3)
        messages = (await h.client.get("/api/mailbox", params={"type": "WEBHOOK"})).json()
    [message] = messages["data"]["messages"]
    event = orjson.loads(message["message"])
    assert event["event"] == "notification.failed" and event["queue"] == "dlq"
    assert "injected" in event["error"] and event["permanent"] is True


async def test_callback_url_must_be_http(herald: Any) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.post("/api/notifications", json={**EMAIL, "callbackUrl": "ftp://x"})
        assert reply.status_code == 422 and reply.json()["errors"][0]["field"] == "callbackUrl"


WEBHOOK = {
    "webhook_providers": ["webhook"],
    "webhook_secret": "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
    "webhook_allow_hosts": "127.0.0.1",
}


async def test_429_retry_after_holds_every_call_to_the_provider(herald: Any) -> None:
    answers = [Reply(429, b"slow down", {"retry-after": "2"})]
    calls: list[float] = []
    throttled = asyncio.Event()

    def handle(seen: Seen) -> Reply:
        calls.append(time.monotonic())
        throttled.set()
        return answers.pop(0) if answers else Reply(200, b"ok")

    async with fake_server(handle) as server, herald(**WEBHOOK) as h:
        first = await h.client.post("/api/notifications", json={
            "type": "WEBHOOK", "recipient": f"{server.url}/a", "message": "one"})  # fmt: skip
        await asyncio.wait_for(throttled.wait(), 10)
        # Once its 429 is recorded the pause is in force: a second notification sent
        # before the first's answer came back would race it, not test it.
        await h.wait_status(first.json()["data"]["_id"], "RETRYING", timeout=10)
        second = await h.client.post("/api/notifications", json={
            "type": "WEBHOOK", "recipient": f"{server.url}/b", "message": "two"})  # fmt: skip
        await h.wait_status(second.json()["data"]["_id"], "SENT", timeout=15)
        await h.wait_status(first.json()["data"]["_id"], "SENT", timeout=15)
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 2.0, "called again before Retry-After passed"


async def test_410_disables_the_endpoint_for_later_sends(herald: Any) -> None:
    async with fake_server(lambda seen: Reply(410, b"gone")) as server, herald(**WEBHOOK) as h:
        url = f"{server.url}/hook"
        body = {"type": "WEBHOOK", "recipient": url, "message": "x"}
        first = (await h.client.post("/api/notifications", json=body)).json()["data"]
        gone = await h.wait_status(first["_id"], "FAILED")
        second = (await h.client.post("/api/notifications", json=body)).json()["data"]
        refused = await h.wait_status(second["_id"], "FAILED")
    assert len(server.seen) == 1, "a gone endpoint was called again"
    assert gone["notification"]["attempts"] == 1
    assert "reported gone" in refused["notification"]["error"]


async def test_a_crashing_loop_is_restarted_and_health_says_so(herald: Any) -> None:
    """The sweeper fails with an error nobody expected: it is restarted, health turns
    503 while it crash-loops, and healthy again once it sweeps."""
    async with herald(email_providers=["fault"], sweep_interval=0.05) as h:
        health = (await h.client.get("/api/health")).json()
        assert set(health["loops"]) >= {"claimer", "flusher", "sweeper", "retention"}
        assert health["loops"]["sweeper"]["state"] == "running", health
        assert not any(k.startswith("loop:") for k in health["services"]), "all well: no line"

        store: Any = h.engine.store

        async def broken(max_attempts: int) -> int:
            raise RuntimeError("a bug in the sweep")

        store.sweep = broken
        deadline = time.monotonic() + 10
        while True:
            reply = await h.client.get("/api/health")
            if reply.status_code == 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply.status_code == 503, reply.text
        sick = reply.json()
        assert sick["status"] == "unhealthy"
        assert sick["services"]["loop:sweeper"].startswith("crash-looping"), sick
        assert "RuntimeError: a bug in the sweep" in sick["loops"]["sweeper"]["lastError"]
        assert sick["loops"]["sweeper"]["restarts"] >= 3

        del store.sweep  # fixed: the class's own sweep again
        deadline = time.monotonic() + 10
        while True:
            reply = await h.client.get("/api/health")
            if reply.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert reply.status_code == 200, reply.text
        well = reply.json()["loops"]["sweeper"]
        assert well["state"] == "running" and well["lastSuccessAt"] > well["lastErrorAt"]


FAILING = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "transient",
           "breaker_threshold": 1, "instance": "worker-1"}  # fmt: skip
OPEN = "breaker-open"  # the dashboard's badge for an open breaker


async def open_breaker(h: Any) -> None:
    """Send through the failing provider until this process reports its breaker open."""
    await h.client.post("/api/notifications", json=EMAIL)
    deadline = time.monotonic() + 10
    while (await h.client.get("/api/health")).json()["services"].get(
        "provider:fault@worker-1"
    ) != "breaker open":
        assert time.monotonic() < deadline, "the breaker never opened"
        await asyncio.sleep(0.02)


async def shown(h: Any) -> tuple[list[str], list[Any], bool]:
    """The breakers health, /api/providers and the dashboard show."""
    health = (await h.client.get("/api/health")).json()["services"]
    providers = (await h.client.get("/api/providers")).json()["data"]
    page = (await h.client.get("/dashboard")).text
    return ([k for k in health if k.startswith("provider:")],
            [b for p in providers for b in p["breakers"]], OPEN in page)  # fmt: skip


async def test_a_restarted_process_shows_none_of_its_predecessors_breakers(
    herald: Any, database_url_for_herald: str
) -> None:
    settings = {**FAILING, "database_url": database_url_for_herald}
    async with herald(**settings) as first:
        await open_breaker(first)
        health, providers, page = await shown(first)
        assert health == ["provider:fault@worker-1"] and page
        assert [(b["instance"], b["state"]) for b in providers] == [("worker-1", "open")]
    async with herald(**settings) as second:  # the same name, the same database
        assert await shown(second) == ([], [], False)


async def test_a_crashed_process_s_breakers_expire_with_its_heartbeat(
    herald: Any, database_url_for_herald: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that died never ends its rows: they go once its heartbeat is stale."""
    monkeypatch.setattr(engine, "HEARTBEAT_EVERY", 0.05)
    monkeypatch.setattr(engine, "LIVE_FOR", 0.5)
    settings = {**FAILING, "database_url": database_url_for_herald}
    async with herald(**settings) as first:
        await open_breaker(first)

        async def crashed(process: str) -> None:  # a killed process cleans nothing up
            pass

        monkeypatch.setattr(first.engine.store, "end_process", crashed)
    async with herald(**settings) as second:
        deadline = time.monotonic() + 5
        while (now := await shown(second)) != ([], [], False):
            assert time.monotonic() < deadline, f"still shown: {now}"
            await asyncio.sleep(0.05)
        await open_breaker(second)  # its own breaker, shown as usual
        health, providers, _ = await shown(second)
        assert health == ["provider:fault@worker-1"] and len(providers) == 1


async def deferrals(h: Any, notification_id: str) -> list[str]:
    """The history lines of the times nothing went out."""
    logs = (await h.client.get(f"/api/notifications/{notification_id}")).json()["data"]["logs"]
    return [log["message"] for log in logs if log["message"].startswith("Not attempted")]


async def test_an_open_breaker_is_named_in_the_history_not_called_a_rate_limit(
    herald: Any,
) -> None:
    async with herald(**FAILING) as h:
        await open_breaker(h)
        held = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]["_id"]
        deadline = time.monotonic() + 10
        while not (deferred := await deferrals(h, held)):
            assert time.monotonic() < deadline, "never deferred"
            await asyncio.sleep(0.02)
    assert re.fullmatch(
        r"Not attempted: fault circuit open after 1 consecutive failure; next trial at "
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; back in the queue for \d+\.\ds",
        deferred[0],
    ), deferred

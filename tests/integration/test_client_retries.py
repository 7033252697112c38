"""The client's retries, keys and errors, against local HTTP servers that answer as told.

The servers run in the test's event loop (``fakehttp``), so the blocking
client is called from a worker thread (``asyncio.to_thread``). Waits are real:
each test that honours a ``Retry-After`` costs about a second.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from herald.client import (
    AsyncHerald,
    ConnectionFailed,
    Herald,
    Page,
    Pagination,
    RateLimited,
    RetryPolicy,
    ServerError,
    UnexpectedAnswer,
    ValidationFailed,
)
from herald.client.calls import Pager, get
from herald.client.retrying import retry_after
from tests.integration.fakehttp import Reply, Seen, fake_server

FAST = RetryPolicy(attempts=3, max_wait=5.0, backoff=0.01)
ADDED = {"success": True, "data": {"added": 1, "received": 1}, "message": None}
NO_KEYS = {"success": True, "data": {"keys": []}}


def script(*replies: Reply) -> tuple[Callable[[Seen], Reply], list[float]]:
    """A handler answering ``replies`` in turn, and the arrival time of each request."""
    pending, arrivals = list(replies), []

    def answer(seen: Seen) -> Reply:
        arrivals.append(time.monotonic())
        return pending.pop(0) if len(pending) > 1 else pending[0]

    return answer, arrivals


async def test_a_429_is_tried_again_after_its_retry_after_with_the_same_key() -> None:
    handler, arrivals = script(
        Reply.json(429, {"success": False, "message": "Too many", "errors": []}, retry_after="1"),
        Reply.json(201, ADDED),
    )
    async with fake_server(handler) as server:
        with Herald(server.url, "hk_x", retry=FAST) as herald:
            added = await asyncio.to_thread(herald.add_suppression, "ann@example.com")
    assert added.added == 1
    assert arrivals[1] - arrivals[0] >= 0.95, "Retry-After: 1 was not waited for"
    first, again = (seen.headers["idempotency-key"] for seen in server.seen)
    assert first == again and uuid.UUID(first), "a retry carries its call's key"
    assert server.seen[0].headers["authorization"] == "Bearer hk_x"


async def test_a_503_with_an_http_date_is_waited_for() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    handler, arrivals = script(
        Reply.json(503, {"success": False, "message": "busy", "errors": []}, retry_after=when),
        Reply.json(200, NO_KEYS),
    )
    async with fake_server(handler) as server, AsyncHerald(server.url, "k", retry=FAST) as herald:
        assert await herald.list_keys() == []
    # The date has whole seconds: the wait is between one and two seconds.
    assert arrivals[1] - arrivals[0] >= 0.9


async def test_attempts_are_bounded_and_the_last_refusal_is_raised() -> None:
    refusal = Reply.json(429, {"success": False, "message": "Slow down", "errors": []},
                         retry_after="0")  # fmt: skip
    handler, _ = script(refusal)
    async with fake_server(handler) as server, AsyncHerald(server.url, "k", retry=FAST) as herald:
        with pytest.raises(RateLimited) as raised:
            await herald.add_suppression("ann@example.com")
    assert len(server.seen) == FAST.attempts
    assert (raised.value.status, raised.value.message, raised.value.retry_after) == (
        429, "Slow down", 0.0,
    )  # fmt: skip


async def test_a_retry_after_beyond_max_wait_is_raised_at_once() -> None:
    handler, _ = script(Reply.json(503, {"success": False, "message": "shed"}, retry_after="120"))
    async with fake_server(handler) as server, AsyncHerald(server.url, "k", retry=FAST) as herald:
        started = time.monotonic()
        with pytest.raises(ServerError) as raised:
            await herald.list_keys()
    assert time.monotonic() - started < 1 and len(server.seen) == 1
    assert raised.value.status == 503 and raised.value.retry_after == 120


async def test_keys_are_the_callers_or_one_per_call() -> None:
    handler, _ = script(Reply.json(201, ADDED))
    async with fake_server(handler) as server, AsyncHerald(server.url, "k") as herald:
        await herald.add_suppression("ann@example.com", idempotency_key="order-42")
        await herald.add_suppression("ann@example.com")
        await herald.add_suppression("ann@example.com")
    keys = [seen.headers.get("idempotency-key") for seen in server.seen]
    assert keys[0] == "order-42" and len(set(keys)) == 3


async def test_error_bodies_become_exceptions() -> None:
    invalid = {"success": False, "message": "Validation failed", "errors": [
        {"field": "recipient", "message": "too long"},
        {"field": "recipient", "message": "not an address"},
        {"field": "query.limit", "message": "at most 100"}]}  # fmt: skip
    handler, _ = script(Reply.json(422, invalid))
    async with fake_server(handler) as server, AsyncHerald(server.url, "k") as herald:
        with pytest.raises(ValidationFailed) as raised:
            await herald.add_suppression("x")
    assert raised.value.fields == {
        "recipient": "too long; not an address",
        "query.limit": "at most 100",
    }
    assert raised.value.body == invalid and len(server.seen) == 1


async def test_a_proxys_502_is_tried_again_and_a_500_is_not() -> None:
    handler, _ = script(
        Reply(502, b"<html>bad gateway</html>", {"content-type": "text/html"}),
        Reply(500, b"oops", {"content-type": "text/plain"}),
    )
    async with fake_server(handler) as server, AsyncHerald(server.url, "k", retry=FAST) as herald:
        with pytest.raises(ServerError) as raised:
            await herald.list_keys()
    assert len(server.seen) == 2
    assert (raised.value.status, raised.value.message, raised.value.body) == (
        500, "Internal Server Error", None,
    )  # fmt: skip


async def test_an_unhealthy_herald_is_read_not_retried() -> None:
    unhealthy = {"status": "unhealthy", "timestamp": "2026-02-01T12:00:00.000Z",
                 "services": {"database": "disconnected"}, "uptime": 1.0, "instance": "a:1",
                 "loops": {}}  # fmt: skip
    handler, _ = script(Reply.json(503, unhealthy))
    async with fake_server(handler) as server, AsyncHerald(server.url, "k", retry=FAST) as herald:
        health = await herald.health()
    assert (health.status, health.services) == ("unhealthy", {"database": "disconnected"})
    assert len(server.seen) == 1


async def test_a_success_in_an_unreadable_shape_is_an_unexpected_answer() -> None:
    handler, _ = script(Reply(200, b"<html>a login page</html>", {"content-type": "text/html"}))
    async with fake_server(handler) as server, AsyncHerald(server.url, "k") as herald:
        with pytest.raises(UnexpectedAnswer) as raised:
            await herald.stats()
    assert "GET /api/notifications/stats/system answered 200" in str(raised.value)


@asynccontextmanager
async def answerless_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that reads each request and closes the connection without answering."""
    heads: list[bytes] = []

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", heads


async def test_a_lost_answer_is_sent_again_only_when_that_is_safe() -> None:
    async with answerless_server() as (url, heads), AsyncHerald(url, "k", retry=FAST) as herald:
        with pytest.raises(ConnectionFailed):
            await herald.replace_template("welcome", "Hi")  # a new version each time: once
        assert len(heads) == 1
        for safe in (herald.list_keys(), herald.add_suppression("ann@example.com")):
            heads.clear()
            with pytest.raises(ConnectionFailed) as raised:
                await safe
            assert len(heads) == FAST.attempts
            assert isinstance(raised.value.__cause__, httpx.TransportError)
        keys = {line for h in heads for line in h.lower().split(b"\r\n")
                if line.startswith(b"idempotency-key:")}  # fmt: skip
        assert len(keys) == 1, "the retries of one call carry one key"


async def test_an_unreachable_herald_is_tried_again_then_connection_failed() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with Herald(f"http://127.0.0.1:{port}", "k", retry=FAST) as herald:
            started = time.monotonic()
            with pytest.raises(ConnectionFailed) as raised:
                await asyncio.to_thread(herald.replace_template, "welcome", "Hi")
    assert isinstance(raised.value.__cause__, httpx.ConnectError)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Sun, 01 Feb 2026 12:00:10 GMT", 10.0),
        ("Sun, 01 Feb 2026 11:00:00 GMT", 0.0),  # in the past: at once
        ("Sun, 01 Feb 2026 12:00:05 -0000", 5.0),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(header: str | None, seconds: Any) -> None:
    now = datetime(2026, 2, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert retry_after(header, now) == seconds


def test_retry_policy_bounds_the_waits() -> None:
    policy = RetryPolicy(attempts=4, max_wait=3.0, backoff=1.0)
    assert [policy.pause(n, None) is not None for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert 1.0 <= (policy.pause(1, None) or 0) <= 1.1 and policy.pause(3, None) == 3.0
    assert policy.pause(1, 3.0) == 3.0 and policy.pause(1, 3.5) is None
    for bad in ({"attempts": 0}, {"max_wait": -1}, {"backoff": float("inf")}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_a_pager_stops_after_the_last_page() -> None:
    pager: Pager[int] = Pager(lambda number: get(f"/list?page={number}", lambda b: Page([], at)))
    at = Pagination(current_page=1, total_pages=3, total_items=5, items_per_page=2)
    nxt = pager.after(Page([1, 2], at))
    assert nxt is not None and nxt.path == "/list?page=2"
    last = Pagination(current_page=3, total_pages=3, total_items=5, items_per_page=2)
    assert pager.after(Page([5], last)) is None
    assert pager.after(Page([], at)) is None, "an empty page ends the walk"


def test_the_client_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, herald.client\n"
        "server = ('fastapi', 'starlette', 'uvicorn', 'pydantic', 'asyncpg', 'jinja2')\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in server\n"
        "          or (m.startswith('herald.') and not m.startswith('herald.client'))]\n"
        "print(loaded)\n"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"

"""What a Herald process writes: one JSON object a line, an access line per request.

Real ``herald api`` and ``herald up`` processes (one, and a supervisor with
API and worker children); every line they write (stdout and stderr, uvicorn's
and asyncio's included) must parse as a JSON object with an event, a level and
a time. Each request below sends an ``X-Request-Id`` of its own, by which its
access line is found.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, AUTH
from tests.e2e.test_supervisor import children

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EMAIL = {"type": "EMAIL", "recipient": "logs@example.com", "subject": "Hi", "message": "Hello"}
LOGIN = {"type": "login", "recipient": "logs@example.com",
         "data": {"username": "u", "ipAddress": "192.0.2.1", "userAgent": "curl"}}  # fmt: skip


async def stopped(process: Any) -> list[dict[str, Any]]:
    """Every line ``process`` wrote until it stopped (SIGTERM), each parsed as JSON."""
    process.terminate()
    assert await process.wait_exit(60) == 0, process.describe()
    entries = []
    for number, line in enumerate(process.log_path.read_text().splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n{process.describe()}")
        assert isinstance(entry, dict), line
        assert {"event", "level", "timestamp"} <= entry.keys(), line
        entries.append(entry)
    return entries


def access_lines(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The access lines, by request id; a request id twice is a failure."""
    found: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["event"] == "http_request":
            assert entry["request_id"] not in found, entry
            found[entry["request_id"]] = entry
    return found


async def test_api_writes_json_lines_and_an_access_line_per_request(herald) -> None:
    api = await herald.start_http("api", HERALD_INSTANCE="logs-test")
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as client:

        async def call(request_id: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = {"X-Request-Id": request_id, **kwargs.pop("headers", {})}
            reply = await client.request(method, path, headers=headers, **kwargs)
            assert reply.headers["x-request-id"] == request_id
            return reply

        created = await call("create", "POST", "/api/notifications", json=EMAIL)
        note_id = created.json()["data"]["id"]
        made = await call("key", "POST", "/api/keys", json={"name": "r", "scopes": ["read"]})
        secret, prefix = made.json()["data"]["key"], made.json()["data"]["prefix"]
        await call("read", "GET", f"/api/notifications/{note_id}?token=q-secret",
                   headers={"Authorization": f"Bearer {secret}"})  # fmt: skip
        await call("refused", "GET", f"/api/notifications/{note_id}",
                   headers={"Authorization": "Bearer hk_wrong"})  # fmt: skip
        await call("bulk", "POST", "/api/notifications/bulk", json={"notifications": [EMAIL]})
        await call("event", "POST", "/api/events", json=LOGIN)
        await call("nowhere", "GET", "/api/no-such-route?q=1")
        await call("health", "GET", "/api/health")
        hostile = await client.get("/api/providers", headers={"X-Request-Id": "x" * 129})
        replaced = hostile.headers["x-request-id"]
    entries = await stopped(api)

    lines = access_lines(entries)
    expected = {
        "create": ("POST", "/api/notifications", 201, "HERALD_ADMIN_KEY"),
        "key": ("POST", "/api/keys", 201, "HERALD_ADMIN_KEY"),
        "read": ("GET", "/api/notifications/{notification_id}", 200, prefix),
        "refused": ("GET", "/api/notifications/{notification_id}", 401, None),
        "bulk": ("POST", "/api/notifications/bulk", 201, "HERALD_ADMIN_KEY"),
        "event": ("POST", "/api/events", 201, "HERALD_ADMIN_KEY"),
        "nowhere": ("GET", "unmatched", 404, "HERALD_ADMIN_KEY"),
        replaced: ("GET", "/api/providers", 200, "HERALD_ADMIN_KEY"),
    }
    # Health checks (the runner's and ours) are logged at debug only.
    assert {r for r, line in lines.items() if line["route"] == "/api/health"} == set()
    assert lines.keys() == expected.keys()
    for request_id, (method, route, status, key) in expected.items():
        line = lines[request_id]
        assert (line["method"], line["route"], line["status"], line["key"]) == (
            method, route, status, key
        ), line  # fmt: skip
        assert line["instance"] == "logs-test" and line["level"] == "info", line
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0, line
    # Templates, never paths: no id, query or token is in an access line; no secret anywhere.
    shown = json.dumps(list(lines.values()))
    assert note_id not in shown and "q-secret" not in shown and "q=1" not in shown
    everything = json.dumps(entries)
    assert secret not in everything and ADMIN_KEY not in everything

    # A line written while a request is handled carries its id.
    [accepted] = [e for e in entries if e["event"] == "event_accepted"]
    assert accepted["request_id"] == "event"
    # The standard library's lines (uvicorn's here) come out in the same shape.
    assert any(e.get("logger") == "uvicorn.error" for e in entries)


async def test_access_log_off_and_up_in_one_process(herald) -> None:
    up = await herald.start_http("up", HERALD_ACCESS_LOG="false")
    async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
        reply = await client.post("/api/notifications", json=EMAIL, headers={"X-Request-Id": "q1"})
        assert reply.headers["x-request-id"] == "q1"
        await herald.poll(lambda: herald.status_counts().get("SENT") == 1, 15, "the send")
        event = await client.post("/api/events", json=LOGIN, headers={"X-Request-Id": "q2"})
        assert event.status_code == 201, event.text
    entries = await stopped(up)
    assert access_lines(entries) == {}
    assert any(e["event"] == "worker_stopped" for e in entries)  # the worker's lines too
    [accepted] = [e for e in entries if e["event"] == "event_accepted"]
    assert accepted["request_id"] == "q2"


async def test_up_with_api_and_worker_processes_writes_json_lines(herald, smtp_server) -> None:
    up = await herald.start_http("up", "--api-workers", "2", "--delivery-workers", "1")
    try:
        await herald.poll(lambda: len(children(up)) == 3, 15, "three children", watch=[up])
        sent = []
        for n in range(6):  # a connection each, so either API process may take it
            async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
                reply = await client.post("/api/notifications", json=EMAIL,
                                          headers={"X-Request-Id": f"up-{n}"})  # fmt: skip
                assert reply.status_code == 201, reply.text
                sent.append(reply.json()["data"]["id"])
        await herald.poll(lambda: all(smtp_server.sink.received[i] for i in sent), 30,
                          "every email delivered", watch=[up])  # fmt: skip
        entries = await stopped(up)
    finally:  # the runner kills the supervisor only; its children are ours to reap
        for pid in children(up).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    lines = access_lines(entries)
    assert sorted(lines) == [f"up-{n}" for n in range(6)]
    instances = {line["instance"].rsplit("/", 1)[-1] for line in lines.values()}
    assert instances <= {"api-1", "api-2"}, instances
    events = {e["event"] for e in entries}
    assert {
        "supervisor_started",
        "worker_started",
        "engine_started",
        "supervisor_stopped",
    } <= events

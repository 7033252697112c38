"""The dashboard's live view over HTTP: ``/dashboard/stream`` as a browser's EventSource reads it.

Who may open one, what arrives and how soon, heartbeats, tenants kept apart, the
bounds on open streams, resuming with ``Last-Event-ID``, and a server that stops
at once with streams open. The pages' side is in ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from herald.api.app import create_app
from tests.conftest import AUTH, make_settings
from tests.e2e.conftest import poll
from tests.integration.conftest import serve_app
from tests.integration.test_dashboard_login import Visitor, add_user, signed_in, visitor

pytestmark = pytest.mark.every_store

EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Disk", "message": "91%"}
STREAM = {"Accept": "text/event-stream"}
Block = dict[str, str]


class Reader:
    """An open event stream, read in a task of its own into blocks (events and comments)."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer
        self.blocks: list[Block] = []
        self.ended = False
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        block: Block = {}
        try:
            async for line in self.answer.aiter_lines():
                if not line:
                    if block:
                        self.blocks.append(block)
                    block = {}
                elif line.startswith(":"):
                    block["comment"] = line[1:].strip()
                else:
                    name, _, value = line.partition(":")
                    block[name] = value.removeprefix(" ")
        except httpx.HTTPError:
            pass
        self.ended = True

    def events(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(b["data"]) for b in self.blocks if b.get("event") == name]

    async def until(self, check: Callable[[Block], bool], what: str, timeout: float = 5) -> Block:
        found = await poll(lambda: next((b for b in self.blocks if check(b)), None), timeout, what)
        return dict(found)

    def close(self) -> None:
        self._task.cancel()


@asynccontextmanager
async def stream(client: httpx.AsyncClient, **headers: str) -> AsyncIterator[Reader]:
    async with client.stream("GET", "/dashboard/stream", headers={**STREAM, **headers}) as answer:
        assert answer.status_code == 200, await answer.aread()
        assert answer.headers["content-type"].startswith("text/event-stream")
        reader = Reader(answer)
        try:
            yield reader
        finally:
            reader.close()


def names(notification_id: str) -> Callable[[Block], bool]:
    def check(block: Block) -> bool:
        return (
            block.get("event") == "change" and notification_id in json.loads(block["data"])["ids"]
        )

    return check


async def create(h: Any, body: dict[str, Any] = EMAIL, **headers: str) -> str:
    reply = await h.client.post("/api/notifications", json=body, headers=headers)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["id"])


async def viewer(
    h: Any, v: Visitor, email: str = "viewer@example.com", tenant: str = "default"
) -> None:
    await add_user(h, email, "viewer", tenant=tenant)
    await signed_in(v, email)


async def test_only_a_signed_in_reader_may_open_the_stream(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        anonymous = await v.client.get("/dashboard/stream", headers=STREAM)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"].startswith("/dashboard/login?next=")
        key, _ = await h.engine.store.access.create_key("default", {"send"}, name="sender")
        refused = await v.client.get("/dashboard/stream", headers={**STREAM, **bearer(key)})
        assert refused.status_code == 403 and "lacks the" in refused.text
        await viewer(h, v)
        async with stream(v.client) as reader:
            opening = await reader.until(lambda b: "retry" in b, "the stream's opening")
            assert int(opening["retry"]) >= 1000 and opening["id"]
        # A client that asks for no stream gets its opening, and the end, at once.
        plain = await v.client.get("/dashboard/stream", timeout=5)
        assert plain.status_code == 200 and plain.text.startswith("retry:")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_changes_arrive_within_a_second_and_name_the_notification(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await viewer(h, v)
        async with stream(v.client) as reader:
            await reader.until(lambda b: "retry" in b, "the stream's opening")
            started = time.monotonic()
            notification_id = await create(h, {**EMAIL, "delaySeconds": 3600})
            await reader.until(names(notification_id), "a change naming the new notification")
            assert time.monotonic() - started < 1.5
            # A history row (here a cancel) is a change too.
            before = len(reader.blocks)
            started = time.monotonic()
            cancelled = await h.client.post(f"/api/notifications/{notification_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            await poll(lambda: any(names(notification_id)(b) for b in reader.blocks[before:]), 5,
                       "a change for the cancel")  # fmt: skip
            assert time.monotonic() - started < 1.5


async def test_heartbeats_keep_an_idle_stream_open(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        h.app.state.live.heartbeat = 0.2
        await viewer(h, v)
        async with stream(v.client) as reader:
            await reader.until(lambda b: b.get("comment") == "keepalive", "a heartbeat")
            beats = await poll(
                lambda: sum(b.get("comment") == "keepalive" for b in reader.blocks) >= 3, 5,
                "three heartbeats")  # fmt: skip
            assert beats and not reader.ended


async def test_a_tenant_hears_only_of_its_own_notifications(herald: Any) -> None:
    async with herald() as h, visitor(h) as ours, visitor(h) as theirs:
        await viewer(h, ours)
        await viewer(h, theirs, "acme@example.com", tenant="acme")
        acme_key, _ = await h.engine.store.access.create_key("acme", {"send", "read"}, name="acme")
        async with stream(ours.client) as mine, stream(theirs.client) as other:
            acme_id = await create(h, **bearer(acme_key))
            default_id = await create(h)
            await other.until(names(acme_id), "acme's change on acme's stream")
            await mine.until(names(default_id), "our change on our stream")
            await h.wait_status(default_id, "SENT")
            # Later news on each stream: a leak of the earlier one would have come before.
            await other.until(names(await create(h, **bearer(acme_key))), "acme's next change")
            await mine.until(names(await create(h)), "our next change")
            assert not any(default_id in b.get("data", "") for b in other.blocks)
            assert not any(acme_id in b.get("data", "") for b in mine.blocks)


async def test_a_paused_queue_is_told_to_every_stream(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await viewer(h, v)
        async with stream(v.client) as reader:
            await reader.until(
                lambda b: b.get("event") == "queues", "the paused lanes at the start"
            )
            assert (await h.client.post("/api/queue/sms/pause")).status_code == 200
            block = await reader.until(
                lambda b: b.get("event") == "queues" and "sms" in json.loads(b["data"])["paused"],
                "the pause")  # fmt: skip
            assert json.loads(block["data"]) == {"paused": ["sms"]}
            assert (await h.client.post("/api/queue/sms/resume")).status_code == 200
            await reader.until(lambda b: b.get("event") == "queues" and b is not block
                               and json.loads(b["data"])["paused"] == [], "the resume")  # fmt: skip


async def test_streams_are_bounded_per_session_and_per_process(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v, visitor(h) as other:
        hub = h.app.state.live
        hub.per_session, hub.max_streams = 2, 3
        await viewer(h, v)
        await viewer(h, other, "other@example.com")
        async with stream(v.client), stream(v.client):
            third = await v.client.get("/dashboard/stream", headers=STREAM)
            assert third.status_code == 429 and third.headers["retry-after"]
            assert "At most 2 live views per session" in third.text
            async with stream(other.client):
                full = await other.client.get("/dashboard/stream", headers=STREAM)
                assert full.status_code == 429 and "3 live views open" in full.text
        # Closed streams give their places back.
        await poll(lambda: not hub.streams, 5, "the closed streams to leave")
        async with stream(v.client), stream(v.client):
            pass


async def test_last_event_id_resumes_where_the_stream_left_off(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await viewer(h, v)
        async with stream(v.client) as keeper:  # keeps this process's poller going
            first = await create(h)
            seen = await keeper.until(names(first), "the first change")
            missed = await create(h)
            await keeper.until(names(missed), "the second change, on the stream still open")
            async with stream(v.client, **{"Last-Event-ID": seen["id"]}) as resumed:
                block = await resumed.until(lambda b: b.get("event") == "change", "the replay")
                news = json.loads(block["data"])
                assert missed in news["ids"] and not news["more"]
            async with stream(v.client, **{"Last-Event-ID": "not-ours.7"}) as stranger:
                block = await stranger.until(lambda b: b.get("event") == "change", "a resync")
                assert json.loads(block["data"]) == {"ids": [], "more": True}


async def test_the_server_stops_at_once_with_streams_open(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, shutdown_grace=10)
    app = create_app(settings, deliver=False)
    async with httpx.AsyncClient(headers={**AUTH, **STREAM}, timeout=30) as client:
        served = serve_app(app, settings.port, settings)
        url = await served.__aenter__()
        async with client.stream("GET", f"{url}/dashboard/stream") as answer:
            reader = Reader(answer)
            await reader.until(lambda b: "retry" in b, "the stream's opening")
            started = time.monotonic()
            await served.__aexit__(None, None, None)
            took = time.monotonic() - started
            await poll(lambda: reader.ended, 5, "the stream's end")
        assert took < 3, f"shutdown waited {took:.1f}s for an open stream"

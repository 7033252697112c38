"""The live view's hub without HTTP: positions, what a late stream is told, and bounded news."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from herald.dashboard import live
from herald.dashboard.live import Hub, Published, Refused, Stream
from herald.models import Channel, NewNotification
from herald.store.memory import MemoryStore
from herald.store.ports import Change
from herald.supervise import Supervisor
from tests.e2e.conftest import poll


def news(stream: Stream) -> dict[str, dict[str, object]]:
    """What a stream would send now, by event name."""
    found = {}
    for block in stream.take().decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            found[fields["event"]] = json.loads(fields["data"])
    return found


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    store = MemoryStore()
    await store.open()
    made = Hub(store, Supervisor(), max_streams=10, interval=0.02)
    yield made
    made.close()
    await made.wait_closed()


async def test_a_page_rendered_while_the_poller_runs_misses_nothing(hub: Hub) -> None:
    first = hub.join("t", "s1", hub.position)
    assert news(first)["change"] == {"ids": [], "more": True}, "a fresh poller: refresh once"
    await poll(lambda: hub.seq > 0, 5, "the first tick's news (the paused lanes)")
    page = hub.position  # a page rendered now
    [mine] = await hub.store.create([NewNotification(Channel.EMAIL, "a@b.co", "x", subject="s",
                                                     tenant_id="t")])  # fmt: skip
    await poll(lambda: hub.seq > int(page.split(".")[1]), 5, "the creation's news")
    late = hub.join("t", "s2", page)
    assert news(late)["change"] == {"ids": [mine.id], "more": False}
    assert "change" not in news(hub.join("u", "s3", page)), "another tenant's news is not told"
    assert news(hub.join("t", "s4", "another-process.3"))["change"]["more"] is True


async def test_a_slow_stream_holds_a_flag_not_a_backlog() -> None:
    stream = Stream("t", "s", "r.0")
    for n in range(live.MAX_IDS + 1):
        stream.offer(Published(n, "t", frozenset({f"id-{n}"})), f"r.{n}")
    stream.offer(Published(99, None, paused=frozenset({"sms"})), "r.99")
    told = news(stream)
    assert told == {"change": {"ids": [], "more": True}, "queues": {"paused": ["sms"]}}
    assert stream.take() == b"", "nothing twice"


async def test_an_old_position_past_the_ring_is_told_to_refresh(hub: Hub) -> None:
    hub.join("t", "s", None)
    await poll(lambda: hub.seq > 0, 5, "the poller's first tick")
    page = hub.position
    for n in range(live.RING + 1):
        hub._publish([Change(f"k{n}", f"tenant-{n}", f"id-{n}", "QUEUED", 0.0)], False, None)
    assert news(hub.join("t", "s2", page))["change"]["more"] is True


async def test_bounds_and_shutdown(hub: Hub) -> None:
    hub.per_session, hub.max_streams = 1, 2
    hub.join("t", "a", None)
    with pytest.raises(Refused, match="per session"):
        hub.join("t", "a", None)
    other = hub.join("t", "b", None)
    with pytest.raises(Refused, match="2 live views open"):
        hub.join("t", "c", None)
    hub.close()
    assert other.closed and await other.wait(0.01)
    with pytest.raises(Refused, match="shutting down"):
        hub.join("t", "d", None)
    await asyncio.wait_for(hub.wait_closed(), 5)

"""The dashboard's live view: one poller per process, fanned out to every open event stream.

``GET /dashboard/stream`` is a server-sent event stream for the caller's tenant.
Its events say *what* changed, not what it is now: the page then fetches itself
again and swaps in its parts marked ``data-live`` (``static/dashboard.js``), so
what a page shows comes from one template, behind the same scopes, whether it
arrives by reload or by event.

- ``change``: ``{"ids": [...], "more": false}``: notifications of this tenant
  created, claimed, or given a history row (an attempt's end, a receipt, a
  cancel, a replay). ``more``: others too, or too many to name.
- ``queues``: ``{"paused": [...]}``: the paused lanes, shared by every tenant,
  sent when they change and when a stream starts with a fresh poller.
- A comment line every ``heartbeat`` seconds, so proxies keep an idle stream open.

One ``Hub`` per process reads ``store.changes`` every ``INTERVAL`` seconds while
at least one stream is open, and not otherwise: a window of the last
``LOOKBACK`` seconds each time (a commit may land a little after the time its
rows carry, and other processes' clocks differ a little), each change passed on
once by its key. Many dashboards cost one poller; several processes one each,
on indexed reads. With more than ``LIMIT`` changes of a kind in the window,
every stream is told ``more``.

Each event has an id ``run.seq``, and each page is rendered with the hub's
current one: a stream opened with ``?after=`` (or reopened with
``Last-Event-ID``) gets what it missed from a short ring. When the ring cannot
tell (another process, a poller restarted after a pause, a ring run over) the
stream starts with one ``change`` saying ``more``, and the page refreshes once.

Bounded: ``per_session`` streams per session or API key (a browser holds six
connections per host over HTTP/1.1), ``max_streams`` per process; past either,
429 and the page goes on reloading every 5 s instead. A stream ends after
about ``lifetime`` seconds (the browser reconnects, through authentication again),
and at shutdown: uvicorn waits for every open response before stopping, so
``close`` ends them first (``httpserver``'s shutdown hook).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, Request, Response
from starlette.types import Receive, Scope, Send

from ..access import Scope as Permission
from ..api.authz import principal, requires, tenant_of
from ..errors import StoreUnavailable
from ..store.base import Store
from ..store.ports import Change
from ..supervise import Liveness, Supervisor
from .charts import Charts, Depths
from .pages import HEADERS, PREFIX, PageRoute, error_page
from .sessions import COOKIE

log = structlog.get_logger("herald.dashboard")

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)

INTERVAL = 0.5
LOOKBACK = 5.0
LIMIT = 500
#: Ids named in one event at most; beyond, it says ``more``.
MAX_IDS = 50
RING = 256
HEARTBEAT = 15.0
LIFETIME = 300.0
PER_SESSION = 4
#: How long a browser waits before reopening a stream that ended, in ms.
RETRY_MS = 3000
#: The state key under which the lifespan hands ``Hub.close`` to the server's shutdown
#: (``httpserver`` reads it by this name: it sits below the app and imports none of it).
CLOSING = "herald.closing"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Published:
    """One tick's news for one tenant (or, ``tenant`` None, for every tenant)."""

    seq: int
    tenant: str | None
    ids: frozenset[str] = frozenset()
    more: bool = False
    paused: frozenset[str] | None = None


@dataclass(eq=False)
class Stream:
    """One open stream and what it has yet to send, coalesced: a slow reader holds a few
    dozen ids and a flag, never a backlog."""

    tenant: str
    session: str
    position: str
    closed: bool = False
    _ids: set[str] = field(default_factory=set)
    _more: bool = False
    _paused: frozenset[str] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, news: Published, position: str) -> None:
        if news.tenant not in (None, self.tenant):
            return
        self._more |= news.more
        self._ids |= news.ids
        if len(self._ids) > MAX_IDS:
            self._ids.clear()
            self._more = True
        if news.paused is not None:
            self._paused = news.paused
        self.position = position
        if self._more or self._ids or self._paused is not None:
            self._wake.set()

    def end(self) -> None:
        self.closed = True
        self._wake.set()

    async def wait(self, timeout: float) -> bool:
        """Whether there is news (or the end) within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def take(self) -> bytes:
        """The pending news as SSE events, and nothing pending after."""
        self._wake.clear()
        chunks = []
        if self._ids or self._more:
            body = {"ids": sorted(self._ids), "more": self._more}
            chunks.append(_event("change", body, self.position))
        if self._paused is not None:
            chunks.append(_event("queues", {"paused": sorted(self._paused)}, self.position))
        self._ids, self._more, self._paused = set(), False, None
        return b"".join(chunks)


def _event(name: str, data: dict[str, Any], position: str) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (name.encode(), position.encode(),
                                                  orjson.dumps(data))  # fmt: skip


class Hub:
    """This process's poller of changes and the streams it serves."""

    def __init__(self, store: Store, loops: Supervisor, depths: Depths | None = None, *,
                 max_streams: int, per_session: int = PER_SESSION, interval: float = INTERVAL,
                 heartbeat: float = HEARTBEAT, lifetime: float = LIFETIME,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.store = store
        self.loops = loops
        self.depths = depths
        self.max_streams = max_streams
        self.per_session = per_session
        self.interval = interval
        self.heartbeat = heartbeat
        self.lifetime = lifetime
        self._clock = clock
        self.streams: set[Stream] = set()
        self.run = secrets.token_hex(4)
        self.seq = 0
        self._ring: deque[Published] = deque()
        self._floor = 0  # every news after this seq of this run is in the ring
        self._task: asyncio.Task[None] | None = None
        self._idle_since: float | None = None  # monotonic; None: never polled
        self._closed = False

    @property
    def position(self) -> str:
        """Where the news stands now: pages carry it, so their stream starts from there."""
        return f"{self.run}.{self.seq}"

    def join(self, tenant_id: str, session: str, after: str | None) -> Stream:
        if self._closed:
            raise Refused(503, "The server is shutting down; the page will reconnect.")
        if len(self.streams) >= self.max_streams:
            raise Refused(429, f"This server has {self.max_streams} live views open already.")
        if sum(1 for s in self.streams if s.session == session) >= self.per_session:
            raise Refused(429, f"At most {self.per_session} live views per session: the "
                               "other pages go on refreshing every 5 seconds.")  # fmt: skip
        self._start()
        stream = Stream(tenant_id, session, self.position)
        self.streams.add(stream)
        missed = self._after(after)
        if missed is None:
            stream.offer(Published(self.seq, None, more=True), self.position)
        for news in missed or ():
            stream.offer(news, self.position)
        return stream

    def leave(self, stream: Stream) -> None:
        self.streams.discard(stream)
        if not self.streams:
            self._idle_since = time.monotonic()  # the poller stops at its next tick

    def _after(self, after: str | None) -> list[Published] | None:
        """What a page at position ``after`` has not seen; None when the ring cannot tell."""
        run, _, seq = (after or "").partition(".")
        if run != self.run or not (seq.isascii() and seq.isdigit() and len(seq) <= 12):
            return None
        if int(seq) < self._floor:
            return None
        return [news for news in self._ring if news.seq > int(seq)]

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        idle = self._idle_since
        # After a pause longer than the first window reaches back, what happened during
        # it was never read: positions from before cannot be trusted.
        if idle is None or time.monotonic() - idle > LOOKBACK - 2 * self.interval:
            self.run, self._floor = secrets.token_hex(4), self.seq
            self._ring.clear()
        self._task = self.loops.spawn("dashboard-live", self._poll)

    async def _poll(self, live: Liveness) -> None:
        seen: dict[str, float] = {}  # keys passed on, while still in the window
        paused: frozenset[str] | None = None
        while self.streams and not self._closed:
            began = self._clock()
            since = began - LOOKBACK
            try:
                feed = await self.store.changes(since, LIMIT)
                if self.depths is not None:
                    await self.depths.sample(self.store, (s.tenant for s in self.streams))
            except StoreUnavailable as exc:
                log.warning("live_view_store_unavailable", error=str(exc))
            else:
                live.ok()
                fresh = [c for c in feed.changes if c.key not in seen]
                seen.update((c.key, c.at) for c in fresh)
                for key in [k for k, at in seen.items() if at < since]:
                    del seen[key]
                self._publish(fresh, feed.full, None if feed.paused == paused else feed.paused)
                paused = feed.paused
            await asyncio.sleep(max(0.0, self.interval - (self._clock() - began)))

    def _publish(self, fresh: Iterable[Change], full: bool, paused: frozenset[str] | None) -> None:
        by_tenant: dict[str, set[str]] = {}
        for change in fresh:
            by_tenant.setdefault(change.tenant_id, set()).add(change.notification_id)
        if not (by_tenant or full or paused is not None):
            return
        self.seq += 1
        news = [Published(self.seq, tenant, frozenset(sorted(ids)[:MAX_IDS]), len(ids) > MAX_IDS)
                for tenant, ids in by_tenant.items()]  # fmt: skip
        if full or paused is not None:
            news.append(Published(self.seq, None, more=full, paused=paused))
        for item in news:
            if len(self._ring) >= RING:
                self._floor = max(self._floor, self._ring.popleft().seq)
            self._ring.append(item)
        for stream in self.streams:
            for item in news:
                stream.offer(item, self.position)

    def close(self) -> None:
        """End every stream and the poller (the server is stopping); idempotent."""
        if self._closed:
            return
        self._closed = True
        for stream in self.streams:
            stream.end()
        if self._task is not None:
            self._task.cancel()

    async def wait_closed(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _session_of(request: Request) -> str:
    """What the per-session bound counts: the session cookie, else the API key, else the actor."""
    caller = principal(request)
    if caller.key_id is not None:
        return f"key:{caller.key_id}"
    cookie = request.cookies.get(COOKIE)
    return f"session:{cookie}" if cookie else f"actor:{caller.actor}"


class EventStream(Response):
    """The stream's answer: joins the hub when it is sent, and leaves it however it ends."""

    media_type = "text/event-stream"

    def __init__(self, request: Request, hub: Hub, after: str | None) -> None:
        super().__init__(headers={**HEADERS, "X-Accel-Buffering": "no"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.request = request
        self.hub = hub
        self.after = after
        # A client that did not ask for a stream (a script, a link) gets its opening and
        # the end at once, rather than an answer that never ends.
        self.endless = "text/event-stream" in request.headers.get("accept", "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            stream = self.hub.join(tenant_of(self.request), _session_of(self.request), self.after)
        except Refused as exc:
            answer = error_page(self.request, exc.status, "Live view unavailable", str(exc))
            answer.headers["Retry-After"] = "30" if exc.status == 429 else "5"
            await answer(scope, receive, send)
            return
        try:
            await self._serve(stream, receive, send)
        finally:
            self.hub.leave(stream)

    async def _serve(self, stream: Stream, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        opening = b"retry: %d\nid: %s\n: live view of %s\n\n" % (
            RETRY_MS,
            stream.position.encode(),
            PREFIX.encode(),
        )
        await send({"type": "http.response.body", "body": opening, "more_body": self.endless})
        if not self.endless:
            return
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            stream.end()

        watcher = asyncio.create_task(watch())
        # Spread over a tenth either way, so dashboards opened together do not all
        # reconnect together.
        deadline = time.monotonic() + self.hub.lifetime * random.uniform(0.9, 1.1)
        try:
            while not stream.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                news = await stream.wait(min(self.hub.heartbeat, left))
                if stream.closed:
                    break
                chunk = stream.take() if news else b": keepalive\n\n"
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


@router.get("/stream", dependencies=[requires(Permission.READ)])
async def events(request: Request) -> Response:
    after = request.headers.get("last-event-id") or request.query_params.get("after")
    return EventStream(request, request.app.state.live, after[:64] if after else None)


def open_hub(app: Any, engine: Any) -> Hub:
    """The process's hub and charts, on ``app.state`` (``live``, ``charts``)."""
    app.state.charts = charts = Charts(engine.store)
    streams = max(8, engine.settings.max_connections // 4)
    app.state.live = hub = Hub(engine.store, engine.loops, charts.depths, max_streams=streams)
    return hub

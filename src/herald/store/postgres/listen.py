"""Waking idle workers: LISTEN on a connection of its own, in any process on any host.

Writes that make work due (``create``, ``release``, ``sweep``, ``replay``,
resuming a queue, a retry or deferral recorded by ``complete``) send
``pg_notify`` in their own transaction, so the wake-up is delivered at COMMIT,
never before the rows are visible. The payload is the earliest due time of
that work (empty for now): a notification scheduled for later, or a retry on
the ladder, wakes the workers when it falls due rather than when it was
written, so an idle worker need not poll for it.

The listener keeps its connection open, checks it now and then (a network cut
sends no goodbye), and reconnects with backoff after an outage. Notifications
sent while it was away are lost, so a reconnect counts as a wake-up; rows that
fall due with nobody announcing them (written while no one listened) are found
by the worker's slow idle poll. The loop runs under a ``Supervisor``: an
error of a kind it does not expect restarts it rather than ending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from asyncpg import PostgresError

from ...errors import StoreUnavailable
from ...supervise import Liveness, Supervisor
from .pool import OUTAGE, Q

log = structlog.get_logger("herald.store.postgres")

CHANNEL = "herald_work"
CHECK_EVERY = 5.0  # seconds between liveness checks of an idle connection
KEEP_DUE = 1024  # announced due times remembered


class WorkListener:
    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self._connect = connect
        self.connected = False
        self._woken = False  # work may be due now
        self._changed = asyncio.Event()  # woken, or a new due time announced
        self._due: list[float] = []  # announced due times still ahead (a heap)
        self._task: asyncio.Task[None] | None = None
        self.loops = Supervisor()

    @property
    def liveness(self) -> Liveness | None:
        """The listening loop's, once it has started."""
        return self.loops.loops.get("pg-listen")

    def start(self) -> None:
        if self._task is None:
            self._task = self.loops.spawn("pg-listen", self._run)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            due = float(payload) if payload else 0.0
        except ValueError:
            due = 0.0
        if due <= time.time():
            self.wake()
            return
        heapq.heappush(self._due, due)
        if len(self._due) > KEEP_DUE * 4:  # a flood of schedules: the soonest matter
            self._due = heapq.nsmallest(KEEP_DUE, self._due)
        self._changed.set()

    def wake(self) -> None:
        """Work may be due now (a notification, our own commit, a reconnect)."""
        self._woken = True
        self._changed.set()

    async def wait(self, timeout: float) -> None:
        """Return on a wake-up, when announced work falls due, or after ``timeout``."""
        end = time.time() + timeout
        while True:
            now = time.time()
            if self._woken:
                self._woken = False
                return
            if self._due and self._due[0] <= now:
                while self._due and self._due[0] <= now:
                    heapq.heappop(self._due)
                return
            left = min(end, self._due[0] if self._due else end) - now
            if left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _run(self, live: Liveness) -> None:
        delay = 0.1
        while True:
            try:
                conn = await self._connect()
            except StoreUnavailable as exc:
                log.warning("work_listener_down", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            try:
                await self._listen(conn, live)
            except (*OUTAGE, PostgresError) as exc:
                log.warning("work_listener_lost", error=str(exc))
            finally:
                self.connected = False
                with contextlib.suppress(*OUTAGE):
                    conn.terminate()
            delay = 0.1

    async def _listen(self, conn: asyncpg.Connection, live: Liveness) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self.connected = True
        self.wake()  # whatever was notified while we were away
        log.info("work_listener_connected")
        live.ok()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), CHECK_EVERY)
            if not lost.is_set():
                await conn.execute(Q["ping"], timeout=CHECK_EVERY)
                live.ok()
        log.warning("work_listener_lost", error="connection closed")

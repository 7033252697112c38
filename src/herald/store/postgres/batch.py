"""Group commit for PostgreSQL: concurrent ``create`` calls share one transaction.

Requests queue up; a committer task takes everything waiting (up to
``max_rows`` notifications) and inserts it in one transaction (the rows and
the NOTIFY): one statement that is its own transaction, or a COPY and the
NOTIFY. Each caller's
future is resolved only after that COMMIT, so nobody hears "stored" before
their rows are durable (``synchronous_commit = on``). While one transaction
commits, the next burst gathers; ``parallel``
transactions may be in flight at once, so one fsync never idles the process.

A request whose rows the database refuses must not fail the requests it
happened to share a transaction with: a failed batch is retried one request
per transaction, and only the guilty one fails. An outage fails them all with
``StoreUnavailable`` (nothing was committed, or nobody can tell; the API says
503 and the client retries).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import asyncpg
import structlog

from ...errors import StoreUnavailable
from ...models import NewNotification
from .pool import Pool

log = structlog.get_logger("herald.store.postgres")

R = TypeVar("R")  # what the write answers per notification
#: Stores the notifications in one transaction: ONE write statement (it runs as its own
#: transaction), or a transaction the write opens itself.
Write = Callable[[asyncpg.Connection, list[NewNotification], float], Awaitable[list[R]]]


@dataclass(slots=True)
class _Request(Generic[R]):
    items: Sequence[NewNotification]
    future: asyncio.Future[list[R]]


class GroupCommit(Generic[R]):
    def __init__(
        self,
        pool: Pool,
        write: Write[R],
        on_commit: Callable[[], None],
        max_rows: int = 5000,
        parallel: int = 2,
    ) -> None:
        self._pool = pool
        self._write = write
        self._on_commit = on_commit
        self._max_rows = max_rows
        self._slots = asyncio.Semaphore(parallel)
        self._queue: collections.deque[_Request[R]] = collections.deque()
        self._ready = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.commits = 0  # transactions committed; tests read it

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="herald-pg-groupcommit")

    async def stop(self) -> None:
        """Commit what is queued, then stop; later submissions are refused."""
        self._closing = True
        while self._queue or self._inflight:
            self._ready.set()
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def submit(self, items: Sequence[NewNotification]) -> list[R]:
        if self._closing or self._task is None:
            raise StoreUnavailable("store is not open")
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(items, future))
        self._ready.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            await self._slots.acquire()
            batch: list[_Request[R]] = []
            rows = 0
            while self._queue and (not batch or rows + len(self._queue[0].items) <= self._max_rows):
                request = self._queue.popleft()
                if not request.future.cancelled():
                    batch.append(request)
                    rows += len(request.items)
            if not self._queue:
                self._ready.clear()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._commit(batch))
            self._inflight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _commit(self, batch: list[_Request[R]]) -> None:
        items = [item for request in batch for item in request.items]
        now = time.time()
        try:
            created = await self._pool.transaction(
                lambda conn: self._write(conn, items, now), single=True
            )
        except StoreUnavailable as exc:
            for request in batch:
                _settle(request.future, error=exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0].future, error=exc)
                return
            log.info("group_commit_split", requests=len(batch), error=str(exc))
            for request in batch:
                await self._commit([request])
            return
        self.commits += 1
        start = 0
        for request in batch:
            end = start + len(request.items)
            _settle(request.future, created[start:end])
            start = end
        self._on_commit()


def _settle(
    future: asyncio.Future[list[R]],
    value: list[R] | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # the caller went away; its rows are committed all the same
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value or [])

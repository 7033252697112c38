"""Group commit for SQLite: one writer thread, one transaction per burst.

Every write is a function of a connection, queued to the writer thread. The
thread takes whatever has queued up (up to ``max_batch``), runs each inside a
savepoint of one transaction, commits once, and only then resolves the callers'
futures. With ``synchronous=FULL`` the fsync is paid once per burst instead of
once per request, and nobody hears "done" before their row is on disk.
A failing write rolls back to its own savepoint and fails alone.

If the thread itself dies (an error no write should raise, a broken
connection), every write it held and every later one fails at once with
``StoreUnavailable``, rather than waiting for ever for a commit that will
never come; ``dead`` says why, and the store's health checks raise it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from ...errors import StoreUnavailable

log = structlog.get_logger("herald.store.sqlite")

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]
_Item = tuple[Write, "asyncio.Future[Any]", bool]


class GroupCommitWriter:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        loop: asyncio.AbstractEventLoop,
        on_work: Callable[[], None],
        max_batch: int = 1024,
    ) -> None:
        self._connect = connect
        self._loop = loop
        self._on_work = on_work
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="herald-sqlite-writer", daemon=True)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._dead: str | None = None
        self._gate = threading.Lock()  # orders submit() against the thread's death
        self.commits = 0  # transactions committed; tests and metrics read it

    @property
    def dead(self) -> str | None:
        """Why the writer thread is gone, or None while it runs."""
        return self._dead

    def check(self) -> None:
        """Raise ``StoreUnavailable`` if writes can no longer commit."""
        if self._dead is not None:
            raise StoreUnavailable(self._dead)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise StoreUnavailable(f"cannot open the database: {self._failure}")

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def submit(self, write: Write, wakes: bool = False) -> asyncio.Future[Any]:
        """Queue ``write``; the future resolves after the commit that holds it.

        ``wakes`` says the write makes work due, so idle workers are woken.
        """
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._gate:
            if self._dead is None:
                self._queue.put((write, future, wakes))
                return future
        future.set_exception(StoreUnavailable(self._dead))
        return future

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start()
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        batch: list[_Item] = []
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                results = self._commit(conn, batch)
                wakes = any(item[2] for item in batch)
                self._loop.call_soon_threadsafe(self._resolve, results, wakes)
                batch = []
                if stop:
                    return
        except BaseException as exc:  # logged here: nobody joins this thread to see it
            log.critical("store_writer_died", error=repr(exc)[:300], pending=len(batch))
            self._die(f"the database writer stopped: {type(exc).__name__}: {exc}", batch)
        finally:
            self._die("the store is closed", [])
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _die(self, reason: str, held: list[_Item]) -> None:
        """Refuse later writes, and fail ``held`` and whatever is still queued."""
        with self._gate:
            if self._dead is None:
                self._dead = reason
        failure = StoreUnavailable(self._dead)
        items = list(held)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
        if not items:
            return
        results = [(future, None, failure) for _, future, _ in items]
        with contextlib.suppress(RuntimeError):  # the event loop is gone: nobody waits
            self._loop.call_soon_threadsafe(self._resolve, results, False)

    def _commit(self, conn: sqlite3.Connection, batch: list[_Item]) -> list[tuple[Any, Any, Any]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            log.warning("store_write_refused", error=str(exc), batch=len(batch))
            failure = StoreUnavailable(f"database busy or unavailable: {exc}")
            return [(future, None, failure) for _, future, _ in batch]
        results: list[tuple[Any, Any, Any]] = []
        guarded = len(batch) > 1
        for write, future, _ in batch:
            if guarded:
                conn.execute("SAVEPOINT op")
            try:
                results.append((future, write(conn), None))
            except Exception as exc:
                if guarded:
                    conn.execute("ROLLBACK TO op")
                results.append((future, None, _translate(exc)))
            if guarded:
                conn.execute("RELEASE op")
        if not guarded and results[0][2] is not None:
            conn.execute("ROLLBACK")
            return results
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store_commit_failed", error=str(exc), batch=len(batch))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            failure = StoreUnavailable(f"commit failed: {exc}")
            return [(future, None, failure) for future, _, _ in results]
        self.commits += 1
        return results

    def _resolve(self, results: list[tuple[Any, Any, Any]], wakes: bool) -> None:
        for future, value, error in results:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)
        if wakes:
            self._on_work()


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(str(exc))
    return exc

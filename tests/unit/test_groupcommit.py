"""The SQLite group-commit writer: a dead writer thread fails writes, it never hangs them."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from herald.errors import StoreUnavailable
from herald.store.sqlite import SQLiteStore
from herald.store.sqlite.groupcommit import GroupCommitWriter


class WriterKilled(BaseException):
    """Not an Exception: no write's own error handling catches it, so the thread dies."""


def connect(path: Path) -> Any:
    return lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False)


async def test_a_dead_writer_fails_pending_and_later_writes_at_once(tmp_path: Path) -> None:
    writer = GroupCommitWriter(connect(tmp_path / "w.db"), asyncio.get_running_loop(), lambda: None)
    writer.start()
    assert await writer.submit(lambda c: c.execute("CREATE TABLE t (x)").rowcount) == -1
    holding, dying = threading.Event(), threading.Event()

    def fatal(conn: sqlite3.Connection) -> None:
        holding.set()
        dying.wait(5)
        raise WriterKilled

    first = writer.submit(fatal)
    assert await asyncio.to_thread(holding.wait, 5)
    queued = [writer.submit(lambda c: c.execute("INSERT INTO t VALUES (1)")) for _ in range(3)]
    dying.set()
    async with asyncio.timeout(5):  # without the fix these wait for ever
        for future in (first, *queued):
            with pytest.raises(StoreUnavailable, match="writer stopped: WriterKilled"):
                await future
        with pytest.raises(StoreUnavailable, match="writer stopped"):
            await writer.submit(lambda c: None)
    assert writer.dead is not None
    with pytest.raises(StoreUnavailable):
        writer.check()
    writer.stop()


async def test_a_stopped_writer_refuses_writes(tmp_path: Path) -> None:
    writer = GroupCommitWriter(connect(tmp_path / "w.db"), asyncio.get_running_loop(), lambda: None)
    writer.start()
    await asyncio.to_thread(writer.stop)
    async with asyncio.timeout(2):
        with pytest.raises(StoreUnavailable, match="closed"):
            await writer.submit(lambda c: None)


async def test_the_store_cannot_commit_once_its_writer_died(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.open()
    try:
        await store.heartbeat("i1")
        assert store._writer is not None

        def fatal(conn: sqlite3.Connection) -> None:
            raise WriterKilled

        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store._writer.submit(fatal), 5)
        async with asyncio.timeout(5):
            with pytest.raises(StoreUnavailable):
                await store.heartbeat("i1")  # health reports the store unavailable
            with pytest.raises(StoreUnavailable):
                await store.ping()  # reads still answer; the store as a whole does not
    finally:
        await store.close()

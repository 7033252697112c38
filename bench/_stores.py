"""The store a benchmark runs on: a SQLite file, or a throwaway PostgreSQL database.

``--store postgres`` uses the server at ``POSTGRES_BENCH_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``): a database with a random
name (``herald_bench_<hex>``) is created for the run and dropped afterwards,
``WITH (FORCE)``. Queries from outside Herald (progress polls, final counts)
go through ``Database.scalar`` and ``Database.rows`` on either store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from _common import STORES, sqlite_readonly
from herald.store.base import Store

ADMIN_URL = os.environ.get("POSTGRES_BENCH_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
__all__ = ["ADMIN_URL", "STORES", "Database", "admin", "database"]


class Database:
    """One store's database, seen from outside Herald (read-only use)."""

    def __init__(self, kind: str, url: str, path: Path | None) -> None:
        self.kind = kind
        self.url = url
        self.path = path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._stack = contextlib.ExitStack()

    def open_store(self) -> Store:
        """A Herald store object on this database (not yet opened), for seeding."""
        if self.path is not None:
            from herald.store.sqlite import SQLiteStore

            return SQLiteStore(str(self.path))
        from herald.store.postgres import PostgresStore

        return PostgresStore(self.url, pool_size=4)

    def scalar(self, query: str) -> Any:
        return self.rows(query)[0][0]

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.path is not None:
            if self._sqlite is None:
                self._sqlite = self._stack.enter_context(sqlite_readonly(self.path))
            return [tuple(r) for r in self._sqlite.execute(query).fetchall()]
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._pg = self._loop.run_until_complete(asyncpg.connect(self.url))
        assert self._pg is not None
        return [tuple(r) for r in self._loop.run_until_complete(self._pg.fetch(query))]

    def close(self) -> None:
        self._stack.close()
        self._sqlite = None
        if self._loop is not None:
            if self._pg is not None:
                self._loop.run_until_complete(self._pg.close())
            self._loop.close()
            self._loop, self._pg = None, None


async def admin(statement: str) -> None:
    """Run one statement (CREATE or DROP DATABASE) on the server's admin database."""
    conn = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[Database]:
    """A fresh, empty database of ``kind`` for one run; removed afterwards."""
    if kind == "sqlite":
        path = work / "herald.db"
        db = Database(kind, f"sqlite:///{path}", path)
        try:
            yield db
        finally:
            db.close()
        return
    name = f"herald_bench_{secrets.token_hex(6)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    db = Database(kind, f"{ADMIN_URL.rpartition('/')[0]}/{name}", None)
    try:
        yield db
    finally:
        db.close()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

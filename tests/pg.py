"""Throwaway PostgreSQL databases for tests, on the server already running on the machine.

The server is ``postgresql://postgres@127.0.0.1:5432`` (trust auth), or the
URL in ``POSTGRES_TEST_URL``. Each database gets a random name
(``herald_test_<hex>``) and is dropped afterwards ``WITH (FORCE)``, so a test
that left processes connected still cleans up. When the server cannot be
reached, tests say so: in CI (``CI=true``) they FAIL, elsewhere they skip.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import asyncpg
import pytest

ADMIN_URL = os.environ.get("POSTGRES_TEST_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` on an event loop of its own in another thread.

    Safe from sync fixtures and from inside a running loop alike.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(lambda: asyncio.run(work())).result()


def url_of(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@functools.cache
def unreachable() -> str | None:
    """Why the server cannot be used, or None when it can (asked once per test run)."""

    async def probe() -> None:
        conn = await asyncpg.connect(ADMIN_URL, timeout=3)
        await conn.close()

    try:
        run(probe)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def require() -> None:
    """Fail (in CI) or skip (elsewhere) unless the PostgreSQL server answers."""
    reason = unreachable()
    if reason is None:
        return
    message = f"PostgreSQL is unreachable at {ADMIN_URL} ({reason})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI runs every test against PostgreSQL too", pytrace=False)
    pytest.skip(message)


async def admin(statement: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on the server's ``postgres`` database."""
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(statement, *args)
        return rows
    finally:
        await conn.close()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A new, empty database; yields its URL and drops it afterwards."""
    require()
    name = f"herald_test_{secrets.token_hex(6)}"
    run(lambda: admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url_of(name)
    finally:
        run(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def database_name(url: str) -> str:
    return url.rpartition("/")[2]


async def cut_connections(url: str) -> int:
    """Terminate every backend of the database (its clients see their connections die)."""
    rows = await admin(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = $1 AND pid <> pg_backend_pid()",
        database_name(url),
    )
    return int(rows[0][0])


async def allow_connections(url: str, allowed: bool) -> None:
    """Let the database take new connections, or refuse them (an outage of one database)."""
    flag = "true" if allowed else "false"
    await admin(f'ALTER DATABASE "{database_name(url)}" WITH ALLOW_CONNECTIONS {flag}')

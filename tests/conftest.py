"""Fixtures shared by every test folder."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from herald.config import Settings
from herald.store.base import Store
from herald.store.memory import MemoryStore
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SQLiteStore
from tests import pg

#: The admin key every test Herald accepts (HERALD_ADMIN_KEY), and the header carrying it.
ADMIN_KEY = "hk_test-admin-key-for-the-suite-only-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on a throwaway SQLite file, ignoring any ``.env`` and HERALD_ variables."""
    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'herald.db'}",
        "port": free_port(),
        "retry_jitter": 0,
        "log_level": "warning",
        "admin_key": ADMIN_KEY,
    }
    return Settings(_env_file=None, **{**base, **overrides})


@pytest.fixture(autouse=True)
def _no_herald_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("HERALD_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _logging_as_found() -> Iterator[None]:
    """Undo what ``logs.configure`` did in this process (a CLI command run in-process calls
    it): its root handler writes to the stream of the test that ran it, its loggers are
    cached past ``structlog.testing.capture_logs``, and httpx's lines are held back."""
    yield
    import logging
    import sys

    import structlog

    from herald import logs

    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logs._Lines)]:
        root.removeHandler(handler)
    for name in logs.QUIET:
        logging.getLogger(name).setLevel(logging.NOTSET)
    sys.excepthook = sys.__excepthook__


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every store test runs once per store implementation."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of the ``backend`` kind: a SQLite file, or a throwaway PostgreSQL
    database with a random name, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    if backend == "memory":
        yield ""  # the memory store has no database
        return
    with pg.throwaway_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for tests that need that store in particular."""
    with pg.throwaway_database() as url:
        yield url


@pytest_asyncio.fixture
async def store(backend: str, database_url: str) -> AsyncIterator[Store]:
    opened: Store
    if backend == "sqlite":
        opened = SQLiteStore(database_url.removeprefix("sqlite:///"))
    elif backend == "memory":
        opened = MemoryStore()
    else:
        opened = PostgresStore(database_url, pool_size=4)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()

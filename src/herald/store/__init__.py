"""Stores: the source of truth and the queue at once (DESIGN 1, 2)."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from .base import ListFilter, Store


def open_store(settings: Settings) -> Store:
    """The store named by ``HERALD_DATABASE_URL`` (not yet opened)."""
    path = settings.sqlite_path
    if path is not None:
        from .sqlite import SQLiteStore

        return SQLiteStore(path, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    url = settings.postgres_url
    if url is not None:
        from .postgres import PostgresStore

        return PostgresStore(url, pool_size=settings.database_pool_size)
    raise ConfigError(
        f"HERALD_DATABASE_URL: unsupported database URL {settings.database_url!r} "
        "(expected sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE)"
    )


__all__ = ["ListFilter", "Store", "open_store"]

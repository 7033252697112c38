"""``herald`` processes on a throwaway PostgreSQL database (see ``tests/pg.py``).

The same runner as the SQLite one in ``conftest.py``; only the store and the
way a test looks at it from outside differ. ``seed`` stores notifications
straight into the database, as the SQLite tests' ``seed`` does into the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from herald.models import Channel, NewNotification
from herald.store.postgres import PostgresStore
from tests import pg
from tests.e2e.conftest import Herald, SMTPServer


class PgHerald(Herald):
    def __init__(self, workdir: Path, smtp: SMTPServer | None, database_url: str) -> None:
        super().__init__(workdir, smtp)
        self.database_url = database_url

    def base_env(self) -> dict[str, str]:
        env = super().base_env()
        # Several processes per test: keep each one's share of the server's connections small.
        env.update(HERALD_DATABASE_URL=self.database_url, HERALD_DATABASE_POOL_SIZE="4")
        return env

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a query on the test's database (a fresh connection); ``$1``-style parameters."""

        async def fetch() -> list[tuple[Any, ...]]:
            conn = await asyncpg.connect(self.database_url, timeout=10)
            try:
                return [tuple(r) for r in await conn.fetch(sql, *params)]
            finally:
                await conn.close()

        return pg.run(fetch)

    def status_counts(self) -> dict[str, int]:
        rows = self.query("SELECT status, count(*) FROM notifications GROUP BY status")
        return {status: count for status, count in rows}


async def seed(database_url: str, count: int, chunk: int = 5000) -> list[str]:
    """Store ``count`` queued emails directly (no API) and return their ids."""
    store = PostgresStore(database_url, pool_size=2)
    await store.open()
    ids: list[str] = []
    try:
        for start in range(0, count, chunk):
            created = await store.create(
                [
                    NewNotification(
                        channel=Channel.EMAIL,
                        recipient=f"user{i}@example.com",
                        subject=f"scale test {i}",
                        body=f"message {i}",
                    )
                    for i in range(start, min(count, start + chunk))
                ]
            )
            ids.extend(n.id for n in created)
    finally:
        await store.close()
    assert len(set(ids)) == count
    return ids

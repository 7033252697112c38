"""On PostgreSQL, processes that start together migrate once; the CLI works as on SQLite.

Four `herald migrate` started at once, and six stores opened at once in one
process, on a new database: the advisory lock makes them take turns, so each
migration is applied exactly once and every one of them succeeds. Then
`herald send` and `herald queues` work on it as they do on SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from herald.store.postgres import PostgresStore
from herald.store.sql import migrations
from tests import pg


def start(tmp_path: Path, url: str, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATABASE_URL=url, HERALD_LOG_LEVEL="warning", COLUMNS="200")
    return subprocess.Popen(
        [sys.executable, "-m", "herald.cli", *args], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out


def test_concurrent_migrations_apply_each_once(tmp_path: Path, pg_url: str) -> None:
    racing = [start(tmp_path, pg_url, "migrate") for _ in range(4)]
    assert all("up to date" in finish(p) for p in racing)

    assert sorted(pg.run(lambda: _versions(pg_url))) == [m.version for m in migrations("postgres")]

    send = ("send", "--to", "a@example.com", "--subject", "s", "--message", "hello")
    sent = json.loads(finish(start(tmp_path, pg_url, *send)))
    assert sent["status"] == "QUEUED"
    email_row = next(
        line for line in finish(start(tmp_path, pg_url, "queues")).splitlines() if " email " in line
    )
    cells = [cell.strip() for cell in email_row.strip("│ ").split("│")]
    assert cells[:2] == ["email", "1"], email_row  # one waiting


async def test_stores_opening_together_apply_each_migration_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, pool_size=2) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        # The stores raced to migrate inside open(); now every migration is applied once,
        # so asking again applies nothing anywhere.
        assert await asyncio.gather(*(s.migrate() for s in stores)) == [[]] * 6
        assert sorted(pg.run(lambda: _versions(pg_url))) == [
            m.version for m in migrations("postgres")
        ]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def _versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
    finally:
        await conn.close()

"""``herald backup PATH`` while Herald takes notifications and delivers them.

The backup is one consistent moment of the store: every notification
acknowledged before the backup began is in it, nothing in it is unknown to
the live store, the file passes ``PRAGMA integrity_check``, and ``herald up``
started on it serves exactly those notifications.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

WRITERS = 4
NOTE = {"type": "EMAIL", "recipient": "backup@example.com", "subject": "Backup",
        "message": "Taken while this was written."}  # fmt: skip


class Writers:
    """Clients posting notifications until stopped, noting when each was acknowledged."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.acknowledged: list[tuple[float, str]] = []
        self.stopped = asyncio.Event()

    async def write(self) -> None:
        while not self.stopped.is_set():
            reply = await self.client.post("/api/notifications", json=NOTE)
            assert reply.status_code == 201, reply.text
            self.acknowledged.append((time.monotonic(), reply.json()["data"]["_id"]))

    def before(self, moment: float) -> set[str]:
        return {i for at, i in self.acknowledged if at < moment}


async def backup(herald, path: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", "backup", str(path), *args,
        env=herald.base_env(), cwd=herald.workdir,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def listed(url: str) -> set[str]:
    """Every notification id the API at ``url`` lists, page by page."""
    found: set[str] = set()
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
        page, pages = 1, 1
        while page <= pages:
            reply = await client.get("/api/notifications", params={"page": page, "limit": 100})
            assert reply.status_code == 200, reply.text
            data = reply.json()["data"]
            found |= {n["_id"] for n in data["notifications"]}
            pages = data["pagination"]["totalPages"]
            page += 1
    return found


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_backup_of_a_running_herald_restores_every_acknowledged_row(herald) -> None:
    live = await herald.start_http("up", HERALD_API_RATE_LIMIT="100000/s")
    target = herald.workdir / "backups" / "herald.db"
    target.parent.mkdir()
    # A reader holding one transaction open keeps SQLite from checkpointing: every
    # notification below stays in the -wal file only, where a copy of the main
    # database file would miss it.
    pin = sqlite3.connect(herald.db_path)
    pin.execute("BEGIN")
    pin.execute("SELECT count(*) FROM notifications").fetchone()
    async with httpx.AsyncClient(base_url=live.url, headers=AUTH, timeout=10) as client:
        writers = Writers(client)
        tasks = [asyncio.create_task(writers.write()) for _ in range(WRITERS)]
        await herald.poll(lambda: len(writers.acknowledged) >= 100, 30, "100 notifications",
                          watch=[live])  # fmt: skip
        began = time.monotonic()
        code, output = await backup(herald, target)
        count = len(writers.acknowledged)
        await herald.poll(lambda: len(writers.acknowledged) >= count + 20, 30,
                          "writes after the backup", watch=[live])  # fmt: skip
        writers.stopped.set()
        await asyncio.gather(*tasks)
    pin.close()
    assert code == 0, output
    assert f"to {target}" in output

    assert rows(target, "PRAGMA integrity_check") == [("ok",)]
    assert rows(target, "PRAGMA journal_mode") == [("delete",)]
    assert sorted(p.name for p in target.parent.iterdir()) == ["herald.db"]  # no temp left
    assert target.stat().st_mode & 0o077 == 0
    saved = {i for (i,) in rows(target, "SELECT id FROM notifications")}
    everything = {i for _, i in writers.acknowledged}
    assert writers.before(began) <= saved <= everything

    restored = await herald.start_http("up", HERALD_DATABASE_URL=f"sqlite:///{target}")
    assert await listed(restored.url) == saved

"""What the SQL stores write for a notification's history, and how migration 007 converts it.

The contract tests read history through ``Store.audit``; these look at the
tables: a new notification is one row, an attempt adds one audit row, and a
database from before migration 007 keeps the history it stored, with nothing
derived a second time.
"""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import asyncpg
import pytest

from herald.models import Channel, Claim, NewNotification, Priority, Sent, Status
from herald.store import records, sql
from herald.store.base import Store
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SQLiteStore, _statements


def email(n: int = 0, **kw: Any) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s", **kw)


async def rows(backend: str, url: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """``query`` (PostgreSQL placeholders) on the store's database, on a connection of its own."""
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute(re.sub(r"\$(\d+)", r"?\1", query), args).fetchall()
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(query, *args)]
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_new_notification_is_one_row_and_an_attempt_one_more(
    store: Store, backend: str, database_url: str
) -> None:
    created = await store.create([email(1), email(2, scheduled_at=time.time() + 3600)])
    await store.create_many([email(3), email(4)])
    assert await rows(backend, database_url, "SELECT count(*) FROM audit") == [(0,)]
    claims = await store.claim(10, 30)
    assert len(claims) == 3
    assert await rows(backend, database_url, "SELECT count(*) FROM audit") == [(0,)]
    now = time.time()
    assert await store.complete([Sent(c, "smtp", f"m-{c.id}", 1.0, now) for c in claims]) == 3
    stored = await rows(backend, database_url, "SELECT status, started_at, attempt FROM audit")
    claimed_at = claims[0].claimed_at
    assert sorted(stored) == [("SENT", claimed_at, 1)] * 3, "one row per attempt, with its start"
    later = await store.audit("default", created[1].id)
    assert [e.status for e in later] == [Status.PENDING, Status.SCHEDULED]


#: Rows as the stores wrote them before migration 007: a queued notification, one in
#: flight (claimed, token "old") and one sent, each with every entry stored.
LEGACY_CREATED = 1_000.0
LEGACY = [
    ("00000000000000000000000000000001", "QUEUED", None, 0),
    ("00000000000000000000000000000002", "PROCESSING", "old", 1),
    ("00000000000000000000000000000003", "SENT", None, 1),
]
LEGACY_AUDIT = {
    "QUEUED": [("PENDING", "Notification created"), ("QUEUED", "Added to queue")],
    "PROCESSING": [("PENDING", "Notification created"), ("QUEUED", "Added to queue"),
                   ("PROCESSING", records.CLAIMED)],
    "SENT": [("PENDING", "Notification created"), ("QUEUED", "Added to queue"),
             ("PROCESSING", records.CLAIMED), ("SENT", "Successfully sent via smtp")],
}  # fmt: skip


async def _legacy_database(backend: str, url: str) -> None:
    """Migrations 001 to 006 and the rows they held, written as the stores wrote them then."""
    inserts = [
        (
            "INSERT INTO notifications (id, tenant_id, channel, recipient, body, metadata,"
            " priority, status, queue, due_at, attempts, claim_token, lease_until, created_at,"
            " updated_at) VALUES ($1, 'default', 'EMAIL', 'a@example.com', 'b', '{}', 1, $2,"
            " 'email', $3, $4, $5, $6, $3, $3)",
            (note_id, status, LEGACY_CREATED, attempts, token, lease),
        )
        for note_id, status, token, attempts in LEGACY
        for lease in [LEGACY_CREATED + 1 if token else None]
    ]
    inserts += [
        (
            "INSERT INTO audit (notification_id, tenant_id, status, message, at)"
            " VALUES ($1, 'default', $2, $3, $4)",
            (note_id, entry, message, LEGACY_CREATED + n),
        )
        for note_id, status, _, _ in LEGACY
        for n, (entry, message) in enumerate(LEGACY_AUDIT[status])
    ]
    old = [m for m in sql.migrations(backend) if m.version <= 6]
    if backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql.queries("sqlite")["migrations_table"])
            for migration in old:
                for statement in _statements(migration.sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, 0)", (migration.version,))
            for query, args in inserts:
                conn.execute(re.sub(r"\$(\d+)", r"?\1", query), args)
        return
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql.queries("postgres")["migrations_table"])
        for migration in old:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations VALUES ($1, 0)", migration.version)
        for query, args in inserts:
            await conn.execute(query, *args)
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migration_keeps_stored_history_and_derives_nothing_twice(
    backend: str, database_url: str
) -> None:
    await _legacy_database(backend, database_url)
    store: Store = (
        SQLiteStore(database_url.removeprefix("sqlite:///"))
        if backend == "sqlite"
        else PostgresStore(database_url, pool_size=2)
    )
    await store.open()
    try:
        queued, flying, sent = (note_id for note_id, *_ in LEGACY)
        for note_id, status, *_ in LEGACY:
            log = await store.audit("default", note_id)
            assert [(e.status.value, e.message) for e in log] == LEGACY_AUDIT[status]
            assert [e.id for e in log] == list(range(1, len(log) + 1))
        # The claim made before the upgrade ends with one row, and no second PROCESSING.
        old = Claim(flying, "default", Channel.EMAIL, "a@example.com", None, "b", None, {},
                    Priority.MEDIUM, 1, "old", LEGACY_CREATED + 1)  # fmt: skip
        assert await store.complete([Sent(old, "smtp", "m-old", 1.0, time.time())]) == 1
        log = await store.audit("default", flying)
        assert [e.status for e in log] == [Status.PENDING, Status.QUEUED, Status.PROCESSING,
                                          Status.SENT]  # fmt: skip
        # An old queued row is claimed and sent by the new code: its history goes on.
        [claim] = await store.claim(10, 30)
        assert claim.id == queued
        assert [e.status for e in await store.audit("default", queued)] == [
            Status.PENDING, Status.QUEUED, Status.PROCESSING]  # fmt: skip
        await store.complete([Sent(claim, "smtp", "m-new", 1.0, time.time())])
        log = await store.audit("default", queued)
        assert [e.status for e in log] == [Status.PENDING, Status.QUEUED, Status.PROCESSING,
                                          Status.SENT]  # fmt: skip
        assert log[2].at == claim.claimed_at and log[2].metadata == {"attempt": 1}
        # A row created after the upgrade derives its creation entries.
        [fresh] = await store.create([email(1)])
        assert [e.status for e in await store.audit("default", fresh.id)] == [
            Status.PENDING, Status.QUEUED]  # fmt: skip
        assert len(await store.audit("default", sent)) == 4
    finally:
        await store.close()

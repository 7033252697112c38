"""The embedded store: SQLite in WAL mode with ``synchronous=FULL``.

Writes go through one writer thread with group commit (``groupcommit.py``);
reads run on a small pool of reader threads with connections of their own,
which WAL lets proceed while a write is in progress. Several processes may
share one file: ``BEGIN IMMEDIATE`` with a busy timeout serialises their
writers, and a store that cannot get the lock reports ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import structlog

from ..errors import StoreUnavailable
from ..events import EventFilter, EventPage, EventRecord, EventStats, EventType, NewEvent
from ..models import (
    AuditEntry,
    Channel,
    Claim,
    Dead,
    MailboxMessage,
    NewNotification,
    Notification,
    Outcome,
    Page,
    Priority,
    QueueCounts,
    Retry,
    Sent,
    Stats,
    Status,
    new_id,
)
from ..templates import Template, TemplateDraft
from . import records, sql, sqlite_events
from .access import Access, Row, statements
from .base import BreakerState, Created, DlqFilter, IdempotencyRecord, ListFilter, Store
from .groupcommit import GroupCommitWriter
from .rows import breakdown_stats, notification_from_row, queue_counts, status_callback

log = structlog.get_logger("herald.store.sqlite")
T = TypeVar("T")
Q = sql.queries("sqlite")
A = statements("sqlite")


class SQLiteStore(Store):
    def __init__(self, path: str, busy_timeout_ms: int = 5000, readers: int = 2) -> None:
        if path in ("", ":memory:"):
            raise ValueError("SQLite store needs a file: several connections share it")
        self.path = path
        self._directory = os.path.dirname(os.path.abspath(path))
        self._busy_timeout_ms = busy_timeout_ms
        self._reader_count = readers
        self._local = threading.local()
        self._readers: ThreadPoolExecutor | None = None
        self._writer: GroupCommitWriter | None = None
        self._work = asyncio.Event()
        self._reader_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.access = Access(_AccessRunner(self))

    # -- lifecycle ----------------------------------------------------------

    def _connect(self, *, reader: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_ms / 1000,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        if reader:
            conn.execute("PRAGMA query_only = 1")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            # 16 MiB: the writer's hot pages (the ready and leased indexes, the
            # newest rows) fit, and the OS cache holds the rest of the file. At
            # 64 MiB a 100,000 backlog took the process past 175 MiB resident
            # with no gain in bench/drain.py or bench/bulk.py.
            conn.execute("PRAGMA cache_size = -16384")
        return conn

    async def open(self) -> None:
        await asyncio.to_thread(os.makedirs, self._directory, exist_ok=True)
        loop = asyncio.get_running_loop()
        self._writer = GroupCommitWriter(self._connect, loop, self._work.set)
        self._writer.start()
        self._readers = ThreadPoolExecutor(
            self._reader_count, thread_name_prefix="herald-sqlite-read"
        )
        await self.migrate()

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    async def migrate(self) -> list[int]:
        applied: list[int] = await self._write(_migrate)
        for version in applied:
            log.info("store_migrated", version=version, path=self.path)
        return applied

    async def ping(self) -> None:
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def heartbeat(self, instance: str) -> None:
        now = time.time()
        await self._write(lambda conn: conn.execute(Q["heartbeat"], (instance, now)))

    # -- plumbing -------------------------------------------------------------

    def _write(
        self, write: Callable[[sqlite3.Connection], T], wakes: bool = False
    ) -> asyncio.Future[T]:
        if self._writer is None:
            raise StoreUnavailable("store is not open")
        return self._writer.submit(write, wakes)

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreUnavailable("store is not open")

        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._connect(reader=True)
                conn.row_factory = sqlite3.Row
                self._local.conn = conn
                with self._lock:
                    self._reader_conns.append(conn)
            try:
                return read(conn)
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # -- the API's side -----------------------------------------------------

    async def create(self, items: Sequence[NewNotification]) -> list[Notification]:
        now = time.time()
        return await self._write(lambda conn: _create(conn, items, now), wakes=True)

    async def create_many(self, items: Sequence[NewNotification]) -> list[Created]:
        now = time.time()
        return await self._write(lambda conn: _create_many(conn, items, now), wakes=True)

    async def get(self, tenant_id: str, notification_id: str) -> Notification | None:
        row = await self._read(
            lambda c: c.execute(Q["get"], (tenant_id, notification_id)).fetchone()
        )
        return None if row is None else notification_from_row(row)

    async def audit(self, tenant_id: str, notification_id: str) -> list[AuditEntry]:
        rows = await self._read(
            lambda c: c.execute(Q["audit"], (notification_id, tenant_id)).fetchall()
        )
        return [
            AuditEntry(r[0], r[1], Status(r[2]), r[3], r[4], orjson.loads(r[5]) if r[5] else {})
            for r in rows
        ]

    async def find(self, tenant_id: str, where: ListFilter, page: int, limit: int) -> Page:
        params = {
            "tenant": tenant_id,
            "status": where.status.value if where.status else None,
            "channel": where.channel.value if where.channel else None,
            "priority": int(where.priority) if where.priority is not None else None,
            "limit": limit,
            "offset": (page - 1) * limit,
        }

        def read(conn: sqlite3.Connection) -> Page:
            total = conn.execute(Q["count_filtered"], params).fetchone()[0]
            rows = conn.execute(Q["list_filtered"], params).fetchall()
            return Page([notification_from_row(r) for r in rows], total, page, limit)

        return await self._read(read)

    async def stats(self, tenant_id: str) -> Stats:
        def read(conn: sqlite3.Connection) -> Stats:
            rows = conn.execute(Q["breakdown"], (tenant_id,)).fetchall()
            queues = conn.execute(Q["queue_counts"], {"tenant": tenant_id, "now": time.time()})
            return breakdown_stats([tuple(r) for r in rows], [tuple(r) for r in queues])

        return await self._read(read)

    async def queues(self, tenant_id: str) -> list[QueueCounts]:
        def read(conn: sqlite3.Connection) -> list[QueueCounts]:
            rows = conn.execute(Q["queue_counts"], {"tenant": tenant_id, "now": time.time()})
            paused = {r[0] for r in conn.execute(Q["paused"])}
            return queue_counts([tuple(r) for r in rows], paused)

        return await self._read(read)

    async def backlog(self) -> int:
        now = time.time()
        row = await self._read(lambda c: c.execute(Q["backlog"], (now,)).fetchone())
        return int(row[0])

    async def set_paused(self, queue: str, paused: bool) -> None:
        now = time.time()
        await self._write(
            lambda c: c.execute(Q["set_paused"], (queue, int(paused), now)), wakes=True
        )

    async def cancel(self, tenant_id: str, notification_id: str, actor: str | None = None) -> bool:
        now = time.time()

        def write(conn: sqlite3.Connection) -> bool:
            params = {"tenant": tenant_id, "id": notification_id, "now": now}
            if conn.execute(Q["cancel"], params).fetchone() is None:
                return False
            audit = (
                notification_id,
                tenant_id,
                "CANCELLED",
                records.cancelled(actor),
                now,
                None,
            )
            conn.execute(Q["insert_audit"], audit)
            return True

        return await self._write(write)

    async def dlq(self, tenant_id: str, where: DlqFilter, page: int, limit: int) -> Page:
        params = {**_dlq_params(tenant_id, where), "limit": limit, "offset": (page - 1) * limit}

        def read(conn: sqlite3.Connection) -> Page:
            total = conn.execute(Q["dlq_count"], params).fetchone()[0]
            rows = conn.execute(Q["dlq_filtered"], params).fetchall()
            return Page([notification_from_row(r) for r in rows], total, page, limit)

        return await self._read(read)

    async def replay(
        self, tenant_id: str, ids: Sequence[str] | None, where: DlqFilter | None, actor: str,
        limit: int = 10_000,
    ) -> list[str]:  # fmt: skip
        now = time.time()

        def write(conn: sqlite3.Connection) -> list[str]:
            chosen = list(ids or [])
            if ids is None:
                params = {**_dlq_params(tenant_id, where or DlqFilter()), "limit": limit}
                chosen = [r[0] for r in conn.execute(Q["dlq_ids"], params)]
            done = []
            for notification_id in chosen:
                params = {"tenant": tenant_id, "id": notification_id, "now": now}
                if conn.execute(Q["replay"], params).rowcount:
                    done.append(notification_id)
            text = records.replayed(actor)
            meta = orjson.dumps({"actor": actor}).decode()
            rows = [(i, tenant_id, "QUEUED", text, now, meta) for i in done]
            conn.executemany(Q["insert_audit"], rows)
            return done

        return await self._write(write, wakes=True)

    async def delete_dead(self, tenant_id: str, notification_id: str) -> bool:
        return await self._delete("dlq_delete", tenant_id, notification_id)

    async def delete_final(self, tenant_id: str, notification_id: str) -> bool:
        return await self._delete("final_delete", tenant_id, notification_id)

    async def _delete(self, query: str, tenant_id: str, notification_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            params = {"tenant": tenant_id, "id": notification_id}
            if not conn.execute(Q[query], params).rowcount:
                return False
            conn.execute(Q["delete_audit"], (notification_id,))
            conn.execute(Q["delete_mailbox"], (notification_id,))
            return True

        return await self._write(write)

    async def clean(self, created_before: float, batch: int = 5000) -> int:
        bound = f"{int(created_before * 1000):012x}"  # ids start with their creation time

        def write(conn: sqlite3.Connection) -> int:
            ids = [(r[0],) for r in conn.execute(Q["old_sent"], (bound, batch))]
            for query in ("delete_audit", "delete_mailbox", "delete_notification"):
                conn.executemany(Q[query], ids)
            return len(ids)

        removed = 0
        while True:  # in batches, so the writer is never held for long
            done = await self._write(write)
            removed += done
            if done < batch:
                return removed

    async def idempotency_begin(
        self, tenant_id: str, key: str, request_hash: str, expired_before: float
    ) -> IdempotencyRecord | None:
        now = time.time()

        def write(conn: sqlite3.Connection) -> IdempotencyRecord | None:
            row = conn.execute(Q["idempotency_get"], (tenant_id, key)).fetchone()
            if row is not None and row[3] >= expired_before:
                return IdempotencyRecord(row[0], row[1], row[2], row[3])
            if row is not None:
                conn.execute(Q["idempotency_forget"], (tenant_id, key))
            conn.execute(Q["idempotency_claim"], (tenant_id, key, request_hash, now))
            return None

        return await self._write(write)

    async def idempotency_finish(
        self, tenant_id: str, key: str, status_code: int, response: bytes
    ) -> None:
        params = (status_code, response, tenant_id, key)
        await self._write(lambda c: c.execute(Q["idempotency_finish"], params))

    async def idempotency_abandon(self, tenant_id: str, key: str) -> None:
        await self._write(lambda c: c.execute(Q["idempotency_abandon"], (tenant_id, key)))

    async def idempotency_expire(self, created_before: float) -> int:
        return await self._write(
            lambda c: c.execute(Q["idempotency_expire"], (created_before,)).rowcount
        )

    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        now = time.time()

        def write(conn: sqlite3.Connection) -> tuple[int, float]:
            row = conn.execute(Q["bucket"], (provider,)).fetchone()
            tokens, updated, paused = (burst, now, 0.0) if row is None else row
            if paused > now:
                return 0, paused - now
            tokens = min(burst, tokens + (now - updated) * rate)
            granted = min(want, int(tokens))
            conn.execute(Q["bucket_save"], (provider, tokens - granted, now, paused))
            return granted, 0.0 if granted else (1 - tokens) / rate

        return await self._write(write)

    async def pause_provider(self, provider: str, until: float) -> None:
        now = time.time()
        await self._write(lambda c: c.execute(Q["bucket_pause"], (provider, now, until)))

    async def record_breaker(self, state: BreakerState) -> None:
        b = state
        params = (b.instance, b.provider, b.state, b.failures, b.changed_at)
        await self._write(lambda c: c.execute(Q["breaker_save"], params))

    async def breakers(self) -> list[BreakerState]:
        rows = await self._read(lambda c: c.execute(Q["breakers"]).fetchall())
        return [BreakerState(*r) for r in rows]

    async def mailbox(
        self, tenant_id: str, limit: int, channel: Channel | None = None
    ) -> list[MailboxMessage]:
        params = {
            "tenant": tenant_id,
            "channel": channel.value if channel else None,
            "limit": limit,
        }
        rows = await self._read(lambda c: c.execute(Q["mailbox"], params).fetchall())
        return [MailboxMessage(r[0], r[1], r[2], Channel(r[3]), *r[4:]) for r in rows]

    # -- the worker's side --------------------------------------------------

    async def claim(
        self, limit: int, lease_seconds: float, min_priority: Priority = Priority.LOW
    ) -> list[Claim]:
        now = time.time()
        return await self._write(lambda c: _claim(c, limit, lease_seconds, min_priority, now))

    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        return await self._write(lambda c: _complete(c, outcomes))

    async def release(self, claims: Sequence[Claim]) -> int:
        if not claims:
            return 0
        now = time.time()

        def write(conn: sqlite3.Connection) -> int:
            done = 0
            for claim in claims:
                if conn.execute(Q["release"], (now, claim.id, claim.token)).rowcount:
                    entry = (claim.id, claim.tenant_id, "QUEUED", records.RELEASED, now, None)
                    conn.execute(Q["insert_audit"], entry)
                    done += 1
            return done

        return await self._write(write, wakes=True)

    async def sweep(self, max_attempts: int) -> int:
        now = time.time()
        return await self._write(lambda c: _sweep(c, max_attempts, now), wakes=True)

    async def capture(self, message: MailboxMessage) -> None:
        m = message
        values = (m.id, m.notification_id, m.tenant_id, m.channel.value, m.recipient)
        await self._write(
            lambda c: c.execute(Q["capture"], (*values, m.subject, m.body, m.html, m.at))
        )

    # -- templates, event types and events (the SQL work is in sqlite_events.py) -

    async def templates(
        self, tenant_id: str, name: str | None = None, version: int | None = None
    ) -> list[Template]:
        return await self._read(lambda c: sqlite_events.templates(c, tenant_id, name, version))

    async def save_template(self, tenant_id: str, draft: TemplateDraft, create: bool) -> Template:
        now = time.time()
        return await self._write(
            lambda c: sqlite_events.save_template(c, tenant_id, draft, create, now)
        )

    async def delete_templates(
        self, tenant_id: str, name: str, channel: Channel | None = None, locale: str | None = None
    ) -> int:
        return await self._write(
            lambda c: sqlite_events.delete_templates(c, tenant_id, name, channel, locale)
        )

    async def event_types(self, tenant_id: str) -> list[EventType]:
        return await self._read(lambda c: sqlite_events.event_types(c, tenant_id))

    async def save_event_type(
        self, tenant_id: str, event_type: EventType, create: bool
    ) -> EventType:
        now = time.time()
        return await self._write(
            lambda c: sqlite_events.save_event_type(c, tenant_id, event_type, create, now)
        )

    async def delete_event_type(self, tenant_id: str, name: str) -> bool:
        return await self._write(lambda c: sqlite_events.delete_event_type(c, tenant_id, name))

    async def create_event(
        self, event: NewEvent, items: Sequence[NewNotification]
    ) -> tuple[EventRecord, list[Notification]]:
        now = time.time()

        def write(conn: sqlite3.Connection) -> tuple[EventRecord, list[Notification]]:
            created = _create(conn, items, now)  # same write function: one transaction
            return sqlite_events.insert_event(conn, event, created), created

        return await self._write(write, wakes=True)

    async def get_event(self, tenant_id: str, event_id: str) -> EventRecord | None:
        return await self._read(lambda c: sqlite_events.get_event(c, tenant_id, event_id))

    async def find_events(
        self, tenant_id: str, where: EventFilter, page: int, limit: int
    ) -> EventPage:
        return await self._read(
            lambda c: sqlite_events.find_events(c, tenant_id, where, page, limit)
        )

    async def event_notifications(
        self, tenant_id: str, event_ids: Sequence[str]
    ) -> dict[str, list[Notification]]:
        return await self._read(
            lambda c: sqlite_events.event_notifications(c, tenant_id, event_ids)
        )

    async def verify_event(self, tenant_id: str, token_hash: str, not_before: float) -> EventRecord:
        now = time.time()
        return await self._write(
            lambda c: sqlite_events.verify(c, tenant_id, token_hash, not_before, now)
        )

    async def event_stats(self, tenant_id: str, event_type: str, since: float) -> EventStats:
        return await self._read(
            lambda c: sqlite_events.event_stats(c, tenant_id, event_type, since)
        )

    async def sensitive_notifications(
        self, tenant_id: str, notification_ids: Sequence[str]
    ) -> set[str]:
        if not notification_ids:
            return set()
        return await self._read(lambda c: sqlite_events.sensitive(c, tenant_id, notification_ids))


class _AccessRunner:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def rows(self, name: str, *args: Any) -> list[Row]:
        return await self._store._read(lambda c: c.execute(A[name], args).fetchall())

    async def write(self, name: str, *args: Any) -> list[Row]:
        return await self._store._write(lambda c: c.execute(A[name], args).fetchall())


def _dlq_params(tenant_id: str, where: DlqFilter) -> dict[str, Any]:
    return {
        "tenant": tenant_id,
        "channel": where.channel.value if where.channel else None,
        "error": where.error or None,
        "since": where.since,
        "until": where.until,
    }


# -- write transactions (run on the writer thread) -----------------------------


def _migrate(conn: sqlite3.Connection) -> list[int]:
    conn.execute(Q["migrations_table"])
    done = {r[0] for r in conn.execute(Q["migrations_done"])}
    applied = []
    for migration in sql.migrations("sqlite"):
        if migration.version in done:
            continue
        for statement in _statements(migration.sql):
            conn.execute(statement)
        conn.execute(Q["migration_applied"], (migration.version, time.time()))
        applied.append(migration.version)
    return applied


def _statements(script: str) -> list[str]:
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in current.splitlines()
    ):
        raise ValueError("migration ends with an incomplete statement")
    return statements


#: Rows per INSERT statement when many are stored at once. A statement per row
#: releases and re-takes the GIL around every row's step, and each re-take waits
#: while the event loop thread runs: with a busy thread beside it, 1,000 rows one
#: by one took 4.1 times as long as with it idle; 50 at a time, 2.7 times.
INSERT_CHUNK = 50
_NOTIFICATION_WIDTH = 17  # values per row of insert_notification
_AUDIT_WIDTH = 6  # values per row of insert_audit
_CHANNELS = {c: (c.value, c.queue) for c in Channel}  # dict lookups beat enum properties


def _chunked(query: str, rows: int) -> str:
    """``query`` (``INSERT ... VALUES (?, ...)``) made to insert ``rows`` rows at once."""
    head, values, one = query.rpartition("VALUES")
    return head + values + " " + ", ".join([one.strip()] * rows)


_INSERT_MANY = {
    name: _chunked(Q[name], INSERT_CHUNK) for name in ("insert_notification", "insert_audit")
}


def _insert(conn: sqlite3.Connection, name: str, values: list[Any], width: int) -> None:
    """Insert rows given as one flat list of ``width`` values each, ``INSERT_CHUNK`` at a time."""
    step = INSERT_CHUNK * width
    whole = len(values) - len(values) % step
    for start in range(0, whole, step):
        conn.execute(_INSERT_MANY[name], values[start : start + step])
    if whole < len(values):
        rest = values[whole:]
        conn.executemany(Q[name], [rest[i : i + width] for i in range(0, len(rest), width)])


def _new_rows(
    item: NewNotification, note_id: str, status: Status, due_at: float, now: float
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A new notification's insert_notification values, and its two audit rows' values."""
    channel, queue = _CHANNELS[item.channel]
    (first, first_text), (then, then_text) = records.created(status)
    row = (
        note_id, item.tenant_id, channel, item.recipient, item.subject, item.body, item.html,
        orjson.dumps(item.metadata).decode(), int(item.priority), status.value, queue, due_at,
        item.idempotency_key, item.scheduled_at, now, now, item.callback_url,
    )  # fmt: skip
    audit = (
        note_id, item.tenant_id, first, first_text, now, None,
        note_id, item.tenant_id, then, then_text, now, None,
    )  # fmt: skip
    return row, audit


def _store_rows(conn: sqlite3.Connection, rows: list[Any], audit: list[Any]) -> None:
    """Insert the values ``_new_rows`` made, each kind gathered in one flat list."""
    _insert(conn, "insert_notification", rows, _NOTIFICATION_WIDTH)
    _insert(conn, "insert_audit", audit, _AUDIT_WIDTH)


def _create(
    conn: sqlite3.Connection, items: Sequence[NewNotification], now: float
) -> list[Notification]:
    created: list[Notification] = []
    rows: list[Any] = []
    audit: list[Any] = []
    for item in items:
        if item.idempotency_key is not None:
            cursor = conn.cursor()
            cursor.row_factory = sqlite3.Row
            row = cursor.execute(
                Q["by_idempotency_key"], (item.tenant_id, item.idempotency_key)
            ).fetchone()
            if row is not None:
                created.append(notification_from_row(row))
                continue
        note = records.fresh(item, now)
        row, audit_rows = _new_rows(item, note.id, note.status, note.due_at, now)
        rows += row
        audit += audit_rows
        created.append(note)
    _store_rows(conn, rows, audit)
    return created


def _create_many(
    conn: sqlite3.Connection, items: Sequence[NewNotification], now: float
) -> list[Created]:
    """``_create`` without building a Notification per row (see ``Store.create_many``)."""
    if any(item.idempotency_key is not None for item in items):
        return [(n.id, n.status) for n in _create(conn, items, now)]
    created: list[Created] = []
    rows: list[Any] = []
    audit: list[Any] = []
    for item in items:
        status, due_at = records.placement(item, now)
        note_id = new_id(now)
        row, audit_rows = _new_rows(item, note_id, status, due_at, now)
        rows += row
        audit += audit_rows
        created.append((note_id, status))
    _store_rows(conn, rows, audit)
    return created


def _claim(
    conn: sqlite3.Connection, limit: int, lease_seconds: float, min_priority: Priority, now: float
) -> list[Claim]:
    token = os.urandom(8).hex()
    params = {
        "token": token,
        "lease_until": now + lease_seconds,
        "now": now,
        "min_priority": int(min_priority),
        "limit": limit,
    }
    rows = conn.execute(Q["claim"], params).fetchall()
    if not rows:
        return []
    claims = [
        Claim(
            id=r[0],
            tenant_id=r[1],
            channel=Channel(r[2]),
            recipient=r[3],
            subject=r[4],
            body=r[5],
            html=r[6],
            metadata=orjson.loads(r[7]),
            priority=Priority(r[8]),
            attempts=r[9],
            token=token,
            claimed_at=now,
            callback_url=r[10],
            unregistered=bool(r[11]),
        )
        for r in rows
    ]
    claims.sort(key=lambda c: -c.priority)
    conn.executemany(
        Q["insert_audit"],
        [
            (c.id, c.tenant_id, "PROCESSING", records.CLAIMED, now,
             f'{{"attempt":{c.attempts}}}')
            for c in claims
        ],
    )  # fmt: skip
    return claims


def _complete(conn: sqlite3.Connection, outcomes: Sequence[Outcome]) -> int:
    ids = orjson.dumps([o.claim.id for o in outcomes]).decode()
    current = dict(conn.execute(Q["tokens"], (ids,)).fetchall())
    live = [o for o in outcomes if current.get(o.claim.id) == o.claim.token]
    if len(live) < len(outcomes):
        log.info("stale_completions_ignored", count=len(outcomes) - len(live))
    sent, retry, dead, deferred, audit = [], [], [], [], []
    gone, callbacks = [], []
    for o in live:
        c = o.claim
        if isinstance(o, Sent):
            sent.append((o.provider, o.message_id, o.processing_ms, o.at, o.at, c.id))
        elif isinstance(o, Retry):
            retry.append((o.provider, o.error, o.due_at, o.stage, o.queue, o.at, c.id))
        elif isinstance(o, Dead):
            dead.append((o.provider, o.error, o.at, o.at, c.id))
            if o.unregistered:
                gone.append((c.channel.value, c.recipient, o.provider, o.error, o.at))
        else:
            deferred.append((o.due_at, o.at, c.id))
        status, text, meta = records.outcome(o)
        audit.append((c.id, c.tenant_id, status, text, o.at, orjson.dumps(meta).decode()))
        if isinstance(o, Sent | Dead) and o.callback:
            callbacks.append(status_callback(o, o.callback))
    if sent:
        conn.executemany(Q["mark_sent"], sent)
    if retry:
        conn.executemany(Q["mark_retry"], retry)
    if dead:
        conn.executemany(Q["mark_dead"], dead)
    if deferred:
        conn.executemany(Q["defer"], deferred)
    if gone:
        conn.executemany(Q["remember_unregistered"], gone)
    if audit:
        conn.executemany(Q["insert_audit"], audit)
    if callbacks:  # in the same transaction: an outcome is never recorded without its callback
        _create(conn, callbacks, time.time())
    return len(live)


def _sweep(conn: sqlite3.Connection, max_attempts: int, now: float) -> int:
    expired = conn.execute(Q["expired"], (now,)).fetchall()
    audit = []
    for notification_id, tenant_id, attempts in expired:
        status, text, error = records.stalled(attempts, max_attempts)
        if error is not None:
            conn.execute(Q["bury_stalled"], (error, now, now, notification_id, now))
        else:
            conn.execute(Q["requeue_stalled"], (now, now, notification_id, now))
        audit.append((notification_id, tenant_id, status, text))
    conn.executemany(Q["insert_audit"], [(*a, now, None) for a in audit])
    if expired:
        log.warning("stalled", count=len(expired))
    return len(expired)

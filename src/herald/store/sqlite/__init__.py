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

from ...errors import StoreUnavailable
from ...models import (
    DONE,
    AuditEntry,
    Channel,
    Claim,
    Gauges,
    MailboxMessage,
    NewNotification,
    Notification,
    Outcome,
    Page,
    Priority,
    QueueCounts,
    Stats,
    Status,
)
from .. import history, records, sql
from ..access import Access, Row, statements
from ..activity import ActivityRules, Read
from ..base import (
    BreakerState,
    Created,
    DlqFilter,
    IdempotencyRecord,
    ListFilter,
    Store,
    Swept,
)
from ..catalog import CatalogRules
from ..eventlog import EventRules
from ..ports import WORKERS_FORGOTTEN
from ..receipts import ReceiptRules
from ..rows import (
    breakdown_stats,
    gauges_from,
    id_bound,
    notification_from_row,
    prefix_range,
    queue_counts,
)
from . import jobs
from .events import SQLiteDialect
from .groupcommit import GroupCommitWriter

log = structlog.get_logger("herald.store.sqlite")
T = TypeVar("T")
Q = sql.queries("sqlite")
A = statements("sqlite")
LATELY = sql.queries("sqlite", "activity.sql")


class SQLiteStore(CatalogRules, EventRules, ReceiptRules, ActivityRules, Store):
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
        # Templates, event types and events: their rules are shared (catalog.py, eventlog.py).
        self.dialect = SQLiteDialect(self._read, self._write, jobs.create)
        self.clock = time.time

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
        if self._writer is not None:
            self._writer.check()  # reads still work when the writer thread has died
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def heartbeat(self, process: str) -> None:
        now = time.time()
        await self._write(lambda conn: conn.execute(Q["heartbeat"], (process, now)))

    async def worker_seen(self, name: str) -> None:
        now = time.time()

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(Q["workers_forget"], (now - WORKERS_FORGOTTEN,))
            conn.execute(Q["worker_seen"], (name, now))

        await self._write(write)

    async def gauges(self, now: float, alive_after: float) -> Gauges:
        def read(conn: sqlite3.Connection) -> Gauges:
            rows = conn.execute(Q["gauges"], {"now": now}).fetchall()
            [(workers,)] = conn.execute(Q["workers_alive"], (alive_after,)).fetchall()
            return gauges_from([tuple(r) for r in rows], int(workers))

        return await self._read(read)

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
        return await self._write(lambda conn: jobs.create(conn, items, now), wakes=True)

    async def create_many(self, items: Sequence[NewNotification]) -> list[Created]:
        now = time.time()
        return await self._write(lambda conn: jobs.create_many(conn, items, now), wakes=True)

    async def get(self, tenant_id: str, notification_id: str) -> Notification | None:
        row = await self._read(
            lambda c: c.execute(Q["get"], (tenant_id, notification_id)).fetchone()
        )
        return None if row is None else notification_from_row(row)

    async def audit(self, tenant_id: str, notification_id: str) -> list[AuditEntry]:
        rows = await self._read(
            lambda c: c.execute(Q["history"], (tenant_id, notification_id)).fetchall()
        )
        return history.from_rows(notification_id, rows, orjson.loads)

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
                None,
                None,
            )
            conn.execute(Q["insert_audit"], audit)
            return True

        return await self._write(write)

    async def dlq(self, tenant_id: str, where: DlqFilter, page: int, limit: int) -> Page:
        def read(conn: sqlite3.Connection) -> Page:
            ids, total = _dlq_matching(conn, tenant_id, where, limit, (page - 1) * limit)
            found = conn.execute(Q["by_ids"], (tenant_id, orjson.dumps(ids).decode()))
            rows = {n.id: n for n in map(notification_from_row, found)}
            return Page([rows[i] for i in ids if i in rows], total, page, limit)

        return await self._read(read)

    async def replay(
        self, tenant_id: str, ids: Sequence[str] | None, where: DlqFilter | None, actor: str,
        limit: int = 10_000,
    ) -> list[str]:  # fmt: skip
        now = time.time()

        def write(conn: sqlite3.Connection) -> list[str]:
            chosen = list(ids or [])
            if ids is None:
                matching = where or DlqFilter()
                chosen, _ = _dlq_matching(conn, tenant_id, matching, limit, 0, oldest_first=True)
            done = []
            for notification_id in chosen:
                params = {"tenant": tenant_id, "id": notification_id, "now": now}
                if conn.execute(Q["replay"], params).rowcount:
                    done.append(notification_id)
            text = records.replayed(actor)
            meta = orjson.dumps({"actor": actor}).decode()
            rows = [(i, tenant_id, "QUEUED", text, now, meta, None, None) for i in done]
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
            for history_of in ("delete_audit", "delete_mailbox", "delete_links"):
                conn.execute(Q[history_of], (notification_id,))
            return True

        return await self._write(write)

    async def clean(
        self, created_before: float, batch: int = 5000, statuses: Sequence[Status] = DONE
    ) -> int:
        return await self._forget("old_final", _old(created_before, statuses), batch)

    async def clean_queue(
        self, tenant_id: str, queue: str, statuses: Sequence[Status], created_before: float,
        limit: int,
    ) -> int:  # fmt: skip
        params = {**_old(created_before, statuses), "tenant": tenant_id, "queue": queue}
        return await self._forget("old_final", params, min(limit, 5000), limit)

    async def trim_sent(self, keep: int, batch: int = 5000) -> int:
        params = {"statuses": orjson.dumps(DONE).decode(), "keep": keep}
        return await self._forget("beyond_newest", params, batch)

    async def count_old(
        self, created_before: float, statuses: Sequence[Status] = DONE,
        tenant_id: str | None = None, queue: str | None = None,
    ) -> int:  # fmt: skip
        params = {**_old(created_before, statuses), "tenant": tenant_id, "queue": queue}
        return int(await self._read(lambda c: c.execute(Q["count_old"], params).fetchone()[0]))

    async def ids_starting(self, tenant_id: str, prefix: str, limit: int) -> list[str]:
        low, high = prefix_range(prefix)
        params = {"low": low, "high": high, "tenant": tenant_id, "limit": limit}
        return [
            r[0]
            for r in await self._read(lambda c: c.execute(Q["ids_starting"], params).fetchall())
        ]

    async def _forget(
        self, pick: str, params: dict[str, Any], batch: int, limit: int | None = None
    ) -> int:
        """Delete the rows query ``pick`` names with their history, ``batch`` at a time (so
        the writer is never held for long), until none is left or ``limit`` went."""
        removed = 0
        while limit is None or removed < limit:
            take = batch if limit is None else min(batch, limit - removed)

            def write(conn: sqlite3.Connection, take: int = take) -> int:
                ids = [(r[0],) for r in conn.execute(Q[pick], {**params, "limit": take})]
                for query in ("delete_audit", "delete_mailbox", "delete_links",
                              "delete_notification"):  # fmt: skip
                    conn.executemany(Q[query], ids)
                return len(ids)

            done = await self._write(write)
            removed += done
            if done < take:
                break
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
        params = (b.instance, b.provider, b.state, b.failures, b.changed_at, b.process)
        await self._write(lambda c: c.execute(Q["breaker_save"], params))

    async def breakers(self, live_since: float) -> list[BreakerState]:
        rows = await self._read(lambda c: c.execute(Q["breakers"], (live_since,)).fetchall())
        return [BreakerState(*r) for r in rows]

    async def end_process(self, process: str) -> None:
        def end(conn: sqlite3.Connection) -> None:
            conn.execute(Q["process_breakers_delete"], (process,))
            conn.execute(Q["process_heartbeat_delete"], (process,))

        await self._write(end)

    async def prune_processes(self, seen_before: float) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            conn.execute(Q["heartbeats_prune"], (seen_before,))
            return conn.execute(Q["breakers_prune"], (seen_before,)).rowcount

        return await self._write(prune)

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

    async def _activity(self, reads: Sequence[Read]) -> list[list[Sequence[Any]]]:
        def read(conn: sqlite3.Connection) -> list[list[Sequence[Any]]]:
            return [conn.execute(LATELY[name], [_bound(a) for a in args]).fetchall()
                    for name, args in reads]  # fmt: skip

        return await self._read(read)

    # -- the worker's side --------------------------------------------------

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        now = time.time()
        token = os.urandom(8).hex()
        picked = await self._write(
            lambda c: jobs.claim(c, token, limit, lease_seconds, min_priority, now, queues)
        )
        return jobs.claims(picked, token, now)

    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        work = jobs.Completion(outcomes)
        return await self._write(lambda c: jobs.complete(c, work))

    async def release(self, claims: Sequence[Claim]) -> int:
        if not claims:
            return 0
        now = time.time()
        return await self._write(lambda c: jobs.release(c, claims, now), wakes=True)

    async def sweep(self, max_attempts: int) -> Swept:
        now = time.time()
        return await self._write(lambda c: jobs.sweep(c, max_attempts, now), wakes=True)

    async def capture(self, message: MailboxMessage) -> None:
        m = message
        values = (m.id, m.notification_id, m.tenant_id, m.channel.value, m.recipient)
        await self._write(
            lambda c: c.execute(Q["capture"], (*values, m.subject, m.body, m.html, m.at))
        )


class _AccessRunner:
    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def rows(self, name: str, *args: Any) -> list[Row]:
        return await self._store._read(lambda c: c.execute(A[name], args).fetchall())

    async def write(self, name: str, *args: Any) -> list[Row]:
        return await self._store._write(lambda c: c.execute(A[name], args).fetchall())


def _dlq_matching(
    conn: sqlite3.Connection, tenant_id: str, where: DlqFilter, limit: int, offset: int,
    oldest_first: bool = False,
) -> tuple[list[str], int]:  # fmt: skip
    """The ids of a page of the dead letters ``where`` matches, and how many match in all."""
    params = {
        "tenant": tenant_id,
        "channel": where.channel.value if where.channel else None,
        "error": where.error or None,
        "since": where.since,
        "until": where.until,
        "oldest_first": oldest_first,
        "limit": limit,
        "offset": offset,
    }
    rows = conn.execute(Q["dlq_matching"], params).fetchall()
    if not rows and offset:  # past the end: the count comes from the first page
        rows = conn.execute(Q["dlq_matching"], {**params, "limit": 1, "offset": 0}).fetchall()
        return [], rows[0][1] if rows else 0
    return [r[0] for r in rows], rows[0][1] if rows else 0


def _bound(value: Any) -> Any:
    """A query argument as SQLite takes it: a list as a JSON array (read with json_each)."""
    return orjson.dumps(value).decode() if isinstance(value, list) else value


def _old(created_before: float, statuses: Sequence[Status]) -> dict[str, Any]:
    """``old_final``'s bound and statuses, for rows of every tenant and lane."""
    bound, chosen = id_bound(created_before), orjson.dumps(list(statuses)).decode()
    return {"bound": bound, "statuses": chosen, "tenant": None, "queue": None}


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

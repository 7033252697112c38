"""The scale-out store: PostgreSQL, shared by any number of API and worker processes.

Selected by ``HERALD_DATABASE_URL=postgresql://…``. One asyncpg pool per
process; concurrent ``create`` calls share a transaction (``batch``);
workers claim with ``FOR UPDATE SKIP LOCKED`` and complete in batches
(``jobs``); idle workers sleep on LISTEN until a commit makes work
due (``listen``). Every connection commits with
``synchronous_commit = on``, and an outage of any kind is ``StoreUnavailable``
(``pool``). Migrations run under an advisory lock, so processes
starting together apply each one once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from ...errors import StoreUnavailable
from ...models import (
    DONE,
    TERMINAL,
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
from ...supervise import Liveness
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
from .batch import GroupCommit
from .events import PostgresDialect
from .listen import CHANNEL, WorkListener
from .pool import Pool, Q, affected

log = structlog.get_logger("herald.store.postgres")
A = statements("postgres")
LATELY = sql.queries("postgres", "activity.sql")


class PostgresStore(CatalogRules, EventRules, ReceiptRules, ActivityRules, Store):
    notifies_work = True

    def __init__(self, url: str, pool_size: int = 10, connect_patience: float = 15.0) -> None:
        self.url = url
        self._pool = Pool(url, pool_size)
        self._patience = connect_patience
        self._listener = WorkListener(self._pool.connect)
        self._batch = GroupCommit(self._pool, jobs.insert, self._listener.wake)
        # Bulk requests (create_many) share transactions among themselves.
        self._bulk = GroupCommit(self._pool, jobs.insert_many, self._listener.wake)
        self.access = Access(_AccessRunner(self._pool))
        # Templates, event types and events: their rules are shared (catalog.py, eventlog.py).
        self.dialect = PostgresDialect(self._pool, jobs.insert, self._listener.wake)
        self.clock = time.time

    @property
    def commits(self) -> int:
        """Group-commit transactions so far (tests check that requests share them)."""
        return self._batch.commits + self._bulk.commits

    # -- lifecycle ----------------------------------------------------------

    async def open(self) -> None:
        await self._pool.open(self._patience)
        self._batch.start()
        self._bulk.start()
        try:
            await self.migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._batch.stop()
        await self._bulk.stop()
        await self._listener.stop()
        await self._pool.close()

    async def migrate(self) -> list[int]:
        async def run(conn: asyncpg.Connection) -> list[int]:
            await conn.execute(Q["migrations_lock"])  # held until COMMIT
            await conn.execute(Q["migrations_table"])
            done = {r[0] for r in await conn.fetch(Q["migrations_done"])}
            applied = []
            for migration in sql.migrations("postgres"):
                if migration.version not in done:
                    await conn.execute(migration.sql)
                    await conn.execute(Q["migration_applied"], migration.version, time.time())
                    applied.append(migration.version)
            return applied

        applied = await self._pool.transaction(run)
        for version in applied:
            log.info("store_migrated", version=version)
        return applied

    async def ping(self) -> None:
        await self._pool.fetchval("ping")

    async def heartbeat(self, process: str) -> None:
        await self._pool.execute("heartbeat", process, time.time())

    async def worker_seen(self, name: str) -> None:
        now = time.time()
        await self._pool.execute("worker_seen", name, now, now - WORKERS_FORGOTTEN)

    async def gauges(self, now: float, alive_after: float) -> Gauges:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(Q["gauges"], now)
            workers = await conn.fetchval(Q["workers_alive"], alive_after)
        return gauges_from([tuple(r) for r in rows], int(workers))

    def liveness(self) -> list[Liveness]:
        own = self._listener.liveness
        return [] if own is None else [own]

    async def wait_for_work(self, timeout: float) -> None:
        self._listener.start()  # only processes that wait hold a LISTEN connection
        await self._listener.wait(timeout)

    # -- the API's side -----------------------------------------------------

    async def create(self, items: Sequence[NewNotification]) -> list[Notification]:
        if not items:
            return []
        return await self._batch.submit(items)

    async def create_many(self, items: Sequence[NewNotification]) -> list[Created]:
        if not items:
            return []
        return await self._bulk.submit(items)

    async def get(self, tenant_id: str, notification_id: str) -> Notification | None:
        row = await self._pool.fetchrow("get", tenant_id, notification_id)
        return None if row is None else notification_from_row(row)

    async def audit(self, tenant_id: str, notification_id: str) -> list[AuditEntry]:
        rows = await self._pool.fetch("history", tenant_id, notification_id)
        return history.from_rows(notification_id, rows)

    async def find(self, tenant_id: str, where: ListFilter, page: int, limit: int) -> Page:
        args = (
            tenant_id,
            where.status.value if where.status else None,
            where.channel.value if where.channel else None,
            int(where.priority) if where.priority is not None else None,
        )
        async with self._pool.connection() as conn:
            total = await conn.fetchval(Q["count_filtered"], *args)
            rows = await conn.fetch(Q["list_filtered"], *args, limit, (page - 1) * limit)
        return Page([notification_from_row(r) for r in rows], total, page, limit)

    async def stats(self, tenant_id: str) -> Stats:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(Q["breakdown"], tenant_id)
            queues = await conn.fetch(Q["queue_counts"], tenant_id, time.time())
        return breakdown_stats([tuple(r) for r in rows], [tuple(r) for r in queues])

    async def backlog(self) -> int:
        return int(await self._pool.fetchval("backlog", time.time()))

    async def queues(self, tenant_id: str) -> list[QueueCounts]:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(Q["queue_counts"], tenant_id, time.time())
            paused = {r[0] for r in await conn.fetch(Q["paused"])}
        return queue_counts([tuple(r) for r in rows], paused)

    async def set_paused(self, queue: str, paused: bool) -> None:
        await self._pool.fetchval("set_paused", queue, paused, time.time(), CHANNEL)

    async def _activity(self, reads: Sequence[Read]) -> list[list[Sequence[Any]]]:
        async with self._pool.connection() as conn:
            return [list(await conn.fetch(LATELY[name], *args)) for name, args in reads]

    async def cancel(self, tenant_id: str, notification_id: str, actor: str | None = None) -> bool:
        args = (tenant_id, notification_id, time.time(), records.cancelled(actor))
        return await self._pool.fetchval("cancel", *args) is not None

    async def dlq(self, tenant_id: str, where: DlqFilter, page: int, limit: int) -> Page:
        async with self._pool.connection() as conn:
            ids, total = await _dlq_matching(conn, tenant_id, where, limit, (page - 1) * limit)
            found = await conn.fetch(Q["by_ids"], tenant_id, ids)
        rows = {n.id: n for n in map(notification_from_row, found)}
        return Page([rows[i] for i in ids if i in rows], total, page, limit)

    async def replay(
        self, tenant_id: str, ids: Sequence[str] | None, where: DlqFilter | None, actor: str,
        limit: int = 10_000,
    ) -> list[str]:  # fmt: skip
        now = time.time()

        async def write(conn: asyncpg.Connection) -> list[str]:
            chosen = list(ids or [])
            if ids is None:
                matching = where or DlqFilter()
                chosen, _ = await _dlq_matching(conn, tenant_id, matching, limit, 0, True)
            rows = await conn.fetch(
                Q["replay"], tenant_id, chosen, now, records.replayed(actor), {"actor": actor},
                CHANNEL,
            )  # fmt: skip
            return [r[0] for r in rows]

        return await self._pool.transaction(write)

    async def delete_dead(self, tenant_id: str, notification_id: str) -> bool:
        args = (tenant_id, notification_id, ["FAILED"], "dlq")
        return bool(await self._pool.fetchval("rows_delete", *args))

    async def delete_final(self, tenant_id: str, notification_id: str) -> bool:
        args = (tenant_id, notification_id, [s.value for s in TERMINAL], None)
        return bool(await self._pool.fetchval("rows_delete", *args))

    async def clean(
        self, created_before: float, batch: int = 5000, statuses: Sequence[Status] = DONE
    ) -> int:
        args = (id_bound(created_before), [s.value for s in statuses], None, None)
        return await self._forget("clean", args, batch)

    async def clean_queue(
        self, tenant_id: str, queue: str, statuses: Sequence[Status], created_before: float,
        limit: int,
    ) -> int:  # fmt: skip
        args = (id_bound(created_before), [s.value for s in statuses], tenant_id, queue)
        return await self._forget("clean", args, min(limit, 5000), limit)

    async def trim_sent(self, keep: int, batch: int = 5000) -> int:
        return await self._forget("trim_sent", (keep, [s.value for s in DONE]), batch)

    async def count_old(
        self, created_before: float, statuses: Sequence[Status] = DONE,
        tenant_id: str | None = None, queue: str | None = None,
    ) -> int:  # fmt: skip
        args = (id_bound(created_before), [s.value for s in statuses], tenant_id, queue)
        return int(await self._pool.fetchval("count_old", *args))

    async def ids_starting(self, tenant_id: str, prefix: str, limit: int) -> list[str]:
        low, high = prefix_range(prefix)
        return [r[0] for r in await self._pool.fetch("ids_starting", tenant_id, low, high, limit)]

    async def _forget(
        self, query: str, args: tuple[Any, ...], batch: int, limit: int | None = None
    ) -> int:
        """Delete the rows ``query`` picks with their history, ``batch`` at a time (so no
        transaction holds many locks for long), until none is left or ``limit`` went."""
        removed = 0
        while limit is None or removed < limit:
            take = batch if limit is None else min(batch, limit - removed)
            done: int = await self._pool.fetchval(query, *args, take)
            removed += done
            if done < take:
                break
        return removed

    async def idempotency_begin(
        self, tenant_id: str, key: str, request_hash: str, expired_before: float
    ) -> IdempotencyRecord | None:
        now = time.time()

        async def write(conn: asyncpg.Connection) -> IdempotencyRecord | None:
            args = (tenant_id, key, request_hash, now)
            for _ in range(3):
                if await conn.fetchval(Q["idempotency_claim"], *args) is not None:
                    return None  # ours: no record was there
                row = await conn.fetchrow(Q["idempotency_locked"], tenant_id, key)
                if row is None:
                    continue  # abandoned since our insert met it: claim it again
                if row[3] >= expired_before:
                    return IdempotencyRecord(row[0], row[1], row[2], row[3])
                await conn.execute(Q["idempotency_reclaim"], *args)
                return None
            raise StoreUnavailable(f"Idempotency-Key {key!r} keeps changing hands; retry")

        return await self._pool.transaction(write)

    async def idempotency_finish(
        self, tenant_id: str, key: str, status_code: int, response: bytes
    ) -> None:
        await self._pool.execute("idempotency_finish", status_code, response, tenant_id, key)

    async def idempotency_abandon(self, tenant_id: str, key: str) -> None:
        await self._pool.execute("idempotency_abandon", tenant_id, key)

    async def idempotency_expire(self, created_before: float) -> int:
        return affected(await self._pool.execute("idempotency_expire", created_before))

    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        now = time.time()

        async def write(conn: asyncpg.Connection) -> tuple[int, float]:
            await conn.execute(Q["bucket_ensure"], provider, burst, now)
            tokens, updated, paused = await conn.fetchrow(Q["bucket_locked"], provider)
            if paused > now:
                return 0, paused - now
            tokens = min(burst, tokens + (now - updated) * rate)
            granted = min(want, int(tokens))
            await conn.execute(Q["bucket_save"], provider, tokens - granted, now)
            return granted, 0.0 if granted else (1 - tokens) / rate

        return await self._pool.transaction(write)

    async def pause_provider(self, provider: str, until: float) -> None:
        await self._pool.execute("bucket_pause", provider, time.time(), until)

    async def record_breaker(self, state: BreakerState) -> None:
        b = state
        await self._pool.execute(
            "breaker_save", b.instance, b.provider, b.state, b.failures, b.changed_at, b.process
        )

    async def breakers(self, live_since: float) -> list[BreakerState]:
        return [BreakerState(*r) for r in await self._pool.fetch("breakers", live_since)]

    async def end_process(self, process: str) -> None:
        await self._pool.execute("process_end", process)

    async def prune_processes(self, seen_before: float) -> int:
        return affected(await self._pool.execute("processes_prune", seen_before))

    async def mailbox(
        self, tenant_id: str, limit: int, channel: Channel | None = None
    ) -> list[MailboxMessage]:
        rows = await self._pool.fetch(
            "mailbox", tenant_id, channel.value if channel else None, limit
        )
        return [MailboxMessage(r[0], r[1], r[2], Channel(r[3]), *r[4:]) for r in rows]

    # -- the worker's side --------------------------------------------------

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        now = time.time()
        # A big claim runs as several statements at once, on several connections:
        # SKIP LOCKED gives them disjoint rows, and the server works on them in parallel.
        sizes = [len(part) for part in jobs.split(range(limit))]

        async def claim_part(n: int) -> list[Claim]:
            return await self._pool.transaction(
                lambda conn: jobs.claim(conn, n, lease_seconds, min_priority, now, queues),
                single=True,
            )

        found = await asyncio.gather(*(claim_part(n) for n in sizes), return_exceptions=True)
        claims = [c for part in found if isinstance(part, list) for c in part]
        failed = [e for e in found if isinstance(e, BaseException)]
        if failed and not claims:  # with some claims in hand, work on those
            raise failed[0]
        claims.sort(key=lambda c: -c.priority)
        return claims

    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        if not outcomes:
            return 0
        now = time.time()
        if not jobs.one_statement(outcomes):
            return await self._pool.transaction(lambda conn: jobs.complete(conn, outcomes, now))
        # Plain successes need no shared transaction: each outcome is one row and its audit
        # entry, so a big batch is written as several statements at once.
        parts = jobs.split(outcomes)

        async def complete_part(part: Sequence[Outcome]) -> int:
            return await self._pool.transaction(
                lambda conn: jobs.complete(conn, part, now), single=True
            )

        done = await asyncio.gather(*(complete_part(p) for p in parts))
        return sum(done)

    async def release(self, claims: Sequence[Claim]) -> int:
        if not claims:
            return 0
        now = time.time()

        async def write(conn: asyncpg.Connection) -> int:
            ids, tokens = [c.id for c in claims], [c.token for c in claims]
            released = records.RELEASED
            done = len(await conn.fetch(Q["release"], ids, tokens, now, released))
            await conn.execute(Q["notify"], CHANNEL, "")
            return done

        return await self._pool.transaction(write)

    async def sweep(self, max_attempts: int) -> Swept:
        now = time.time()
        return await self._pool.transaction(lambda conn: jobs.sweep(conn, max_attempts, now))

    async def capture(self, message: MailboxMessage) -> None:
        m = message
        await self._pool.execute(
            "capture", m.id, m.notification_id, m.tenant_id, m.channel.value, m.recipient,
            m.subject, m.body, m.html, m.at,
        )  # fmt: skip


async def _dlq_matching(
    conn: asyncpg.Connection, tenant_id: str, where: DlqFilter, limit: int, offset: int,
    oldest_first: bool = False,
) -> tuple[list[str], int]:  # fmt: skip
    """The ids of a page of the dead letters ``where`` matches, and how many match in all."""
    channel = where.channel.value if where.channel else None
    args = (tenant_id, channel, where.error or None, where.since, where.until, oldest_first)
    rows = await conn.fetch(Q["dlq_matching"], *args, limit, offset)
    if not rows and offset:  # past the end: the count comes from the first page
        rows = await conn.fetch(Q["dlq_matching"], *args, 1, 0)
        return [], rows[0][1] if rows else 0
    return [r[0] for r in rows], rows[0][1] if rows else 0


class _AccessRunner:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def rows(self, name: str, *args: Any) -> list[Row]:
        async with self._pool.connection() as conn:
            return list(await conn.fetch(A[name], *args))

    async def write(self, name: str, *args: Any) -> list[Row]:
        return await self.rows(name, *args)  # every statement commits on its own

"""``MemoryStore``: every port of the store contract in plain Python, for tests.

A test double with the real stores' semantics (leases and claim tokens, stale
completions ignored, priority then due-time order, paused lanes, the ladder's
stages, the DLQ and replay, idempotency, shared buckets and breakers), and
the same history words. Templates, event types and events run the shared
rules of ``catalog.py`` and ``eventlog.py``; access runs ``access.py``.

Time comes from ``clock`` (POSIX seconds), so a test can move it::

    now = [1_000.0]
    store = MemoryStore(clock=lambda: now[0])
    await store.create([item])
    [claim] = await store.claim(1, lease_seconds=30)
    now[0] += 31
    assert (await store.sweep(max_attempts=6)).expired == 1   # the lease expired

``beside()`` opens a second store on the same tables, as a second process
shares one database. Nothing is written to disk, and no database URL names
this store: it is not a production option.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence

from ...errors import StoreUnavailable
from ...models import (
    CLAIMABLE,
    DLQ,
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
from .. import records
from ..access import Access
from ..base import BreakerState, DlqFilter, IdempotencyRecord, ListFilter, Store, Swept
from ..catalog import CatalogRules
from ..eventlog import EventRules
from ..ports import WORKERS_FORGOTTEN, Change, ChangeFeed
from ..receipts import ReceiptRules
from ..rows import breakdown_stats, gauges_from, queue_counts
from . import queue
from .access import MemoryRunner
from .statements import MemoryDialect
from .tables import Bucket, Row, Tables


class MemoryStore(CatalogRules, EventRules, ReceiptRules, Store):
    def __init__(
        self, clock: Callable[[], float] = time.time, tables: Tables | None = None
    ) -> None:
        self.clock = clock
        self.tables = Tables() if tables is None else tables
        self.access = Access(MemoryRunner(self.tables))
        self.dialect = MemoryDialect(self.tables, self._insert, self._wake)
        self._work = asyncio.Event()
        self._open = False

    def beside(self) -> MemoryStore:
        """Another store on the same tables and clock (what a second process would see)."""
        return MemoryStore(self.clock, self.tables)

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def migrate(self) -> list[int]:
        return []  # the tables are made whole

    async def ping(self) -> None:
        if not self._open:
            raise StoreUnavailable("store is not open")

    def _wake(self) -> None:
        self._work.set()

    async def wait_for_work(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._work.wait(), timeout)
        self._work.clear()

    # -- notifications -------------------------------------------------------------------

    def _insert(self, items: Sequence[NewNotification], now: float) -> list[Notification]:
        return queue.insert(self.tables, items, now)

    async def create(self, items: Sequence[NewNotification]) -> list[Notification]:
        created = self._insert(items, self.clock())
        if created:
            self._wake()
        return created

    def _row(self, tenant_id: str, notification_id: str) -> Row | None:
        row = self.tables.notifications.get(notification_id)
        return row if row is not None and row.tenant_id == tenant_id else None

    async def get(self, tenant_id: str, notification_id: str) -> Notification | None:
        row = self._row(tenant_id, notification_id)
        return None if row is None else row.notification()

    async def audit(self, tenant_id: str, notification_id: str) -> list[AuditEntry]:
        if self._row(tenant_id, notification_id) is None:
            return []
        return [
            AuditEntry(e.id, e.notification_id, e.status, e.message, e.at, dict(e.metadata))
            for e in self.tables.history.get(notification_id, [])
        ]

    async def find(self, tenant_id: str, where: ListFilter, page: int, limit: int) -> Page:
        found = [
            r
            for r in self.tables.notifications.values()
            if r.tenant_id == tenant_id
            and where.status in (None, r.status)
            and where.channel in (None, r.channel)
            and (where.priority is None or where.priority == r.priority)
        ]
        return _page(sorted(found, key=lambda r: r.id, reverse=True), page, limit)

    def _counts(self, tenant_id: str) -> list[tuple[str, int, int, int, int, int]]:
        """(queue, waiting, active, delayed, sent, failed) rows, as the SQL stores count them."""
        now = self.clock()
        lanes: dict[str, list[int]] = {}
        for r in self.tables.notifications.values():
            if r.tenant_id != tenant_id:
                continue
            lane = lanes.setdefault(r.queue, [0, 0, 0, 0, 0])
            if r.status in CLAIMABLE:
                lane[0 if r.due_at <= now else 2] += 1
            elif r.status is Status.PROCESSING:
                lane[1] += 1
            elif r.status in DONE:
                lane[3] += 1
            elif r.status is Status.FAILED:
                lane[4] += 1
        return [(name, w, a, d, s, f) for name, (w, a, d, s, f) in lanes.items()]

    async def stats(self, tenant_id: str) -> Stats:
        """From the rows the SQL stores' ``breakdown`` query answers."""
        count: Counter[tuple[str, str, int]] = Counter()
        timed: Counter[tuple[str, str, int]] = Counter()
        total_ms: dict[tuple[str, str, int], float] = {}
        for r in self.tables.notifications.values():
            if r.tenant_id == tenant_id:
                key = (r.status.value, r.channel.value, int(r.priority))
                count[key] += 1
                if r.processing_ms is not None:
                    timed[key] += 1
                    total_ms[key] = total_ms.get(key, 0.0) + r.processing_ms
        rows = [(*key, n, total_ms.get(key), timed[key]) for key, n in count.items()]
        return breakdown_stats(rows, self._counts(tenant_id))

    async def cancel(self, tenant_id: str, notification_id: str, actor: str | None = None) -> bool:
        row = self._row(tenant_id, notification_id)
        if row is None or row.status not in CLAIMABLE:
            return False
        now = self.clock()
        row.status, row.updated_at, row.lease_until, row.claim_token = (
            Status.CANCELLED, now, None, None)  # fmt: skip
        self.tables.audit(row.id, "CANCELLED", records.cancelled(actor), now, None)
        return True

    async def clean(
        self, created_before: float, batch: int = 5000, statuses: Sequence[Status] = DONE
    ) -> int:
        return self._forget_old(created_before, statuses)

    async def trim_sent(self, keep: int, batch: int = 5000) -> int:
        newest_first = sorted((r for r in self.tables.notifications.values() if r.status in DONE),
                              key=_age, reverse=True)  # fmt: skip
        seen: Counter[str] = Counter()
        for r in newest_first:
            seen[r.tenant_id] += 1
            if seen[r.tenant_id] > keep:
                self.tables.forget(r.id)
        return sum(max(0, n - keep) for n in seen.values())

    def _forget_old(
        self, created_before: float, statuses: Sequence[Status], tenant_id: str | None = None,
        queue: str | None = None, limit: int | None = None,
    ) -> int:  # fmt: skip
        old = self._old(created_before, statuses, tenant_id, queue)[:limit]
        for r in old:
            self.tables.forget(r.id)
        return len(old)

    def _old(
        self, created_before: float, statuses: Sequence[Status], tenant_id: str | None,
        queue: str | None,
    ) -> list[Row]:  # fmt: skip
        # By the row's own time: ids never step back, so under a fake clock they need not match it.
        return sorted((r for r in self.tables.notifications.values()
                       if r.created_at < created_before and r.status in statuses
                       and tenant_id in (None, r.tenant_id) and queue in (None, r.queue)),
                      key=_age)  # fmt: skip

    async def count_old(
        self, created_before: float, statuses: Sequence[Status] = DONE,
        tenant_id: str | None = None, queue: str | None = None,
    ) -> int:  # fmt: skip
        return len(self._old(created_before, statuses, tenant_id, queue))

    async def ids_starting(self, tenant_id: str, prefix: str, limit: int) -> list[str]:
        return sorted(r.id for r in self.tables.notifications.values()
                      if r.tenant_id == tenant_id and r.id.startswith(prefix))[:limit]  # fmt: skip

    # -- the queue ---------------------------------------------------------------------------

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        now = self.clock()
        return queue.claim(self.tables, limit, lease_seconds, min_priority, now, queues)

    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        return queue.complete(self.tables, outcomes, self.clock())

    async def release(self, claims: Sequence[Claim]) -> int:
        released = queue.release(self.tables, claims, self.clock())
        self._wake()
        return released

    async def sweep(self, max_attempts: int) -> Swept:
        swept = queue.sweep(self.tables, max_attempts, self.clock())
        self._wake()
        return swept

    async def backlog(self) -> int:
        now = self.clock()
        return sum(1 for r in self.tables.notifications.values() if queue.due(r, now))

    async def queues(self, tenant_id: str) -> list[QueueCounts]:
        return queue_counts(self._counts(tenant_id), self.tables.paused)

    async def set_paused(self, queue: str, paused: bool) -> None:
        if paused:
            self.tables.paused.add(queue)
        else:
            self.tables.paused.discard(queue)
        self._wake()

    # -- activity (the SQL stores read activity.sql) ---------------------------------------------

    async def changes(self, since: float, limit: int) -> ChangeFeed:
        t = self.tables
        created = sorted(r.id for r in t.notifications.values() if r.created_at >= since)[:limit]
        rows = [t.notifications[i] for i in created]
        changes = [Change(f"n{r.id}", r.tenant_id, r.id, r.status.value, r.created_at)
                   for r in rows]  # fmt: skip
        # Every entry is stored here, claims included (the SQL stores read those off the row).
        stored = sorted(
            (e for entries in t.history.values() for e in entries if e.at >= since),
            key=lambda e: e.at,
        )[:limit]
        for e in stored:
            tenant = t.notifications[e.notification_id].tenant_id
            changes.append(Change(f"h{e.notification_id}:{e.id}", tenant, e.notification_id,
                                  e.status.value, e.at))  # fmt: skip
        return ChangeFeed(changes, limit in (len(rows), len(stored)), frozenset(t.paused))

    async def history_per_minute(
        self, tenant_id: str, since: float, statuses: Sequence[Status]
    ) -> list[tuple[int, str, int]]:
        counts: Counter[tuple[int, str]] = Counter()
        for note_id, entries in self.tables.history.items():
            row = self.tables.notifications.get(note_id)
            if row is None or row.tenant_id != tenant_id:
                continue
            for e in entries:
                if e.at >= since and e.status in statuses:
                    counts[int(e.at // 60), e.status.value] += 1
        return [(minute, status, n) for (minute, status), n in sorted(counts.items())]

    # -- dead letters --------------------------------------------------------------------------

    def _dead(self, tenant_id: str, where: DlqFilter) -> list[Row]:
        error = where.error.lower() if where.error else None
        return [
            r
            for r in self.tables.notifications.values()
            if r.tenant_id == tenant_id and r.status is Status.FAILED and r.queue == DLQ
            and where.channel in (None, r.channel)
            and (error is None or error in (r.last_error or "").lower())
            and (where.since is None or (r.failed_at or 0) >= where.since)
            and (where.until is None or (r.failed_at or 0) < where.until)
        ]  # fmt: skip

    async def dlq(self, tenant_id: str, where: DlqFilter, page: int, limit: int) -> Page:
        found = sorted(self._dead(tenant_id, where), key=lambda r: (r.failed_at or 0, r.id),
                       reverse=True)  # fmt: skip
        return _page(found, page, limit)

    async def replay(
        self, tenant_id: str, ids: Sequence[str] | None, where: DlqFilter | None, actor: str,
        limit: int = 10_000,
    ) -> list[str]:  # fmt: skip
        if ids is None:
            oldest = sorted(self._dead(tenant_id, where or DlqFilter()),
                            key=lambda r: r.failed_at or 0)  # fmt: skip
            ids = [r.id for r in oldest[:limit]]
        now = self.clock()
        done = []
        for note_id in ids:
            r = self._row(tenant_id, note_id)
            if r is None or r.status is not Status.FAILED or r.queue != DLQ:
                continue
            r.status, r.queue, r.attempts, r.stage = Status.QUEUED, r.channel.value.lower(), 0, 0
            r.due_at = r.updated_at = now
            r.failed_at = r.lease_until = r.claim_token = None
            self.tables.audit(r.id, "QUEUED", records.replayed(actor), now, {"actor": actor})
            done.append(note_id)
        if done:
            self._wake()
        return done

    async def delete_dead(self, tenant_id: str, notification_id: str) -> bool:
        row = self._row(tenant_id, notification_id)
        dead = row is not None and row.status is Status.FAILED and row.queue == DLQ
        return self._delete(row) if row is not None and dead else False

    async def delete_final(self, tenant_id: str, notification_id: str) -> bool:
        row = self._row(tenant_id, notification_id)
        return self._delete(row) if row is not None and row.status in TERMINAL else False

    def _delete(self, row: Row) -> bool:
        self.tables.forget(row.id)
        return True

    async def clean_queue(
        self, tenant_id: str, queue: str, statuses: Sequence[Status], created_before: float,
        limit: int,
    ) -> int:  # fmt: skip
        return self._forget_old(created_before, statuses, tenant_id, queue, limit)

    # -- idempotency ---------------------------------------------------------------------------

    async def idempotency_begin(
        self, tenant_id: str, key: str, request_hash: str, expired_before: float
    ) -> IdempotencyRecord | None:
        found = self.tables.idempotency.get((tenant_id, key))
        if found is not None and found.created_at >= expired_before:
            return found
        self.tables.idempotency[(tenant_id, key)] = IdempotencyRecord(
            request_hash, None, None, self.clock()
        )
        return None

    async def idempotency_finish(
        self, tenant_id: str, key: str, status_code: int, response: bytes
    ) -> None:
        found = self.tables.idempotency.get((tenant_id, key))
        if found is not None and found.status_code is None:
            self.tables.idempotency[(tenant_id, key)] = IdempotencyRecord(
                found.request_hash, status_code, response, found.created_at
            )

    async def idempotency_abandon(self, tenant_id: str, key: str) -> None:
        found = self.tables.idempotency.get((tenant_id, key))
        if found is not None and found.status_code is None:
            del self.tables.idempotency[(tenant_id, key)]

    async def idempotency_expire(self, created_before: float) -> int:
        old = [k for k, r in self.tables.idempotency.items() if r.created_at < created_before]
        for k in old:
            del self.tables.idempotency[k]
        return len(old)

    # -- coordination ----------------------------------------------------------------------------

    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        now = self.clock()
        bucket = self.tables.buckets.setdefault(provider, Bucket(burst, now, 0.0))
        if bucket.paused_until > now:
            return 0, bucket.paused_until - now
        tokens = min(burst, bucket.tokens + (now - bucket.updated_at) * rate)
        granted = min(want, int(tokens))
        bucket.tokens, bucket.updated_at = tokens - granted, now
        return granted, 0.0 if granted else (1 - tokens) / rate

    async def pause_provider(self, provider: str, until: float) -> None:
        bucket = self.tables.buckets.setdefault(provider, Bucket(0.0, self.clock(), until))
        bucket.paused_until = max(bucket.paused_until, until)

    async def record_breaker(self, state: BreakerState) -> None:
        self.tables.breakers[(state.process, state.provider)] = state

    async def breakers(self, live_since: float) -> list[BreakerState]:
        beats = self.tables.heartbeats
        live = [b for b in self.tables.breakers.values()
                if beats.get(b.process, float("-inf")) >= live_since]  # fmt: skip
        return sorted(live, key=lambda b: (b.provider, b.instance, b.process))

    async def heartbeat(self, process: str) -> None:
        self.tables.heartbeats[process] = self.clock()

    async def end_process(self, process: str) -> None:
        self.tables.heartbeats.pop(process, None)
        for key in [k for k in self.tables.breakers if k[0] == process]:
            del self.tables.breakers[key]

    async def prune_processes(self, seen_before: float) -> int:
        beats = self.tables.heartbeats
        for process in [p for p, at in beats.items() if at < seen_before]:
            del beats[process]
        gone = [k for k in self.tables.breakers if k[0] not in beats]
        for key in gone:
            del self.tables.breakers[key]
        return len(gone)

    async def worker_seen(self, name: str) -> None:
        now = self.clock()
        seen = self.tables.workers
        for old in [n for n, at in seen.items() if at < now - WORKERS_FORGOTTEN and n != name]:
            del seen[old]
        seen[name] = now

    # -- monitoring ------------------------------------------------------------------------------

    async def gauges(self, now: float, alive_after: float) -> Gauges:
        """From the rows the SQL stores' ``gauges`` query answers."""
        count: Counter[tuple[str, str, int]] = Counter()
        due: Counter[tuple[str, str, int]] = Counter()
        oldest: dict[tuple[str, str, int], float] = {}
        for r in self.tables.notifications.values():
            key = (r.status.value, r.queue, int(r.priority))
            count[key] += 1
            due[key] += r.due_at <= now
            oldest[key] = min(oldest.get(key, r.due_at), r.due_at)
        rows = [(*key, n, due[key], oldest.get(key)) for key, n in count.items()]
        alive = sum(1 for at in self.tables.workers.values() if at >= alive_after)
        return gauges_from(rows, alive)

    # -- the mailbox -----------------------------------------------------------------------------

    async def capture(self, message: MailboxMessage) -> None:
        self.tables.mailbox.append(message)

    async def mailbox(
        self, tenant_id: str, limit: int, channel: Channel | None = None
    ) -> list[MailboxMessage]:
        found = [m for m in self.tables.mailbox
                 if m.tenant_id == tenant_id and channel in (None, m.channel)]  # fmt: skip
        return sorted(found, key=lambda m: m.at, reverse=True)[:limit]


def _age(row: Row) -> tuple[float, str]:
    """Oldest first, as the SQL stores order by id (which starts with the creation time)."""
    return row.created_at, row.id


def _page(rows: list[Row], page: int, limit: int) -> Page:
    start = (page - 1) * limit
    return Page([r.notification() for r in rows[start : start + limit]], len(rows), page, limit)

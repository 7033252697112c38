"""Receipts: provider receipt events applied per second through store.apply_receipts.

What it measures: how fast one process moves SENT notifications on with the
receipts their provider posts, each batch in one committed transaction (find
the notifications by provider message id, move statuses forward, one history
row per event, add bounced and complaining recipients to the suppression list,
claim the batch's replay key), the way the receipt endpoint applies a batch.

How: N (default 100,000) EMAIL notifications are written into a fresh store
(SQLite file in a temporary directory, or a throwaway PostgreSQL database; see
``_stores.py``) with the store's own ``create``, then claimed and completed
as Sent with an SMTP-style message id (``<id@bench.herald>``), as the SMTP
provider leaves them, so each notification has a history like a real one. A
SendGrid-style receipt is made for each: ~90% delivered, ~5% bounce, ~3%
deferred, ~2% spamreport. They are applied in batches of --batch (1,000,
SendGrid's largest) by ``POSTERS`` (4) concurrent callers, as SendGrid posts
its batches concurrently, each with one replay key as the signed SendGrid
endpoint claims; the figure is events / wall seconds.

The order receipts arrive in decides how scattered a batch's writes are, so
it is measured twice, on N notifications each. Near send order (the judged
figure): SendGrid posts events as they happen, most within seconds of the
send, so the receipts follow the send order, shuffled within runs of 5,000
sends. Random order: shuffled across all N, the worst case, where a batch's
1,000 rows and history index entries each land on a page of their own.

Then the single-event phase: M (--singles, default 10,000) more SENT
notifications each get one "delivered" receipt, applied one event per call by
--concurrency (32) concurrent callers, as SES and Twilio post one message
each. This figure has no target.

CPU per event is this process's CPU time (all threads: for SQLite that
includes the database's own work) over the events; for PostgreSQL the
server's backends serving this run are added where their /proc entries can
be read. Checks: every event matched its notification; the statuses,
suppressions and receipt history rows are the ones the mix implies.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from _common import BenchError, cpu_seconds, temp_dir
from _report import Options, exit_with, finish, fmt_int, prepare
from _seeded import new_notification
from _stores import Database, database
from herald.config import Settings
from herald.logs import configure as configure_logs
from herald.models import Sent
from herald.receipts.base import ReceiptEvent, ReceiptKind
from herald.store import open_store
from herald.store.base import Store

NAME = "receipts"
#: SendGrid's event names in the mix, their share in percent, and what Herald reads.
MIX = (
    ("delivered", 90, ReceiptKind.DELIVERED),
    ("bounce", 5, ReceiptKind.BOUNCED),
    ("deferred", 3, ReceiptKind.DEFERRED),
    ("spamreport", 2, ReceiptKind.COMPLAINED),
)
#: The status each kind leaves its notification in (DEFERRED: history only).
LEAVES = {ReceiptKind.DELIVERED: "DELIVERED", ReceiptKind.BOUNCED: "BOUNCED",
          ReceiptKind.DEFERRED: "SENT", ReceiptKind.COMPLAINED: "COMPLAINED"}  # fmt: skip
#: The ``detail`` SendGrid's fields give these events (``sendgrid._event``'s reading).
DETAILS = {
    "bounce": "bounce; 5.1.1; 550 5.1.1 The email account that you tried to reach does not exist",
    "deferred": "4.2.2; 452 4.2.2 The email account that you tried to reach is over quota",
}
#: History rows a receipt wrote, on each store.
RECEIPT_ROWS = {
    "sqlite": "SELECT count(*) FROM audit WHERE json_extract(metadata, '$.receipt') IS NOT NULL",
    "postgres": "SELECT count(*) FROM audit WHERE metadata ? 'receipt'",
}
#: Receipts arrive about in the order their messages were sent (SendGrid posts events
#: as they happen, most within seconds of the send): shuffled within runs of this
#: many sends. The random phase shuffles them across all N, the worst case.
WINDOW = 5_000
SEED_CHUNK = 5_000
CLAIM_CHUNK = 1_000
TARGET_PER_S = 10_000


def receipt(message_id: str, name: str, kind: ReceiptKind, n: int, at: float) -> ReceiptEvent:
    """What ``receipts/sendgrid.py`` reads from one SendGrid event about ``message_id``."""
    detail = DETAILS.get(name)
    return ReceiptEvent(
        provider="sendgrid", message_id=message_id, kind=kind, raw_type=name, at=at,
        recipient=f"customer{n}@example.com", detail=detail,
        event_id=secrets.token_urlsafe(16),
    )  # fmt: skip


def mixed(message_ids: Sequence[str], window: int | None, seed: int = 1) -> list[ReceiptEvent]:
    """One receipt per message (given in send order) in MIX's shares, shuffled within
    each run of ``window`` messages, or across all of them when ``window`` is None."""
    kinds = [(name, kind) for name, share, kind in MIX for _ in range(share)]
    at = time.time()
    events = [receipt(mid, *kinds[i % len(kinds)], i, at) for i, mid in enumerate(message_ids)]
    rng, step = random.Random(seed), window or len(events)
    shuffled: list[ReceiptEvent] = []
    for start in range(0, len(events), step):
        run = events[start : start + step]
        rng.shuffle(run)
        shuffled += run
    return shuffled


async def seed_sent(store: Store, first: int, count: int) -> list[str]:
    """``count`` notifications created, claimed and completed as Sent; their message ids."""
    for start in range(first, first + count, SEED_CHUNK):
        end = min(first + count, start + SEED_CHUNK)
        await store.create([new_notification(n) for n in range(start, end)])
    message_ids: list[str] = []
    while claims := await store.claim(CLAIM_CHUNK, 600):
        at = time.time()
        done = [Sent(c, "smtp", f"<{c.id}@bench.herald>", 1.0, at) for c in claims]
        if await store.complete(done) != len(done):
            raise BenchError("a seeding completion was refused")
        message_ids += [s.message_id for s in done]
    if len(message_ids) != count:
        raise BenchError(f"seeded {len(message_ids):,} SENT notifications, not {count:,}")
    return message_ids


@dataclass(frozen=True)
class Phase:
    """One phase's events, wall seconds and CPU seconds (this process; the server's)."""

    events: int
    matched: int
    seconds: float
    cpu: float | None
    server_cpu: float | None

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_us(self) -> float | None:
        return None if self.cpu is None else self.cpu / self.events * 1e6

    def server_cpu_us(self) -> float | None:
        return None if self.server_cpu is None else self.server_cpu / self.events * 1e6


class ServerCpu:
    """The CPU seconds of the PostgreSQL backends serving this database, read through a
    connection of its own (None for SQLite, or when their /proc entries cannot be read)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: asyncpg.Connection | None = None

    async def read(self) -> float | None:
        if self.db.kind != "postgres":
            return None
        if self._conn is None:
            self._conn = await asyncpg.connect(self.db.url)
        pids = await self._conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        times = [cpu_seconds(int(r["pid"])) for r in pids]
        return None if not times or None in times else sum(t for t in times if t is not None)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


#: Batches posted at once: SendGrid posts its batches concurrently, so a store
#: overlaps one batch's commit with the next one's reading and writing.
POSTERS = 4


async def apply_batches(store: Store, events: Sequence[ReceiptEvent], size: int) -> int:
    """Apply ``events`` ``size`` at a time, ``POSTERS`` batches at once; events matched."""
    batches = iter(range(0, len(events), size))
    matched = 0

    async def poster() -> None:
        nonlocal matched
        for start in batches:
            seen = [(f"sendgrid:{secrets.token_urlsafe(48)}", time.time() + 600)]
            applied = await store.apply_receipts(events[start : start + size], seen=seen)
            matched += applied.matched  # after the await: ``+=`` reads before it

    await asyncio.gather(*(poster() for _ in range(POSTERS)))
    return matched


async def apply_singly(store: Store, events: Sequence[ReceiptEvent], callers: int) -> int:
    """Apply ``events`` one per call from ``callers`` concurrent callers; events matched."""
    queue = iter(events)
    matched = 0

    async def caller() -> None:
        nonlocal matched
        for event in queue:
            seen = [(f"ses:{event.event_id}", time.time() + 600)]
            applied = await store.apply_receipts([event], seen=seen)
            matched += applied.matched  # after the await: ``+=`` reads before it

    await asyncio.gather(*(caller() for _ in range(callers)))
    return matched


async def measure(run: Coroutine[Any, Any, int], events: int, server: ServerCpu) -> Phase:
    """Await ``run`` (it answers the events matched), timing it on the clock and the CPU."""
    pid = os.getpid()
    cpu_before, server_before = cpu_seconds(pid), await server.read()
    started = time.perf_counter()
    matched = await run
    seconds = time.perf_counter() - started
    cpu_after, server_after = cpu_seconds(pid), await server.read()
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    on_server = (
        None if server_before is None or server_after is None else server_after - server_before
    )
    return Phase(events, matched, seconds, cpu, on_server)


@dataclass(frozen=True)
class Run:
    batched: Phase
    scattered: Phase
    single: Phase
    statuses: dict[str, int]
    suppressions: int
    receipt_rows: int


async def run(
    db: Database, count: int, singles: int, size: int, callers: int
) -> tuple[Phase, Phase, Phase]:
    configure_logs("warning")
    store = open_store(Settings(_env_file=None, database_url=db.url))
    server = ServerCpu(db)
    await store.open()
    try:
        started = time.monotonic()
        in_order = await seed_sent(store, 0, count)
        at_random = await seed_sent(store, count, count)
        single_ids = await seed_sent(store, 2 * count, singles)
        seeded = time.monotonic() - started
        print(f"seeded {2 * count + singles:,} SENT notifications in {seeded:.1f}s")
        events = mixed(in_order, WINDOW)
        batched = await measure(apply_batches(store, events, size), len(events), server)
        print(f"batches of {size:,}, near send order: {batched.rate:,.0f} events/s")
        events = mixed(at_random, None, seed=2)
        scattered = await measure(apply_batches(store, events, size), len(events), server)
        print(f"batches of {size:,}, in random order: {scattered.rate:,.0f} events/s")
        at = time.time()
        ones = [receipt(mid, "delivered", ReceiptKind.DELIVERED, i, at)
                for i, mid in enumerate(single_ids)]  # fmt: skip
        single = await measure(apply_singly(store, ones, callers), len(ones), server)
        print(f"one event per call, {callers} callers: {single.rate:,.0f} events/s")
    finally:
        await server.close()
        await store.close()
    return batched, scattered, single


def inspect(db: Database, batched: Phase, scattered: Phase, single: Phase) -> Run:
    """What the store holds after the run, read from outside Herald."""
    rows = db.rows("SELECT status, count(*) FROM notifications GROUP BY status")
    statuses = {str(status): int(n) for status, n in rows}
    suppressions = int(db.scalar("SELECT count(*) FROM suppressions"))
    receipt_rows = int(db.scalar(RECEIPT_ROWS[db.kind]))
    return Run(batched, scattered, single, statuses, suppressions, receipt_rows)


def expected(count: int, singles: int) -> tuple[dict[str, int], int]:
    """The statuses and the suppression entries the run leaves: the mix dealt in turn
    (``mixed``) to the two batched phases' ``count`` each, and ``singles`` delivered."""
    kinds = [kind for _, share, kind in MIX for _ in range(share)]
    dealt = Counter(kinds[i % len(kinds)] for i in range(count))
    statuses: Counter[str] = Counter()
    for kind, n in dealt.items():
        statuses[LEAVES[kind]] += 2 * n
    statuses["DELIVERED"] += singles
    return dict(statuses), 2 * (dealt[ReceiptKind.BOUNCED] + dealt[ReceiptKind.COMPLAINED])


def phase_figures(label: str, phase: Phase, store: str) -> dict[str, str]:
    def per_event(us: float | None) -> str:
        return "n/a" if us is None else f"{us:.1f} us per event"

    figures = {
        f"{label}: events/s": f"{phase.rate:,.0f}",
        f"{label}: wall": f"{phase.seconds:.2f} s for {fmt_int(phase.events)} events",
        f"{label}: this process's CPU": per_event(phase.cpu_us()),
    }
    if store == "postgres":
        figures[f"{label}: PostgreSQL server CPU"] = per_event(phase.server_cpu_us())
    return figures


def phase_metrics(prefix: str, phase: Phase) -> dict[str, object]:
    return {
        f"{prefix}events_per_s": phase.rate,
        f"{prefix}cpu_us_per_event": phase.cpu_us(),
        f"{prefix}server_cpu_us_per_event": phase.server_cpu_us(),
    }


def main() -> int:
    options = Options(__doc__)
    options.count(100_000, "receipt events per batched phase (one per notification)")
    options.add_argument("--batch", type=int, default=1000, help="events per batch (%(default)s)")
    options.add_argument(
        "--singles", type=int, default=10_000, help="events applied one per call (%(default)s)"
    )
    options.add_argument(
        "--concurrency",
        type=int,
        default=32,
        help="concurrent callers for single events (%(default)s)",
    )
    options.store()
    args = options.parse()
    if min(args.count, args.batch, args.singles, args.concurrency) < 1:
        options.error("--count, --batch, --singles and --concurrency must be positive")
    prepare()
    print(
        f"receipts: {args.count:,} events in batches of {args.batch:,} near send order, as "
        f"many in random order, then {args.singles:,} one at a time from {args.concurrency} "
        f"callers, on {args.store}"
    )
    with temp_dir() as work, database(args.store, work) as db:
        phases = asyncio.run(run(db, args.count, args.singles, args.batch, args.concurrency))
        result = inspect(db, *phases)

    want_statuses, want_suppressed = expected(args.count, args.singles)
    events = sum(p.events for p in phases)
    failures = []
    if any(p.matched != p.events for p in phases):
        failures.append(f"matched {[p.matched for p in phases]} of {[p.events for p in phases]}")
    if result.statuses != want_statuses:
        failures.append(f"statuses {result.statuses}, expected {want_statuses}")
    if result.suppressions != want_suppressed:
        failures.append(f"{result.suppressions:,} suppressions, expected {want_suppressed:,}")
    if result.receipt_rows != events:
        failures.append(f"{result.receipt_rows:,} receipt history rows for {events:,} events")
    batch = f"batches of {args.batch:,}"
    figures = {
        "store": args.store,
        **phase_figures(f"{batch}, near send order", result.batched, args.store),
        **phase_figures(f"{batch}, random order", result.scattered, args.store),
        **phase_figures(f"one per call, {args.concurrency} callers", result.single, args.store),
        "statuses after": ", ".join(f"{k} {v:,}" for k, v in sorted(result.statuses.items())),
        "suppressions added": fmt_int(result.suppressions),
    }
    metrics: dict[str, object] = {
        **phase_metrics("", result.batched),
        **phase_metrics("random_", result.scattered),
        **phase_metrics("single_", result.single),
        "statuses": result.statuses,
        "suppressions": result.suppressions,
    }
    params = {"count": args.count, "batch": args.batch, "singles": args.singles,
              "concurrency": args.concurrency, "window": WINDOW, "store": args.store}  # fmt: skip
    title = f"receipts (store.apply_receipts; target >= {TARGET_PER_S:,} events/s in batches)"
    return finish(args, NAME, title, figures, metrics, params, failures)


if __name__ == "__main__":
    exit_with(main)

"""Workers on a seeded store: what drain.py, slow.py and smtp.py each measure around.

The flow: N EMAIL notifications are written straight into a fresh store
(``seed``, through the store's own ``create``, in chunks), then `herald
worker` processes are started and the store is polled read-only every 0.2 s
until no row is left to send (``wait_drained``), the workers are stopped,
and the store says what happened (``inspect``). ``drain_with_workers`` runs
that middle part; ``Drained`` turns it into the figures and metrics the three
benchmarks share: wall time, start-up, the active span from the rows' own
``sent_at``, and the SENT and audit counts they check.

Counting rows is not cheap in PostgreSQL (every row the count passes is
visited in the table to check it is visible), so each poll only asks whether
any row is left (EXISTS stops at the first), through the worker's own partial
indexes (ready and leased), and the rows are counted for the progress line
every 5 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import BenchError, Service, sample_email, start_herald, stop_all
from _report import fmt_int
from _stores import Database
from herald.config import Settings
from herald.logs import configure as configure_logs
from herald.models import Channel, NewNotification, Priority

PENDING_QUERY = (
    "SELECT (SELECT count(*) FROM notifications"
    " WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING'))"
    " + (SELECT count(*) FROM notifications WHERE status = 'PROCESSING')"
)
ANY_LEFT_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM notifications"
    " WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING'))"
    " OR EXISTS (SELECT 1 FROM notifications WHERE status = 'PROCESSING')"
)
ANY_SENT_QUERY = "SELECT EXISTS (SELECT 1 FROM notifications WHERE status = 'SENT')"
POLL_INTERVAL = 0.2
PROGRESS_EVERY = 5.0
SEED_CHUNK = 5_000
#: A database URL of each store, for the settings Herald derives from it.
SAMPLE_URLS = {"sqlite": "sqlite:///herald.db", "postgres": "postgresql://localhost/herald"}


def in_force(store: str, settings: Mapping[str, object]) -> Settings:
    """The settings a worker will run with: Herald's defaults depend on the store."""
    chosen = {k: v for k, v in settings.items() if v is not None}
    return Settings(_env_file=None, database_url=SAMPLE_URLS[store], **chosen)


def new_notification(n: int) -> NewNotification:
    sample = sample_email(n)
    return NewNotification(
        channel=Channel(sample["type"]),
        recipient=sample["recipient"],
        body=sample["message"],
        subject=sample["subject"],
        html=sample["html"],
        priority=Priority[sample["priority"]],
        metadata=sample["metadata"],
    )


async def seed(db: Database, count: int, chunk: int) -> None:
    """Store ``count`` queued notifications, ``chunk`` per create() call."""
    configure_logs("warning")
    store = db.open_store()
    await store.open()
    try:
        for start in range(0, count, chunk):
            await store.create(
                [new_notification(n) for n in range(start, min(count, start + chunk))]
            )
    finally:
        await store.close()


def seed_timed(db: Database, count: int, chunk: int = SEED_CHUNK) -> float:
    """``seed``; the seconds it took."""
    started = time.monotonic()
    asyncio.run(seed(db, count, chunk))
    return time.monotonic() - started


def wait_drained(
    workers: Sequence[Service], db: Database, count: int, started: float, timeout: float
) -> tuple[float, float]:
    """Poll until ``count`` rows are SENT.

    Returns the seconds from ``started`` (monotonic) to the first poll that saw
    a SENT row and to the first that saw all of them.
    """
    first_seen: float | None = None
    next_progress = started + PROGRESS_EVERY
    while True:
        for worker in workers:
            worker.check_running()
        left = bool(db.scalar(ANY_LEFT_QUERY))
        now = time.monotonic()
        if first_seen is None and bool(db.scalar(ANY_SENT_QUERY)):
            first_seen = now - started
        if not left:
            return first_seen if first_seen is not None else now - started, now - started
        if now - started > timeout or now >= next_progress:
            sent = count - int(db.scalar(PENDING_QUERY))
            if now - started > timeout:
                raise BenchError(f"only {sent:,} of {count:,} SENT after {timeout:g}s")
            print(f"  {now - started:6.1f}s  {sent:>10,} SENT")
            next_progress += PROGRESS_EVERY
        time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - now)))


@dataclass(frozen=True)
class Stored:
    """What the store says once the workers have stopped."""

    statuses: dict[str, int]
    audit_sent: int
    first_sent: float | None  # the rows' own sent_at times (POSIX seconds)
    last_sent: float | None


def inspect(db: Database) -> Stored:
    rows = db.rows("SELECT status, count(*) FROM notifications GROUP BY status")
    statuses = {str(status): int(n) for status, n in rows}
    audit_sent = int(db.scalar("SELECT count(*) FROM audit WHERE status = 'SENT'"))
    [(first, last)] = db.rows(
        "SELECT min(sent_at), max(sent_at) FROM notifications WHERE status = 'SENT'"
    )
    return Stored(statuses, audit_sent, first, last)


@dataclass(frozen=True)
class Drained:
    """One drain of ``count`` notifications, as the store and the clock saw it."""

    count: int
    wall_started: float  # time.time() when the workers were started
    first_seen: float  # seconds from the start to the first poll that saw a SENT row
    done: float  # seconds from the start to the poll that saw all of them SENT
    peak_rss_kib: int | None  # the largest worker's
    found: Stored

    @property
    def sent(self) -> int:
        return self.found.statuses.get("SENT", 0)

    @property
    def first_sent(self) -> float:
        return self.found.first_sent if self.found.first_sent is not None else float("nan")

    @property
    def active(self) -> float:
        """First to last SENT, from the rows' own times: no start-up, no polling."""
        return (self.found.last_sent or self.first_sent) - self.first_sent

    @property
    def rate(self) -> float | None:
        return self.count / self.active if self.active > 0 else None

    @property
    def startup(self) -> float:
        return self.first_sent - self.wall_started

    @property
    def all_sent(self) -> bool:
        """Exactly N rows SENT, and exactly N audit rows saying so."""
        return self.sent == self.count and self.found.audit_sent == self.count

    def timing(self, word: str) -> dict[str, str]:
        """The figures of time and rate; ``word`` is what was sent (``delivered``, ``messages``)."""
        return {
            "wall (start -> all SENT)": f"{self.done:.2f} s",
            f"{word}/s (wall)": f"{self.count / self.done:,.0f}",
            "start-up (start -> first SENT)": f"{self.startup:.2f} s",
            "active (first -> last SENT)": f"{self.active:.2f} s",
            f"{word}/s (active)": "n/a" if self.rate is None else f"{self.rate:,.0f}",
        }

    def rows(self) -> dict[str, str]:
        """The figures of what the store holds: rows and audit rows SENT."""
        others = ", ".join(
            f"{s} {n:,}" for s, n in sorted(self.found.statuses.items()) if s != "SENT"
        )
        check = "== N: OK" if self.found.audit_sent == self.count else "!= N: MISMATCH"
        return {
            "rows SENT": fmt_int(self.sent) + (f" (also {others})" if others else ""),
            "audit rows SENT": f"{self.found.audit_sent:,} ({check})",
        }

    def metrics(self) -> dict[str, object]:
        return {
            "count": self.count,
            "wall_s": self.done,
            "active_s": self.active,
            "startup_s": self.startup,
            "sent": self.sent,
            "audit_sent": self.found.audit_sent,
        }


def drain_with_workers(
    db: Database,
    env: Mapping[str, str],
    work: Path,
    count: int,
    timeout: float,
    *,
    workers: int = 1,
    cpu: int | None = None,
    watch: Sequence[Service] = (),
    label: str = "herald worker",
    measure: Callable[[list[Service]], None] | None = None,
) -> Drained:
    """Start ``workers`` `herald worker` processes, wait until the store is drained, stop them.

    ``watch``: other processes the run needs (a sink), checked at every poll.
    ``measure`` is called with the workers once all is SENT, before they stop.
    """
    wall_started = time.time()
    started = time.monotonic()
    running: list[Service] = []
    try:
        for n in range(workers):
            name = f"worker-{n + 1}" if workers > 1 else None
            running.append(start_herald("worker", env, work, cpu, log_name=name))
        pids = ", ".join(str(w.pid) for w in running)
        print(f"{label} (pid {pids}) started; polling every {POLL_INTERVAL}s")
        first_seen, done = wait_drained([*running, *watch], db, count, started, timeout)
        rss = [w.peak_rss_kib() for w in running]
        if measure is not None:
            measure(running)
    finally:
        stop_all(running)
    peak = max((r for r in rss if r is not None), default=None)
    return Drained(count, wall_started, first_seen, done, peak, inspect(db))

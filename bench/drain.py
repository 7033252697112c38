"""Drain: how fast one `herald worker` delivers a backlog of EMAIL notifications.

What it measures: notifications delivered (status SENT, outcome and audit row
committed) per second by one `herald worker` process against a provider that
costs nothing, so the figure is Herald's own overhead per notification: claim,
dispatch, record, fsync.

How: N (default 100,000) EMAIL notifications are written straight into a fresh
SQLite store in a temporary directory with SQLiteStore.create, in chunks of
5,000 (the seeding rate is printed too, but is not the point). Then
`herald worker` is started with HERALD_EMAIL_PROVIDERS=fault,
HERALD_FAULT_LATENCY_MS=0, HERALD_FAULT_FAILURE_RATE=0 and
HERALD_LOG_LEVEL=warning, and the file is polled read-only every 0.2 s for the
rows still queued or leased (through the store's partial indexes, so the poll
costs the worker almost nothing) until none are left.

``--store postgres`` runs the same on a throwaway PostgreSQL database (see
``_stores.py``), seeded through PostgresStore.create; ``--workers N`` starts N
`herald worker` processes at once, for the scaling figure. Counting rows is
not cheap in PostgreSQL (every row the count passes is visited in the table
to check it is visible, and at 0.2 s intervals that took about a fifth of the
server's time from the worker), so on either store each poll only asks
whether any row is left (EXISTS stops at the first), and the rows are counted
for the progress line every 5 s.

Two rates are reported:
  * wall: N / (process start until the poll that sees all N SENT); nothing is
    subtracted, so it includes interpreter start-up, migrations and up to one
    poll interval;
  * active: N / (first to last SENT), taken from the rows' own ``sent_at``
    times, which excludes start-up and the polling granularity.
Checks: exactly N rows are SENT and exactly N audit rows say SENT. The worker's
peak RSS (VmHWM) is read just before it is stopped with SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass

from _common import (
    BenchError,
    Service,
    add_reporting_args,
    exit_on_sigterm,
    fmt_int,
    fmt_mib,
    herald_env,
    line_buffered,
    report,
    sample_email,
    start_herald,
    temp_dir,
)
from _stores import STORES, Database, database
from herald.config import Settings
from herald.logs import configure as configure_logs
from herald.models import Channel, NewNotification, Priority

NAME = "drain"
# Counting SENT rows scans the whole table and, at 100,000 rows, takes a real
# share of the second core from the worker; the rows still to do are found
# through the worker's own partial indexes (ready and leased) instead.
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
SAMPLE_URLS = {"sqlite": "sqlite:///herald.db", "postgres": "postgresql://localhost/herald"}
PROGRESS_EVERY = 5.0


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


def wait_drained(
    workers: list[Service], db: Database, count: int, started: float, timeout: float
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
    """What the file says once the worker has stopped."""

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


def parse_args() -> argparse.Namespace:
    defaults = Settings.model_fields
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "-n", "--count", type=int, default=100_000, help="notifications (default: %(default)s)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="HERALD_WORKER_CONCURRENCY (default: Herald's, "
        f"{defaults['worker_concurrency'].default}; 2048 on PostgreSQL)",
    )
    parser.add_argument(
        "--claim-batch",
        type=int,
        default=None,
        help=f"HERALD_CLAIM_BATCH (default: Herald's, {defaults['claim_batch'].default}; "
        "250 on PostgreSQL)",
    )
    parser.add_argument(
        "--chunk", type=int, default=5_000, help="notifications per create() (default: %(default)s)"
    )
    parser.add_argument(
        "--store", choices=STORES, default="sqlite", help="the store (default: %(default)s)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="herald worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="give up after this many seconds (default: %(default)s)",
    )
    add_reporting_args(parser)
    args = parser.parse_args()
    if args.count < 1 or args.chunk < 1 or args.timeout <= 0 or args.workers < 1:
        parser.error("--count, --chunk, --timeout and --workers must be positive")
    return args


def main() -> int:
    args = parse_args()
    line_buffered()
    exit_on_sigterm()
    settings = {
        "email_providers": "fault",
        "fault_latency_ms": 0,
        "fault_failure_rate": 0,
        "worker_concurrency": args.concurrency,
        "claim_batch": args.claim_batch,
    }
    # What the worker will run with: Herald's defaults depend on the store.
    chosen = {k: v for k, v in settings.items() if v is not None}
    effective = Settings(_env_file=None, database_url=SAMPLE_URLS[args.store], **chosen)
    concurrency, claim_batch = effective.worker_concurrency, effective.claim_batch
    print(
        f"drain: {args.count:,} EMAIL notifications on {args.store}, {args.workers} herald "
        f"worker(s) with fault provider (0 ms), concurrency {concurrency}, "
        f"claim batch {claim_batch}, not pinned"
    )

    with temp_dir() as work, database(args.store, work) as db:
        seed_started = time.monotonic()
        asyncio.run(seed(db, args.count, args.chunk))
        seed_seconds = time.monotonic() - seed_started
        print(f"seeded {args.count:,} in {seed_seconds:.2f}s ({args.count / seed_seconds:,.0f}/s)")

        env = herald_env(db.url, **settings)
        wall_started = time.time()
        started = time.monotonic()
        workers: list[Service] = []
        try:
            for n in range(args.workers):
                workers.append(start_herald("worker", env, work, log_name=f"worker-{n + 1}"))
            pids = ", ".join(str(w.pid) for w in workers)
            print(f"herald worker(s) (pid {pids}) started; polling every {POLL_INTERVAL}s")
            first_seen, done = wait_drained(workers, db, args.count, started, args.timeout)
            rss = [w.peak_rss_kib() for w in workers]
            peak_rss = max((r for r in rss if r is not None), default=None)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            for worker in workers:
                code = worker.stop()
                if not worker.stopped_cleanly():
                    print(f"warning: herald worker exited with code {code}\n{worker.log_tail()}")
        found = inspect(db)

    sent = found.statuses.get("SENT", 0)
    ok = sent == args.count and found.audit_sent == args.count
    first_sent = found.first_sent if found.first_sent is not None else float("nan")
    active = (found.last_sent or first_sent) - first_sent
    others = ", ".join(f"{s} {n:,}" for s, n in sorted(found.statuses.items()) if s != "SENT")
    audit_check = "== N: OK" if found.audit_sent == args.count else "!= N: MISMATCH"
    figures = {
        "notifications": fmt_int(args.count),
        "store": args.store,
        "worker": f"{args.workers} process(es), concurrency {concurrency}, "
        f"claim batch {claim_batch}",
        "wall (start -> all SENT)": f"{done:.2f} s",
        "delivered/s (wall)": f"{args.count / done:,.0f}",
        "start-up (start -> first SENT)": f"{first_sent - wall_started:.2f} s",
        "active (first -> last SENT)": f"{active:.2f} s",
        "delivered/s (active)": f"{args.count / active:,.0f}" if active > 0 else "n/a",
        "rows SENT": fmt_int(sent) + (f" (also {others})" if others else ""),
        "audit rows SENT": f"{found.audit_sent:,} ({audit_check})",
        "worker peak RSS (largest)": fmt_mib(peak_rss),
    }
    metrics: dict[str, object] = {
        "count": args.count,
        "wall_s": done,
        "delivered_per_s_wall": args.count / done,
        "startup_s": first_sent - wall_started,
        "active_s": active,
        "delivered_per_s_active": args.count / active if active > 0 else None,
        "poll_first_seen_s": first_seen,
        "sent": sent,
        "audit_sent": found.audit_sent,
        "statuses": found.statuses,
        "peak_rss_kib": peak_rss,
        "seed_s": seed_seconds,
    }
    params = {
        "count": args.count,
        "concurrency": concurrency,
        "claim_batch": claim_batch,
        "store": args.store,
        "workers": args.workers,
    }
    report(
        args, NAME, "drain (herald worker, fault provider at 0 ms)", figures, metrics, params, ok
    )
    if not ok:
        print(f"FAIL: expected {args.count:,} SENT rows and audit rows")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

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
not cheap in PostgreSQL (at 0.2 s intervals it took about a fifth of the
server's time from the worker), so each poll only asks whether any row is
left; the flow is ``_seeded.py``'s, shared with slow.py and smtp.py.

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

from _common import herald_env, temp_dir
from _report import Options, exit_with, finish, fmt_int, fmt_mib, prepare
from _seeded import drain_with_workers, in_force, seed_timed
from _stores import database
from herald.config import Settings

NAME = "drain"


def parse_args() -> Options:
    defaults = Settings.model_fields
    options = Options(__doc__)
    options.count(100_000)
    options.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="HERALD_WORKER_CONCURRENCY (default: Herald's, "
        f"{defaults['worker_concurrency'].default}; 2048 on PostgreSQL)",
    )
    options.add_argument(
        "--claim-batch",
        type=int,
        default=None,
        help=f"HERALD_CLAIM_BATCH (default: Herald's, {defaults['claim_batch'].default}; "
        "250 on PostgreSQL)",
    )
    options.add_argument(
        "--chunk", type=int, default=5_000, help="notifications per create() (default: %(default)s)"
    )
    options.store()
    options.add_argument(
        "--workers", type=int, default=1, help="herald worker processes (default: %(default)s)"
    )
    options.timeout(600.0)
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.count < 1 or args.chunk < 1 or args.timeout <= 0 or args.workers < 1:
        options.error("--count, --chunk, --timeout and --workers must be positive")
    prepare()
    settings = {
        "email_providers": "fault",
        "fault_latency_ms": 0,
        "fault_failure_rate": 0,
        "worker_concurrency": args.concurrency,
        "claim_batch": args.claim_batch,
    }
    effective = in_force(args.store, settings)
    concurrency, claim_batch = effective.worker_concurrency, effective.claim_batch
    print(
        f"drain: {args.count:,} EMAIL notifications on {args.store}, {args.workers} herald "
        f"worker(s) with fault provider (0 ms), concurrency {concurrency}, "
        f"claim batch {claim_batch}, not pinned"
    )

    with temp_dir() as work, database(args.store, work) as db:
        seed_seconds = seed_timed(db, args.count, args.chunk)
        print(f"seeded {args.count:,} in {seed_seconds:.2f}s ({args.count / seed_seconds:,.0f}/s)")
        env = herald_env(db.url, **settings)
        drained = drain_with_workers(
            db, env, work, args.count, args.timeout, workers=args.workers, label="herald worker(s)"
        )

    figures = {
        "notifications": fmt_int(args.count),
        "store": args.store,
        "worker": f"{args.workers} process(es), concurrency {concurrency}, "
        f"claim batch {claim_batch}",
        **drained.timing("delivered"),
        **drained.rows(),
        "worker peak RSS (largest)": fmt_mib(drained.peak_rss_kib),
    }
    metrics: dict[str, object] = {
        "delivered_per_s_wall": args.count / drained.done,
        "delivered_per_s_active": drained.rate,
        "poll_first_seen_s": drained.first_seen,
        **drained.metrics(),
        "statuses": drained.found.statuses,
        "peak_rss_kib": drained.peak_rss_kib,
        "seed_s": seed_seconds,
    }
    params = {
        "count": args.count,
        "concurrency": concurrency,
        "claim_batch": claim_batch,
        "store": args.store,
        "workers": args.workers,
    }
    title = "drain (herald worker, fault provider at 0 ms)"
    failed = [] if drained.all_sent else [f"expected {args.count:,} SENT rows and audit rows"]
    return finish(args, NAME, title, figures, metrics, params, failed)


if __name__ == "__main__":
    exit_with(main)

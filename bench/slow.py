"""Slow provider: how fast one `herald worker` delivers when every provider call takes 200 ms.

What it measures: notifications delivered per second by one `herald worker`
process when the provider is slow, so the figure is set by how many sends the
worker keeps in flight, not by its CPU. Seed 004 sizes its fleet on 200 ms per
notification, hence 5 per second per worker (50 with its prefetch of 10), and
needs 200 workers for 10,000/s. Herald's target is at least 2,500 per second
from one process, which by Little's law needs at least 500 calls in flight.

How: N (default 20,000) EMAIL notifications are written straight into a fresh
store (``_seeded.py``, as drain.py), then `herald worker` is started with
HERALD_EMAIL_PROVIDERS=fault, HERALD_FAULT_LATENCY_MS=200 (``--latency-ms``),
HERALD_FAULT_FAILURE_RATE=0 and Herald's default HERALD_WORKER_CONCURRENCY
(``--concurrency`` overrides it), and the store is polled read-only every
0.2 s until no row is left to send (``_seeded.py``).

Nothing is pinned and nothing is rate-limited: there is no load generator, the
whole backlog is in the store before the worker starts, and the only other
process is the poll, one EXISTS query every 0.2 s. ``--store postgres`` runs
the same on a throwaway PostgreSQL database, where Herald's defaults are a
deeper pipeline (see config.py), so the concurrency shown is the one in force.

Two rates are reported, as in drain.py: wall (process start until the poll
that sees all N SENT) and active (first to last SENT, from the rows' own
``sent_at``). The ceiling beside them is concurrency / latency, what the
worker would reach if every slot were busy sending all the time; the sends
actually in flight follow from the active rate by Little's law (rate x latency).
They differ because a slot stays taken until the outcome is committed and
because the claim loop stops taking LOW and MEDIUM rows once only
``reserved_slots`` (a quarter, by default) are free, keeping those for HIGH
and CRITICAL.

Checks: exactly N rows are SENT, exactly N audit rows say SENT, and the rows
were claimed N times in all, so no notification went to the provider twice
(a lease that ran out would show up as a second claim).
"""

from __future__ import annotations

from _common import herald_env, temp_dir
from _report import Options, exit_with, finish, fmt_int, fmt_mib, prepare
from _seeded import drain_with_workers, in_force, seed_timed
from _stores import Database, database
from herald.config import Settings

NAME = "slow"
TARGET_PER_S = 2_500


def claims_made(db: Database) -> int:
    """How many times rows were claimed (``attempts`` goes up by one per claim)."""
    return int(db.scalar("SELECT coalesce(sum(attempts), 0) FROM notifications"))


def parse_args() -> Options:
    default_concurrency = Settings.model_fields["worker_concurrency"].default
    options = Options(__doc__)
    options.count(20_000)
    options.add_argument(
        "--latency-ms",
        type=float,
        default=200.0,
        help="HERALD_FAULT_LATENCY_MS, each provider call (default: %(default)s)",
    )
    options.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"HERALD_WORKER_CONCURRENCY (default: Herald's, {default_concurrency}; "
        "2048 on PostgreSQL)",
    )
    options.store()
    options.timeout(300.0)
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.count < 1 or args.latency_ms <= 0 or args.timeout <= 0:
        options.error("--count, --latency-ms and --timeout must be positive")
    if args.concurrency is not None and args.concurrency < 1:
        options.error("--concurrency must be positive")
    prepare()
    settings = {
        "email_providers": "fault",
        "fault_latency_ms": args.latency_ms,
        "fault_failure_rate": 0,
        "worker_concurrency": args.concurrency,
    }
    effective = in_force(args.store, settings)
    concurrency = effective.worker_concurrency
    reserved = effective.reserved_slots or 0
    latency_s = args.latency_ms / 1000
    ceiling = concurrency / latency_s
    print(
        f"slow: {args.count:,} EMAIL notifications on {args.store}, one herald worker with "
        f"fault provider ({args.latency_ms:g} ms), concurrency {concurrency} "
        f"(ceiling {ceiling:,.0f}/s), not pinned"
    )

    with temp_dir() as work, database(args.store, work) as db:
        seed_seconds = seed_timed(db, args.count)
        print(f"seeded {args.count:,} in {seed_seconds:.2f}s")
        env = herald_env(db.url, **settings)
        drained = drain_with_workers(db, env, work, args.count, args.timeout)
        claims = claims_made(db)

    rate = drained.rate
    claims_check = "== N: OK" if claims == args.count else "!= N: SOME SENT TWICE"
    figures = {
        "notifications": fmt_int(args.count),
        "store": args.store,
        "provider latency": f"{args.latency_ms:g} ms",
        "worker": f"1 process, concurrency {concurrency} ({reserved} kept for HIGH+)",
        "ceiling (concurrency / latency)": f"{ceiling:,.0f}/s",
        **drained.timing("delivered"),
        "target": f"{TARGET_PER_S:,}/s: "
        + ("met" if rate is not None and rate >= TARGET_PER_S else "NOT met"),
        "sends in flight (rate x latency)": "n/a" if rate is None else f"{rate * latency_s:,.0f}",
        **drained.rows(),
        "claims": f"{claims:,} ({claims_check})",
        "worker peak RSS": fmt_mib(drained.peak_rss_kib),
    }
    metrics: dict[str, object] = {
        "delivered_per_s": rate,
        "delivered_per_s_wall": args.count / drained.done,
        "concurrency": concurrency,
        "peak_rss_kib": drained.peak_rss_kib,
        "ceiling_per_s": ceiling,
        "inflight_mean": None if rate is None else rate * latency_s,
        **drained.metrics(),
        "claims": claims,
        "statuses": drained.found.statuses,
        "seed_s": seed_seconds,
    }
    params = {
        "count": args.count,
        "latency_ms": args.latency_ms,
        "concurrency": concurrency,
        "reserved_slots": reserved,
        "store": args.store,
    }
    title = f"slow (one herald worker, fault provider at {args.latency_ms:g} ms)"
    ok = drained.all_sent and claims == args.count
    failed = [] if ok else [f"expected {args.count:,} SENT rows, audit rows and claims"]
    return finish(args, NAME, title, figures, metrics, params, failed)


if __name__ == "__main__":
    exit_with(main)

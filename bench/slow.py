"""Slow provider: how fast one `herald worker` delivers when every provider call takes 200 ms.

What it measures: notifications delivered per second by one `herald worker`
process when the provider is slow, so the figure is set by how many sends the
worker keeps in flight, not by its CPU. Seed 004 sizes its fleet on 200 ms per
notification, hence 5 per second per worker (50 with its prefetch of 10), and
needs 200 workers for 10,000/s. Herald's target is at least 2,500 per second
from one process, which by Little's law needs at least 500 calls in flight.

How: N (default 20,000) EMAIL notifications are written straight into a fresh
store (drain.py's ``seed``), then `herald worker` is started with
HERALD_EMAIL_PROVIDERS=fault, HERALD_FAULT_LATENCY_MS=200 (``--latency-ms``),
HERALD_FAULT_FAILURE_RATE=0 and Herald's default HERALD_WORKER_CONCURRENCY
(``--concurrency`` overrides it), and the store is polled read-only every
0.2 s until no row is left to send (drain.py's ``wait_drained``).

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

import argparse
import asyncio
import sys
import time

from _common import (
    BenchError,
    add_reporting_args,
    exit_on_sigterm,
    fmt_int,
    fmt_mib,
    herald_env,
    line_buffered,
    report,
    start_herald,
    temp_dir,
)
from _stores import STORES, Database, database
from drain import POLL_INTERVAL, SAMPLE_URLS, inspect, seed, wait_drained
from herald.config import Settings

NAME = "slow"
SEED_CHUNK = 5_000
TARGET_PER_S = 2_500


def claims_made(db: Database) -> int:
    """How many times rows were claimed (``attempts`` goes up by one per claim)."""
    return int(db.scalar("SELECT coalesce(sum(attempts), 0) FROM notifications"))


def parse_args() -> argparse.Namespace:
    default_concurrency = Settings.model_fields["worker_concurrency"].default
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "-n", "--count", type=int, default=20_000, help="notifications (default: %(default)s)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=200.0,
        help="HERALD_FAULT_LATENCY_MS, each provider call (default: %(default)s)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help=f"HERALD_WORKER_CONCURRENCY (default: Herald's, {default_concurrency}; "
        "2048 on PostgreSQL)",
    )
    parser.add_argument(
        "--store", choices=STORES, default="sqlite", help="the store (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="give up after this many seconds (default: %(default)s)",
    )
    add_reporting_args(parser)
    args = parser.parse_args()
    if args.count < 1 or args.latency_ms <= 0 or args.timeout <= 0:
        parser.error("--count, --latency-ms and --timeout must be positive")
    if args.concurrency is not None and args.concurrency < 1:
        parser.error("--concurrency must be positive")
    return args


def main() -> int:
    args = parse_args()
    line_buffered()
    exit_on_sigterm()
    settings = {
        "email_providers": "fault",
        "fault_latency_ms": args.latency_ms,
        "fault_failure_rate": 0,
        "worker_concurrency": args.concurrency,
    }
    # What the worker will run with: Herald's defaults depend on the store.
    chosen = {k: v for k, v in settings.items() if v is not None}
    effective = Settings(_env_file=None, database_url=SAMPLE_URLS[args.store], **chosen)
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
        seed_started = time.monotonic()
        asyncio.run(seed(db, args.count, SEED_CHUNK))
        seed_seconds = time.monotonic() - seed_started
        print(f"seeded {args.count:,} in {seed_seconds:.2f}s")

        wall_started = time.time()
        started = time.monotonic()
        worker = start_herald("worker", herald_env(db.url, **settings), work)
        try:
            print(f"herald worker (pid {worker.pid}) started; polling every {POLL_INTERVAL}s")
            _, done = wait_drained([worker], db, args.count, started, args.timeout)
            peak_rss = worker.peak_rss_kib()
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            code = worker.stop()
            if not worker.stopped_cleanly():
                print(f"warning: herald worker exited with code {code}\n{worker.log_tail()}")
        found = inspect(db)
        claims = claims_made(db)

    sent = found.statuses.get("SENT", 0)
    ok = sent == args.count and found.audit_sent == args.count and claims == args.count
    first_sent = found.first_sent if found.first_sent is not None else float("nan")
    active = (found.last_sent or first_sent) - first_sent
    rate = args.count / active if active > 0 else None
    others = ", ".join(f"{s} {n:,}" for s, n in sorted(found.statuses.items()) if s != "SENT")
    audit_check = "== N: OK" if found.audit_sent == args.count else "!= N: MISMATCH"
    claims_check = "== N: OK" if claims == args.count else "!= N: SOME SENT TWICE"
    figures = {
        "notifications": fmt_int(args.count),
        "store": args.store,
        "provider latency": f"{args.latency_ms:g} ms",
        "worker": f"1 process, concurrency {concurrency} ({reserved} kept for HIGH+)",
        "ceiling (concurrency / latency)": f"{ceiling:,.0f}/s",
        "wall (start -> all SENT)": f"{done:.2f} s",
        "delivered/s (wall)": f"{args.count / done:,.0f}",
        "start-up (start -> first SENT)": f"{first_sent - wall_started:.2f} s",
        "active (first -> last SENT)": f"{active:.2f} s",
        "delivered/s (active)": "n/a" if rate is None else f"{rate:,.0f}",
        "target": f"{TARGET_PER_S:,}/s: "
        + ("met" if rate is not None and rate >= TARGET_PER_S else "NOT met"),
        "sends in flight (rate x latency)": "n/a" if rate is None else f"{rate * latency_s:,.0f}",
        "rows SENT": fmt_int(sent) + (f" (also {others})" if others else ""),
        "audit rows SENT": f"{found.audit_sent:,} ({audit_check})",
        "claims": f"{claims:,} ({claims_check})",
        "worker peak RSS": fmt_mib(peak_rss),
    }
    metrics: dict[str, object] = {
        "delivered_per_s": rate,
        "delivered_per_s_wall": args.count / done,
        "concurrency": concurrency,
        "peak_rss_kib": peak_rss,
        "ceiling_per_s": ceiling,
        "inflight_mean": None if rate is None else rate * latency_s,
        "count": args.count,
        "wall_s": done,
        "active_s": active,
        "startup_s": first_sent - wall_started,
        "sent": sent,
        "audit_sent": found.audit_sent,
        "claims": claims,
        "statuses": found.statuses,
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
    report(args, NAME, title, figures, metrics, params, ok)
    if not ok:
        print(f"FAIL: expected {args.count:,} SENT rows, audit rows and claims")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Latency: POST to SENT, per notification, at a steady 833 requests/s on `herald up`.

What it measures: for each notification, the time from the moment its
POST /api/notifications was due to be sent until the worker recorded it as
sent (its ``sent_at``), in one `herald up` process (API and delivery worker
together, the way a single-box install runs) against a provider that costs
nothing (HERALD_EMAIL_PROVIDERS=fault, HERALD_FAULT_LATENCY_MS=0), so the
figure is Herald's own: accept and commit, wake the worker, claim, send,
record. The HTTP answer latency (due until 201) is reported too.

How: `herald up` starts on a fresh store (SQLite file in a temporary directory,
or with ``--store postgres`` a throwaway PostgreSQL database, see
``_stores.py``). With two CPUs and taskset available it is pinned to the first
and this process, the load generator, to the second (os.sched_setaffinity);
PostgreSQL's own processes are not pinned. The generator is open loop at a
fixed rate (see ``_load.py``): request ``i`` is due ``i / rate`` seconds after
the start and is sent then, on a keep-alive connection from a pool that opens
another whenever all are busy, whatever the earlier answers are doing; each
request is a distinct realistic EMAIL notification (``sample_email(i)``). For
every request the due time (time.time clock), the status and the returned id
are kept. The first ``--warmup`` seconds of requests are sent and checked but
left out of the figures. Once the load is over the store is polled until
nothing is left to deliver; then ``sent_at`` is read for every id and the
latency is ``sent_at`` minus the due time. ``sent_at`` is taken by the worker
when the provider accepts the message; the commit that records it follows
within milliseconds.

Figures: POST->SENT p50/p95/p99/max, HTTP p50/p99, the rate achieved (the
measured requests answered 201, divided by the time from the first one's send
to the last answer: below the asked rate when the server cannot keep up), how
far behind schedule the generator fell, answers and errors, the share of one
core herald used while the load ran (near 100 %: it was saturated, and the
latencies are mostly queueing), herald's peak RSS.

Checks: no request failed or answered other than 201, and every id answered
201 is SENT with exactly one audit row saying SENT.
"""

from __future__ import annotations

import os
import time

import orjson

from _common import (
    choose_pinning,
    cpu_seconds,
    free_port,
    herald_env,
    sample_email,
    start_herald,
    stop_all,
    temp_dir,
    wait_healthy,
)
from _load import (
    ConnectionPool,
    Shot,
    deliveries,
    fmt_ms,
    open_loop,
    percentiles,
    run_async,
    wait_delivered,
)
from _report import Options, exit_with, finish, fmt_int, fmt_mib, prepare
from _stores import database

NAME = "latency"
PATH = "/api/notifications"
#: Connections opened before the run; the pool opens more if ever all are busy.
WARM_CONNECTIONS = 16
DELIVERY_TIMEOUT = 120.0


async def generate(port: int, rate: float, count: int, max_connections: int) -> list[Shot]:
    bodies = [orjson.dumps(sample_email(n)) for n in range(count)]
    pool = ConnectionPool("127.0.0.1", port, max_connections)
    try:
        await pool.warm(WARM_CONNECTIONS)
        shots = await open_loop(pool, rate, "POST", PATH, bodies)
    finally:
        pool.close()
    if pool.waited:
        print(f"warning: {pool.waited:,} requests waited for a connection (limit {pool.limit})")
    print(f"  {pool.opened} connections opened")
    return shots


def parse_args() -> Options:
    options = Options(__doc__)
    options.add_argument(
        "--rate", type=float, default=833.0, help="requests per second (default: %(default)s)"
    )
    options.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds (default: %(default)s)"
    )
    options.add_argument(
        "--warmup",
        type=float,
        default=3.0,
        help="seconds of requests before the measured ones, left out of the figures "
        "(default: %(default)s)",
    )
    options.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="the most connections the generator opens (default: %(default)s)",
    )
    options.no_pin()
    options.store()
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.rate <= 0 or args.warmup < 0 or args.max_connections < 1:
        options.error("--rate and --max-connections must be positive, --warmup not negative")
    if args.duration * args.rate < 2:
        options.error("--duration is too short for two requests at --rate")
    prepare()
    pinning = choose_pinning(not args.no_pin)
    warm_count = round(args.warmup * args.rate)
    count = warm_count + round(args.duration * args.rate)
    print(
        f"latency: herald up on {args.store}, fault provider (0 ms), open loop at "
        f"{args.rate:g} requests/s for {args.warmup:g}s + {args.duration:g}s "
        f"({count:,} requests)"
    )
    print(f"pinning: {pinning.description}")

    with temp_dir() as work, database(args.store, work) as db:
        port = free_port()
        env = herald_env(
            db.url, port=port, email_providers="fault", fault_latency_ms=0, fault_failure_rate=0
        )
        herald = start_herald("up", env, work, pinning.server_cpu)
        try:
            boot = wait_healthy(herald, port)
            print(f"herald up (pid {herald.pid}) healthy after {boot:.2f}s; sending ...")
            if pinning.client_cpu is not None:
                os.sched_setaffinity(0, {pinning.client_cpu})
            cpu_before, wall_before = cpu_seconds(herald.pid), time.monotonic()
            shots = run_async(generate(port, args.rate, count, args.max_connections))
            cpu_after, wall_after = cpu_seconds(herald.pid), time.monotonic()
            herald.check_running()
            waited = wait_delivered(db, [herald], DELIVERY_TIMEOUT)
            print(f"  all delivered {waited:.1f}s after the last answer")
            peak_rss = herald.peak_rss_kib()
        finally:
            stop_all([herald])
        stored = deliveries(db)

    accepted = {shot.index: shot.notification_id() for shot in shots if shot.status == 201}
    failed = [shot for shot in shots if shot.status != 201]
    found = [stored.get(i) if i is not None else None for i in accepted.values()]
    unsent = [d for d in found if d is None or d.status != "SENT"]
    not_once = [d for d in found if d is not None and d.sent_audits != 1]
    for shot in failed[:5]:
        print(f"  request {shot.index}: {shot.error or f'HTTP {shot.status}'}")

    measured = [shot for shot in shots if shot.index >= warm_count]
    e2e_ms: list[float] = []
    http_ms: list[float] = []
    last_answer = 0.0
    for shot in measured:
        notification = accepted.get(shot.index)
        if notification is None or shot.seconds is None:
            continue
        http_ms.append(shot.seconds * 1000)
        last_answer = max(last_answer, shot.due + shot.seconds)
        delivery = stored.get(notification)
        if delivery is not None and delivery.sent_at is not None:
            e2e_ms.append((delivery.sent_at - shot.due) * 1000)
    # Answers per second: an overloaded server answers fewer than were sent, and later.
    window = last_answer - (measured[0].due + measured[0].lag)
    rate_achieved = len(http_ms) / window if http_ms and window > 0 else None
    busy = (
        (cpu_after - cpu_before) / (wall_after - wall_before)
        if cpu_before is not None and cpu_after is not None
        else None
    )
    e2e = percentiles(e2e_ms, (50, 95, 99, 100))
    http = percentiles(http_ms, (50, 99))
    lags = percentiles([shot.lag * 1000 for shot in shots], (99, 100))
    ok = not failed and not unsent and not not_once and len(e2e_ms) == len(measured)
    failures = [] if ok else [
        f"{len(failed)} requests failed, {len(unsent)} accepted not SENT, "
        f"{len(not_once)} without exactly one SENT audit row"
    ]  # fmt: skip

    figures = {
        "store": args.store,
        "pinning": pinning.description,
        "rate asked / achieved": f"{args.rate:,.0f} / "
        + ("n/a" if rate_achieved is None else f"{rate_achieved:,.1f}")
        + " requests/s",
        "POST->SENT p50": fmt_ms(e2e[50]),
        "POST->SENT p95": fmt_ms(e2e[95]),
        "POST->SENT p99": fmt_ms(e2e[99]),
        "POST->SENT max": fmt_ms(e2e[100]),
        "HTTP answer p50 / p99": f"{fmt_ms(http[50])} / {fmt_ms(http[99])}",
        "generator behind schedule": f"p99 {fmt_ms(lags[99])}, max {fmt_ms(lags[100])}",
        "requests (measured)": f"{fmt_int(len(shots))} ({fmt_int(len(measured))})",
        "answered 201": fmt_int(len(accepted)),
        "errors": fmt_int(len(failed)),
        "SENT exactly once": f"{fmt_int(len(accepted) - len(unsent) - len(not_once))} "
        f"of {fmt_int(len(accepted))}",
        "herald CPU during the load": "n/a" if busy is None else f"{busy:.0%} of one core",
        "herald peak RSS": fmt_mib(peak_rss),
    }
    metrics: dict[str, object] = {
        "e2e_p50_ms": e2e[50],
        "e2e_p95_ms": e2e[95],
        "e2e_p99_ms": e2e[99],
        "e2e_max_ms": e2e[100],
        "http_p50_ms": http[50],
        "http_p99_ms": http[99],
        "rate_achieved": rate_achieved,
        "peak_rss_kib": peak_rss,
        "requests": len(shots),
        "measured": len(measured),
        "answered_201": len(accepted),
        "errors": len(failed),
        "sent_exactly_once": len(accepted) - len(unsent) - len(not_once),
        "lag_max_ms": lags[100],
        "herald_cpu_busy": busy,
    }
    params = {
        "rate": args.rate,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "pinning": pinning.description,
        "store": args.store,
    }
    title = "latency (herald up, POST -> SENT, open loop)"
    return finish(args, NAME, title, figures, metrics, params, failures)


if __name__ == "__main__":
    exit_with(main)

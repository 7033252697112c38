"""Backlog: CRITICAL latency behind 100,000 LOW, and memory at a 100,000 backlog.

What it measures: how long a CRITICAL notification takes from its POST to SENT
while a `herald worker` is busy draining a backlog of LOW ones (the worker
claims in priority order and keeps reserved slots for HIGH and CRITICAL, so
they should not wait behind the backlog), and the peak RSS of the `herald api`
and `herald worker` processes at such a backlog.

How: Herald runs as each store is deployed (``--layout``): on SQLite one
`herald up` process (API and delivery share the file's one writer thread; as
two processes they would take turns at SQLite's write lock, and the API's
answers wait behind the worker's transactions), on PostgreSQL `herald api` and
`herald worker` as two processes. It starts on a fresh store (SQLite file in a
temporary directory, or a throwaway PostgreSQL database, see ``_stores.py``),
with HERALD_EMAIL_PROVIDERS=fault and HERALD_FAULT_LATENCY_MS=0. N (default
100,000) LOW-priority EMAIL notifications are POSTed through
/api/notifications/bulk, 1,000 per request, by --clients connections at once,
so the backlog is real and came in through the API (the rate is reported, for
information). `herald up` holds the email queue paused meanwhile (POST
/api/queue/email/pause, then resume); in the split layout `herald worker`
starts only now, as a second process. As soon as the first SENT row appears, CRITICAL
notifications are POSTed one at a time to /api/notifications, open loop at
--critical-rate per second (see ``_load.py``: each is due at a fixed time and
sent then, whatever the earlier answers are doing), until --criticals have
been sent or no LOW row is left queued (a second read-only connection checks
every 0.1 s). Nothing is pinned: the two Herald processes, PostgreSQL and this
one share the machine's CPUs as a real install would.

Once everything is delivered the peak RSS (VmHWM) of each process is read
and they are stopped. The store then gives each CRITICAL's ``sent_at`` (taken
by the worker when the provider accepts the message) and, from the time a claim
stamps on its row (``claimed_at``), the time each LOW row left the queue.
A CRITICAL counts as sent behind the backlog when LOW rows were still queued
at its due time; only those are in the figures: latency = sent_at - due time,
p50/p95/p99/max, split at the CRITICAL's claim (its ``claimed_at``) into time
waiting to be claimed and time inside the worker. Also reported: the LOW rows
still queued when the last counted CRITICAL was SENT (the proof that it
overtook them), and the LOW delivery rate (first to last SENT).

Checks: every bulk request answered 201 with all items accepted, every
CRITICAL answered 201, all N + criticals notifications are SENT with exactly
one audit row saying SENT, and every CRITICAL asked for was sent behind the
backlog (if the backlog drains first, raise --critical-rate).
"""

from __future__ import annotations

import asyncio
import bisect
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from _common import (
    BenchError,
    Service,
    free_port,
    herald_env,
    http_json,
    sample_email,
    start_herald,
    stop_all,
    temp_dir,
    wait_healthy,
)
from _load import (
    REQUEST_TIMEOUT,
    Connection,
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
from _stores import Database, database

NAME = "backlog"
PATH = "/api/notifications"
BULK_PATH = "/api/notifications/bulk"
QUEUE_PATH = "/api/queue/email/{action}"  # `herald up` holds the backlog paused while it loads
BULK_SIZE = 1000  # the most the bulk endpoint takes in one request
FIRST_SENT_POLL = 0.01
WATCH_INTERVAL = 0.1
DELIVERY_TIMEOUT = 300.0
LOW, CRITICAL = 0, 3  # herald.models.Priority, as stored
ANY_SENT_QUERY = "SELECT EXISTS (SELECT 1 FROM notifications WHERE status = 'SENT')"
# The worker's partial index on ready rows answers this at once.
LOW_QUEUED_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM notifications"
    f" WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND priority = {LOW})"
)
# When each row of a priority was claimed, i.e. left the queue (the time a claim stamps
# on the row; one claim each, since the provider never fails).
CLAIMS_QUERY = (
    "SELECT id, claimed_at FROM notifications"
    " WHERE claimed_at IS NOT NULL AND priority = {priority}"
)


def notification(n: int, priority: str) -> dict[str, Any]:
    return {**sample_email(n), "priority": priority}


async def load_backlog(port: int, count: int, clients: int) -> float:
    """POST ``count`` LOW notifications in bulk requests; returns the seconds it took."""
    chunks = [range(start, min(count, start + BULK_SIZE)) for start in range(0, count, BULK_SIZE)]
    requests = [
        (orjson.dumps({"notifications": [notification(n, "LOW") for n in chunk]}), len(chunk))
        for chunk in chunks
    ]
    work = iter(requests)

    async def client() -> None:
        conn = await Connection.open("127.0.0.1", port)
        try:
            for body, size in work:  # shared: each request goes to one client
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, answer = await conn.request("POST", BULK_PATH, body)
                accepted = orjson.loads(answer).get("data", {}).get("accepted")
                if status != 201 or accepted != size:
                    raise BenchError(f"bulk request answered {status}: {answer[:300]!r}")
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started


def wait_first_sent(db: Database, worker: Service, timeout: float = 60.0) -> float:
    started = time.monotonic()
    while not bool(db.scalar(ANY_SENT_QUERY)):
        worker.check_running()
        if time.monotonic() - started > timeout:
            raise BenchError(f"nothing SENT {timeout:g}s after the worker started")
        time.sleep(FIRST_SENT_POLL)
    return time.monotonic() - started


async def send_criticals(
    port: int, rate: float, count: int, first: int, watch: Database
) -> list[Shot]:
    """POST up to ``count`` CRITICAL notifications open loop, while LOW rows are queued.

    ``watch`` is a connection of its own, used only from one thread of its own:
    a SQLite connection may not change threads and PostgreSQL's runs its own loop.
    """
    bodies = [orjson.dumps(notification(first + k, "CRITICAL")) for k in range(count)]
    loop = asyncio.get_running_loop()
    low_queued = True

    async def watch_backlog() -> None:
        nonlocal low_queued
        while low_queued:
            await asyncio.sleep(WATCH_INTERVAL)
            low_queued = bool(await loop.run_in_executor(thread, watch.scalar, LOW_QUEUED_QUERY))

    pool = ConnectionPool("127.0.0.1", port, limit=256)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="backlog-watch") as thread:
        watcher = asyncio.create_task(watch_backlog())
        try:
            await pool.warm(2)
            shots = await open_loop(pool, rate, "POST", PATH, bodies, lambda: low_queued)
            if watcher.done() and watcher.exception() is not None:
                raise BenchError(f"watching the backlog failed: {watcher.exception()}")
            return shots
        finally:
            watcher.cancel()
            pool.close()
            await loop.run_in_executor(thread, watch.close)


LAYOUTS = ("up", "split")


def post_ok(port: int, path: str) -> None:
    status, body = http_json("POST", f"http://127.0.0.1:{port}{path}")
    if status != 200:
        raise BenchError(f"POST {path} answered {status}: {body}")


def parse_args() -> Options:
    options = Options(__doc__)
    options.count(100_000, "LOW notifications")
    options.add_argument(
        "--criticals",
        type=int,
        default=200,
        help="CRITICAL notifications to send behind the backlog (default: %(default)s)",
    )
    options.add_argument(
        "--critical-rate",
        type=float,
        default=100.0,
        help="CRITICAL notifications per second, open loop (default: %(default)s)",
    )
    options.add_argument(
        "--clients",
        type=int,
        default=4,
        help="concurrent bulk requests while loading the backlog (default: %(default)s)",
    )
    options.store()
    options.add_argument(
        "--layout",
        choices=LAYOUTS,
        default=None,
        help="'up': one `herald up` process; 'split': `herald api` and `herald worker` "
        "(default: up on sqlite, split on postgres, as each is deployed)",
    )
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.layout is None:
        args.layout = "up" if args.store == "sqlite" else "split"
    if min(args.count, args.criticals, args.clients) < 1 or args.critical_rate <= 0:
        options.error("--count, --criticals, --critical-rate and --clients must be positive")
    prepare()
    print(
        f"backlog: {args.count:,} LOW through the bulk API, then {args.criticals:,} CRITICAL at "
        f"{args.critical_rate:g}/s while they drain; {args.store}, layout {args.layout}, "
        "not pinned"
    )

    with temp_dir() as work, database(args.store, work) as db:
        port = free_port()
        env = herald_env(
            db.url, port=port, email_providers="fault", fault_latency_ms=0, fault_failure_rate=0
        )
        services: list[Service] = []
        try:
            api = start_herald("api" if args.layout == "split" else "up", env, work)
            services.append(api)
            boot = wait_healthy(api, port)
            print(f"{api.name} (pid {api.pid}) healthy after {boot:.2f}s; loading the backlog ...")
            if args.layout == "up":
                post_ok(port, QUEUE_PATH.format(action="pause"))
            load_seconds = run_async(load_backlog(port, args.count, args.clients))
            bulk_rate = args.count / load_seconds
            print(f"  {args.count:,} LOW accepted in {load_seconds:.2f}s ({bulk_rate:,.0f}/s)")

            if args.layout == "up":
                worker = api
                post_ok(port, QUEUE_PATH.format(action="resume"))
            else:
                worker = start_herald("worker", env, work)
                services.append(worker)
            first = wait_first_sent(db, worker)
            print(
                f"{worker.name} (pid {worker.pid}) delivering after {first:.2f}s; "
                "sending CRITICAL ..."
            )
            watch = Database(db.kind, db.url, db.path)
            shots = run_async(
                send_criticals(port, args.critical_rate, args.criticals, args.count, watch)
            )
            print(f"  {len(shots):,} CRITICAL sent; waiting for the backlog to drain ...")
            drained = wait_delivered(db, services, DELIVERY_TIMEOUT)
            print(f"  all delivered {drained:.1f}s later")
            api_rss, worker_rss = api.peak_rss_kib(), worker.peak_rss_kib()
            if args.layout == "up":
                worker_rss = None  # one process: its figure is api_rss
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            for service in services:
                print(f"{service.name} log:\n{service.log_tail()}", file=sys.stderr)
            return 1
        finally:
            stop_all(reversed(services))
        stored = deliveries(db)
        low_claims = sorted(at for _, at in db.rows(CLAIMS_QUERY.format(priority=LOW)))
        critical_claims = {
            str(id_): at for id_, at in db.rows(CLAIMS_QUERY.format(priority=CRITICAL))
        }

    accepted = {shot.index: shot.notification_id() for shot in shots if shot.status == 201}
    failed = [shot for shot in shots if shot.status != 201]
    for shot in failed[:5]:
        print(f"  CRITICAL {shot.index}: {shot.error or f'HTTP {shot.status}'}")
    last_low_claim = low_claims[-1] if low_claims else float("-inf")
    behind = [shot for shot in shots if shot.due < last_low_claim and shot.index in accepted]
    sent_at: list[float] = []
    latencies: list[float] = []
    to_claim: list[float] = []  # due -> claimed: waiting in the queue
    claim_to_sent: list[float] = []  # claimed -> provider accepted: inside the worker
    for shot in behind:
        id_ = accepted[shot.index] or ""
        found, claimed = stored.get(id_), critical_claims.get(id_)
        if found is not None and found.sent_at is not None:
            sent_at.append(found.sent_at)
            latencies.append((found.sent_at - shot.due) * 1000)
            if claimed is not None:
                to_claim.append((claimed - shot.due) * 1000)
                claim_to_sent.append((found.sent_at - claimed) * 1000)
    # Claimed after the last counted CRITICAL was SENT: still queued at that moment.
    low_left = len(low_claims) - bisect.bisect_right(low_claims, max(sent_at)) if sent_at else None
    critical = percentiles(latencies, (50, 95, 99, 100))
    http = percentiles([s.seconds * 1000 for s in behind if s.seconds is not None], (50, 99))
    waited = percentiles(to_claim, (50, 99))
    inside = percentiles(claim_to_sent, (50, 99))

    expected = args.count + len(accepted)
    once = sum(1 for d in stored.values() if d.status == "SENT" and d.sent_audits == 1)
    lows = sum(1 for d in stored.values() if d.priority == LOW)
    criticals_stored = sum(1 for d in stored.values() if d.priority == CRITICAL)
    all_behind = len(latencies) == args.criticals
    ok = (
        not failed
        and all_behind
        and len(stored) == expected
        and once == expected
        and lows == args.count
        and criticals_stored == len(accepted)
    )
    peak_rss = max((r for r in (api_rss, worker_rss) if r is not None), default=None)
    low_sent = sorted(d.sent_at for d in stored.values() if d.priority == LOW and d.sent_at)
    low_span = low_sent[-1] - low_sent[0] if len(low_sent) > 1 else 0.0

    figures = {
        "store": args.store,
        "layout": "herald up" if args.layout == "up" else "herald api + herald worker",
        "backlog loaded (bulk API)": f"{fmt_int(args.count)} LOW at {bulk_rate:,.0f}/s "
        f"({args.clients} clients)",
        "LOW delivered/s (first -> last SENT)": f"{len(low_sent) / low_span:,.0f}"
        if low_span > 0
        else "n/a",
        "CRITICAL sent behind the backlog": f"{fmt_int(len(latencies))} of "
        f"{fmt_int(args.criticals)} asked ({fmt_int(len(shots))} sent) at "
        f"{args.critical_rate:g}/s",
        "CRITICAL POST->SENT p50": fmt_ms(critical[50]),
        "CRITICAL POST->SENT p95": fmt_ms(critical[95]),
        "CRITICAL POST->SENT p99": fmt_ms(critical[99]),
        "CRITICAL POST->SENT max": fmt_ms(critical[100]),
        "CRITICAL HTTP p50 / p99": f"{fmt_ms(http[50])} / {fmt_ms(http[99])}",
        "CRITICAL POST->claimed p50 / p99": f"{fmt_ms(waited[50])} / {fmt_ms(waited[99])}",
        "CRITICAL claimed->SENT p50 / p99": f"{fmt_ms(inside[50])} / {fmt_ms(inside[99])}",
        "LOW queued at last CRITICAL SENT": "n/a" if low_left is None else fmt_int(low_left),
        "SENT exactly once": f"{fmt_int(once)} of {fmt_int(expected)}",
        **(
            {"herald up peak RSS": fmt_mib(api_rss)}
            if args.layout == "up"
            else {"api peak RSS": fmt_mib(api_rss), "worker peak RSS": fmt_mib(worker_rss)}
        ),
    }
    metrics: dict[str, object] = {
        "critical_p50_ms": critical[50],
        "critical_p95_ms": critical[95],
        "critical_p99_ms": critical[99],
        "critical_max_ms": critical[100],
        "api_peak_rss_kib": api_rss,
        "worker_peak_rss_kib": worker_rss,
        "peak_rss_kib": peak_rss,
        "low_left_at_last_critical": low_left,
        "bulk_notifications_per_s": bulk_rate,
        "criticals_behind_backlog": len(latencies),
        "critical_errors": len(failed),
        "critical_http_p50_ms": http[50],
        "critical_http_p99_ms": http[99],
        "critical_to_claim_p50_ms": waited[50],
        "critical_to_claim_p99_ms": waited[99],
        "critical_claim_to_sent_p50_ms": inside[50],
        "critical_claim_to_sent_p99_ms": inside[99],
        "low_delivered_per_s": len(low_sent) / low_span if low_span > 0 else None,
        "sent_exactly_once": once,
    }
    params = {
        "count": args.count,
        "criticals": args.criticals,
        "critical_rate": args.critical_rate,
        "clients": args.clients,
        "store": args.store,
        "layout": args.layout,
    }
    title = "backlog (CRITICAL behind LOW, " + (
        "one herald up process)" if args.layout == "up" else "herald api + herald worker)"
    )
    failures = [] if ok else [
        f"{len(failed)} CRITICAL requests failed; {len(latencies)} of "
        f"{args.criticals} CRITICAL sent behind the backlog; {once:,} of {expected:,} "
        "SENT exactly once"
    ]  # fmt: skip
    return finish(args, NAME, title, figures, metrics, params, failures)


if __name__ == "__main__":
    exit_with(main)

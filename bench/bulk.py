"""Durable bulk ingest: notifications/s through POST /api/notifications/bulk on `herald api`.

What it measures: how many notifications one `herald api` process accepts per
second when clients send them 1,000 to a request, every 201 given only after
the commit that holds the whole batch (SQLite: WAL, synchronous=FULL;
PostgreSQL: synchronous_commit = on).

How: `herald api` starts on a fresh store in a temporary directory and is
polled on GET /api/health until it is up. --clients asyncio clients in this
process each POST the same body of --size EMAIL notifications in a loop, first
for a 2 s warm-up, then for --duration measured seconds. With two CPUs and
taskset available, herald is pinned to the first and this process (the load
generator) to the second (--no-pin turns this off); the clients are closed-loop,
each waiting for its answer before sending the next request.

``--store postgres`` runs the same on a throwaway PostgreSQL database (see
``_stores.py``); the PostgreSQL server's own processes are not pinned.

Checks: every answer must be a 201 with all items accepted, and afterwards the
rows added to the store during the measured run are counted (while herald
still runs) and must be at least the number of notifications acknowledged.

Figures: notifications/s, requests/s, latency p50/p99, rows stored, herald's
CPU time (all threads, from /proc) per notification acknowledged, which moves
less than the rate when other work shares the CPU, and herald's peak RSS.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx

from _common import (
    BenchError,
    choose_pinning,
    cpu_seconds,
    credential_headers,
    free_port,
    herald_env,
    sample_email,
    start_herald,
    stop_all,
    temp_dir,
    wait_healthy,
)
from _report import Options, exit_with, finish, fmt_mib, prepare
from _stores import Database, database

NAME = "bulk"
PATH = "/api/notifications/bulk"
WARMUP_SECONDS = 2.0


async def load(
    base: str, body: bytes, size: int, clients: int, seconds: float
) -> tuple[int, int, list[float]]:
    """(requests answered 201, notifications acknowledged, latencies in ms)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    counts = [0, 0]
    headers = {"content-type": "application/json", **credential_headers()}

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = await http.post(PATH, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 201:
                raise BenchError(f"{PATH} answered {reply.status_code}: {reply.text[:300]}")
            data = reply.json()["data"]
            if data["accepted"] != size or data["rejected"]:
                raise BenchError(f"{PATH} accepted {data['accepted']} of {size} items")
            counts[0] += 1
            counts[1] += data["accepted"]

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return counts[0], counts[1], latencies


def count_rows(db: Database) -> int:
    return int(db.scalar("SELECT count(*) FROM notifications"))


def request_body(size: int) -> bytes:
    """``{"notifications": [...]}`` with ``size`` copies of the sample EMAIL."""
    item = json.dumps(sample_email(), separators=(",", ":"))
    return ('{"notifications":[' + ",".join([item] * size) + "]}").encode()


def main() -> int:
    options = Options(__doc__)
    options.add_argument("--size", type=int, default=1000, help="items per request (%(default)s)")
    options.add_argument("--clients", type=int, default=4, help="concurrent clients (%(default)s)")
    options.add_argument("--duration", type=float, default=10, help="seconds (%(default)s)")
    options.no_pin()
    options.store()
    args = options.parse()
    if not 1 <= args.size <= 1000 or args.clients < 1 or args.duration <= 0:
        options.error("--size must be 1..1000, --clients and --duration positive")
    prepare()
    pinning = choose_pinning(not args.no_pin)
    if pinning.client_cpu is not None:
        os.sched_setaffinity(0, {pinning.client_cpu})
    body = request_body(args.size)
    with temp_dir() as work, database(args.store, work) as db:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        herald = start_herald("api", herald_env(db.url, port=port), work, pinning.server_cpu)
        print(
            f"bulk: herald api (pid {herald.pid}) on {args.store}, {args.clients} clients "
            f"x {args.size} items; {pinning.description}"
        )
        try:
            wait_healthy(herald, port)
            asyncio.run(load(base, body, args.size, args.clients, WARMUP_SECONDS))
            before = count_rows(db)
            cpu_before = cpu_seconds(herald.pid)
            started = time.perf_counter()
            requests, acknowledged, latencies = asyncio.run(
                load(base, body, args.size, args.clients, args.duration)
            )
            elapsed = time.perf_counter() - started
            cpu_after = cpu_seconds(herald.pid)
            herald.check_running()
            stored = count_rows(db) - before
            peak = herald.peak_rss_kib()
        finally:
            stop_all([herald])
    latencies.sort()
    rate = acknowledged / elapsed
    cpu_us = None
    if cpu_before is not None and cpu_after is not None:
        cpu_us = round((cpu_after - cpu_before) / acknowledged * 1e6, 2)
    ok = stored >= acknowledged and requests > 0
    figures = {
        "store": args.store,
        "pinning": pinning.description,
        "notifications/s": f"{rate:,.0f}",
        "requests/s": f"{requests / elapsed:,.1f} of {args.size} items",
        "latency p50": f"{latencies[len(latencies) // 2]:.1f} ms",
        "latency p99": f"{latencies[int(len(latencies) * 0.99)]:.1f} ms",
        "acknowledged": f"{acknowledged:,}",
        "rows stored": f"{stored:,} (>= acknowledged: {'OK' if ok else 'LOST ROWS'})",
        "herald CPU": "n/a" if cpu_us is None else f"{cpu_us:.1f} us per notification",
        "herald peak RSS": fmt_mib(peak),
    }
    metrics = {"notifications_per_s": round(rate, 1), "acknowledged": acknowledged,
               "stored": stored, "herald_cpu_us_per_notification": cpu_us,
               "peak_rss_kib": peak}  # fmt: skip
    params = {"size": args.size, "clients": args.clients, "duration_s": args.duration,
              "pinning": pinning.description, "store": args.store}  # fmt: skip
    title = f"bulk ingest (durable, {args.size:,} per request)"
    failed = [] if ok else [f"{stored:,} rows stored for {acknowledged:,} acknowledged"]
    return finish(args, NAME, title, figures, metrics, params, failed)


if __name__ == "__main__":
    exit_with(main)

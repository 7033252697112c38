"""Durable bulk ingest: notifications/s through POST /api/notifications/bulk on `herald api`.

What it measures: how many notifications one `herald api` process accepts per
second when clients send them 1,000 to a request, every 201 given only after
the commit that holds the whole batch (SQLite, WAL, synchronous=FULL).

How: `herald api` starts on a fresh SQLite file (pinned to CPU 0 when taskset
and two CPUs are there); --clients asyncio clients in this process (pinned to
CPU 1) each POST the same body of --size EMAIL notifications in a loop for
--duration seconds after a short warm-up. Every answer must be a 201 with
all items accepted. Afterwards the rows in the file are counted and must be at
least the number of notifications acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import httpx

from _common import (
    BenchError,
    add_reporting_args,
    choose_pinning,
    exit_on_sigterm,
    free_port,
    herald_env,
    line_buffered,
    report,
    sample_email,
    scalar,
    sqlite_readonly,
    start_herald,
    temp_dir,
    wait_healthy,
)

NAME = "bulk"
PATH = "/api/notifications/bulk"


async def load(
    base: str, body: bytes, clients: int, seconds: float
) -> tuple[int, int, list[float]]:
    """(requests answered 201, notifications acknowledged, latencies in ms)."""
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    counts = [0, 0]
    headers = {"content-type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            reply = await http.post(PATH, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 201:
                raise BenchError(f"{PATH} answered {reply.status_code}: {reply.text[:300]}")
            counts[0] += 1
            counts[1] += reply.json()["data"]["accepted"]

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return counts[0], counts[1], latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=1000, help="items per request (%(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (%(default)s)")
    parser.add_argument("--duration", type=float, default=10, help="seconds (%(default)s)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    add_reporting_args(parser)
    args = parser.parse_args()
    line_buffered()
    exit_on_sigterm()
    pinning = choose_pinning(not args.no_pin)
    if pinning.client_cpu is not None:
        os.sched_setaffinity(0, {pinning.client_cpu})
    body = ('{"notifications":[' + ",".join([_item()] * args.size) + "]}").encode()
    with temp_dir() as work:
        database = work / "herald.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        herald = start_herald("api", herald_env(database, port=port), work, pinning.server_cpu)
        try:
            wait_healthy(herald, port)
            asyncio.run(load(base, body, args.clients, 2.0))  # warm-up
            with sqlite_readonly(database) as conn:
                before = int(scalar(conn, "SELECT count(*) FROM notifications"))
            started = time.perf_counter()
            requests, acknowledged, latencies = asyncio.run(
                load(base, body, args.clients, args.duration)
            )
            elapsed = time.perf_counter() - started
            with sqlite_readonly(database) as conn:
                stored = int(scalar(conn, "SELECT count(*) FROM notifications")) - before
            peak = herald.peak_rss_kib()
        finally:
            herald.stop()
    latencies.sort()
    rate = acknowledged / elapsed
    ok = stored >= acknowledged and requests > 0
    figures = {
        "pinning": pinning.description,
        "notifications/s": f"{rate:,.0f}",
        "requests/s": f"{requests / elapsed:,.1f} of {args.size} items",
        "latency p50": f"{latencies[len(latencies) // 2]:.1f} ms",
        "latency p99": f"{latencies[int(len(latencies) * 0.99)]:.1f} ms",
        "acknowledged": f"{acknowledged:,}",
        "rows stored": f"{stored:,} (>= acknowledged: {'OK' if ok else 'LOST ROWS'})",
        "herald peak RSS": f"{(peak or 0) / 1024:.1f} MiB",
    }
    metrics = {"notifications_per_s": round(rate, 1), "acknowledged": acknowledged,
               "stored": stored, "peak_rss_kib": peak}  # fmt: skip
    params = {"size": args.size, "clients": args.clients, "duration_s": args.duration}
    report(args, NAME, "bulk ingest (durable, 1,000 per request)", figures, metrics, params, ok)
    return 0 if ok else 1


def _item() -> str:
    import json

    return json.dumps(sample_email(), separators=(",", ":"))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)

"""Peers: Celery, Huey and PgQueuer doing the work of Herald's drain benchmark.

What it measures: how fast one consumer process of a general task queue
delivers N (default 100,000) EMAIL notifications, the same ``sample_email``
payloads as bench/drain.py, to a sink that costs nothing (``peers/sink.py``,
the counterpart of Herald's fault provider at 0 ms), each job's status kept
in the queue's own durable status record; and, separately, how many
``POST /api/notifications`` per second a bare ASGI endpoint in front of the
queue answers, validating the body with pydantic and enqueuing one job each.

The peers and how each is configured (their modules say it in full):
  * celery: Celery 5, Redis broker and result backend (``--redis-url``,
    database 7 by default, flushed before and after), one worker process
    ``--pool threads --concurrency 8``, acks late, prefetch multiplier 32;
    the result backend's task meta is the status record;
  * huey: SqliteHuey on a file in a temporary directory, ``fsync=True``
    (synchronous=FULL), one ``huey_consumer`` with 4 worker threads; the
    stored result is the status record;
  * pgqueuer: PgQueuer on a throwaway PostgreSQL database
    (``herald_bench_peer_<hex>``, dropped WITH (FORCE) afterwards), schema by
    ``pgq install``, one consumer claiming 100 jobs at a time; its
    ``pgqueuer_log`` row with status ``successful`` is the status record.
They live in their own virtualenv, ``.venv-peers`` (``make peers-env``, run
by this script when it is missing), never in Herald's; this driver runs with
Herald's interpreter and talks to them only through subprocesses
(``peers/harness.py``).

How: the jobs are enqueued first with the peer's own client (in batches of
1,000 where the library has a batch call: PgQueuer; one at a time over one
connection otherwise), timed on their own as the enqueue rate. Then the
consumer is started (not pinned, as in drain.py) and a watcher polls the
peer's queue every 0.2 s until no job is left. Two rates:
  * wall: N / (consumer start until the poll that sees nothing left);
  * active: N / (first to last completion), from the status records' own
    times (``sent_at`` in the stored result for Celery and Huey, the log
    row's ``created`` for PgQueuer).
``--timeout`` (default 300 s) bounds enqueue plus drain; a run that overruns
it is stopped and reported with the rate on what was done and ok=False.
Checks: exactly N status records, all successful (status SENT). The
consumer's peak RSS (VmHWM) is read just before it is stopped with SIGTERM.

Ingest (``--no-ingest`` skips it): the peer's endpoint (``asgi`` in its
module, built by ``peers/endpoint.py``) is served by uvicorn with
``--loop uvloop --http httptools``, as Herald is, with no consumer running,
and loaded with bench/ingest.py's wrk runner: ``wrk -t1 -c64`` for 10 s after
a 3 s warm-up, the server pinned to the first CPU and wrk to the second
(``--no-pin`` turns this off). Check: the queue grew by at least the number
of 2xx answers.

Run it with Herald's interpreter: ``python bench/peers.py --peer celery``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BENCH_DIR,
    ROOT,
    BenchError,
    Service,
    choose_pinning,
    free_port,
    start_service,
    stop_all,
    taskset_prefix,
    temp_dir,
    wait_healthy,
)
from _report import Options, exit_with, finish, fmt_int, fmt_mib, prepare
from _stores import ADMIN_URL, admin
from ingest import PATH, probe, run_wrk, write_lua

PEERS = ("celery", "huey", "pgqueuer")
PEERS_DIR = BENCH_DIR / "peers"
PEER_VENV = ROOT / ".venv-peers"
PEER_BIN = PEER_VENV / "bin"
HARNESS = PEERS_DIR / "harness.py"
RESULT_PREFIX = "PEER-RESULT "
POLL_INTERVAL = 0.2
HARNESS_TIMEOUT = 600.0  # one reset, count or inspection; enqueueing has the run's deadline
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
# Worker threads in the one consumer process (PgQueuer runs its jobs on the event loop).
DEFAULT_THREADS = {"celery": 8, "huey": 4}


def ensure_peer_env() -> None:
    """`make peers-env`: creates .venv-peers if missing, reinstalls it if the lock changed."""
    if not (PEER_VENV / ".installed").exists():
        print("creating .venv-peers (make peers-env) ...")
    subprocess.run(
        ["make", "--no-print-directory", "peers-env"],
        cwd=ROOT,
        check=True,
        stdin=subprocess.DEVNULL,
    )


def harness(
    peer: str, env: dict[str, str], work: Path, *args: str, timeout: float = HARNESS_TIMEOUT
) -> dict[str, Any]:
    """Run one harness command in the peers' virtualenv; its ``PEER-RESULT`` JSON."""
    command = [str(PEER_BIN / "python"), str(HARNESS), peer, *args]
    try:
        done = subprocess.run(
            command,
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"harness {peer} {args[0]} did not finish within {timeout:.0f}s") from exc
    result = read_result(done.stdout)
    if done.returncode != 0 or result is None:
        raise BenchError(f"harness {peer} {args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return result


def read_result(output: str) -> dict[str, Any] | None:
    lines = [line for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(lines[-1][len(RESULT_PREFIX) :]) if lines else None


@contextlib.contextmanager
def peer_queue(peer: str, work: Path, args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The environment the peer's processes share, with an empty queue behind it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEER_")}
    env["PYTHONPATH"] = str(PEERS_DIR)
    env["PEER_PG_BATCH_SIZE"] = str(args.batch_size)
    if peer == "huey":
        env["PEER_HUEY_FILE"] = str(work / "huey.db")
        yield env
        return
    if peer == "celery":
        env["PEER_REDIS_URL"] = args.redis_url
        try:
            yield env
        finally:
            harness(peer, env, work, "reset")  # FLUSHDB of that Redis database only
        return
    name = f"herald_bench_peer_{secrets.token_hex(6)}"
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    env["PEER_PG_DSN"] = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    try:
        subprocess.run(
            [str(PEER_BIN / "pgq"), "--pg-dsn", env["PEER_PG_DSN"], "install"],
            env=env,
            cwd=work,
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
        )
        yield env
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def consumer_command(peer: str, threads: int) -> list[str]:
    """The consumer's command line; PgQueuer's batch size travels in the environment."""
    if peer == "celery":
        return [
            str(PEER_BIN / "celery"),
            "-A",
            "celery_peer:queue_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(threads),
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ]
    if peer == "huey":
        return [
            str(PEER_BIN / "huey_consumer"),
            "huey_peer.huey",
            "-k",
            "thread",
            "-w",
            str(threads),
            "-d",
            "0.01",
            "-m",
            "1",
            "-n",
            "-C",
            "-q",
        ]
    return [str(PEER_BIN / "python"), str(PEERS_DIR / "pgqueuer_peer.py")]


@dataclass(frozen=True)
class Drain:
    enqueued: int
    enqueue_s: float
    drain_s: float  # consumer start until nothing was left, or until the watcher gave up
    complete: bool  # every job enqueued and finished before the deadline
    peak_rss_kib: int | None
    recorded: int
    successes: int
    first: float | None
    last: float | None


def drain(
    peer: str,
    env: dict[str, str],
    work: Path,
    count: int,
    threads: int,
    deadline: float,
    window: float | None,
) -> Drain:
    """Enqueue ``count`` jobs, run the consumer until none is left, read the records.

    Enqueueing and draining share the time up to ``deadline``: the enqueuer
    stops between batches when it passes, and the watcher gives up then. With
    a ``window``, enqueueing and draining get at most that many seconds each.
    """
    harness(peer, env, work, "reset")
    budget = max(0.0, deadline - time.monotonic())
    if window is not None:
        budget = min(budget, window)
    enqueued = harness(
        peer, env, work, "enqueue", str(count), "--timeout", f"{budget:.1f}", timeout=budget + 60
    )
    queued, enqueue_s = int(enqueued["enqueued"]), float(enqueued["seconds"])
    print(f"enqueued {queued:,} in {enqueue_s:.2f}s ({queued / enqueue_s:,.0f}/s)")

    started, started_at = time.monotonic(), time.time()
    if window is not None:
        deadline = min(deadline, started + window)
    consumer = start_service(
        f"{peer} consumer", consumer_command(peer, threads), env, work, work / "consumer.log"
    )
    watcher: Service | None = None
    try:
        left = max(0.0, deadline - time.monotonic())
        watch = [str(PEER_BIN / "python"), str(HARNESS), peer, "watch", str(queued)]
        watcher = start_service(
            "watcher", [*watch, "--timeout", f"{left:.1f}"], env, work, work / "watch.log"
        )
        print(f"{peer} consumer (pid {consumer.pid}) started; polling every {POLL_INTERVAL}s")
        while watcher.running():
            consumer.check_running()
            if time.monotonic() > deadline + 60:
                raise BenchError("the watcher overran the deadline")
            time.sleep(POLL_INTERVAL / 4)
        output = watcher.log_path.read_text(errors="replace")
        print("\n".join(line for line in output.splitlines() if not line.startswith(RESULT_PREFIX)))
        watched = read_result(output)
        if watched is None:
            raise BenchError(f"the watcher gave no result\n{watcher.log_tail()}")
        drain_s = time.monotonic() - started
        peak_rss = consumer.peak_rss_kib()
    finally:
        if watcher is not None:
            watcher.stop()
        stop_all([consumer])
    if watched["done_at"] is not None:
        # The watcher's own clock: the moment it saw nothing left, not when we noticed it exit.
        drain_s = watched["done_at"] - started_at
    found = harness(peer, env, work, "inspect")
    return Drain(
        enqueued=queued,
        enqueue_s=enqueue_s,
        drain_s=drain_s,
        complete=queued == count and watched["done_at"] is not None,
        peak_rss_kib=peak_rss,
        recorded=int(found["recorded"]),
        successes=int(found["successes"]),
        first=found["first"],
        last=found["last"],
    )


@dataclass(frozen=True)
class Ingest:
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    ok_2xx: int
    non_2xx: int
    queued: int  # jobs the queue gained during the measured run
    peak_rss_kib: int | None


def ingest(
    peer: str, env: dict[str, str], work: Path, args: argparse.Namespace, wrk: str
) -> Ingest:
    """wrk against the peer's endpoint, as bench/ingest.py loads Herald's."""
    harness(peer, env, work, "reset")
    pinning = choose_pinning(not args.no_pin)
    print(f"ingest: {peer} endpoint under uvicorn; pinning: {pinning.description}")
    lua = work / "ingest.lua"
    write_lua(lua)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        *taskset_prefix(pinning.server_cpu),
        str(PEER_BIN / "python"),
        "-m",
        "uvicorn",
        f"{peer}_peer:asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    server = start_service(f"{peer} endpoint", command, env, work, work / "endpoint.log")
    try:
        boot = wait_healthy(server, port)
        print(f"{peer} endpoint (pid {server.pid}) healthy after {boot:.2f}s")
        probe(base)
        load = functools.partial(run_wrk, wrk, lua, base + PATH, 1, 64, pinning.client_cpu)
        warm = load(3)
        print(f"  warm-up: {warm.requests_per_s:,.0f} requests/s")
        time.sleep(0.5)
        before = int(harness(peer, env, work, "queued")["queued"])
        print(f"measuring for {args.duration}s ...")
        run = load(args.duration)
        server.check_running()
        after = int(harness(peer, env, work, "queued")["queued"])
        peak_rss = server.peak_rss_kib()
    finally:
        server.stop()
    return Ingest(
        requests_per_s=run.requests_per_s,
        p50_ms=run.latency_ms.get(50),
        p99_ms=run.latency_ms.get(99),
        ok_2xx=run.ok_2xx,
        non_2xx=run.non_2xx,
        queued=after - before,
        peak_rss_kib=peak_rss,
    )


def window_note(window: float | None, done: int, enqueued: int) -> str:
    if window is None:
        return " (TIMED OUT: rates are on what was done)"
    return f" (window of {window:g} s: {done:,} of the {enqueued:,} enqueued done; rates on those)"


def parse_args() -> Options:
    options = Options(__doc__)
    options.add_argument("--peer", choices=PEERS, required=True)
    options.count(100_000)
    options.add_argument(
        "--threads",
        type=int,
        default=None,
        help="consumer worker threads (default: celery 8, huey 4; not for pgqueuer)",
    )
    options.add_argument(
        "--batch-size",
        type=int,
        default=100,
        help="PgQueuer's jobs claimed per query (default: %(default)s)",
    )
    options.timeout(300.0, "stop enqueue + drain")
    options.add_argument(
        "--window",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give enqueueing and draining at most this long each, and take the rates on "
        "what was done (make bench: 40; default: no window, all N)",
    )
    options.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help="Celery's Redis database, flushed before and after (default: %(default)s)",
    )
    options.add_argument("--no-ingest", action="store_true", help="skip the endpoint's wrk run")
    options.add_argument(
        "-d", "--duration", type=int, default=10, help="wrk's measured seconds (default: 10)"
    )
    options.no_pin("do not pin the endpoint and wrk")
    options.wrk()
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.count < 1 or args.timeout <= 0 or args.duration < 1 or (args.window or 1) <= 0:
        options.error("--count, --timeout and --duration must be positive")
    if (args.threads is not None and args.threads < 1) or args.batch_size < 1:
        options.error("--threads and --batch-size must be positive")
    prepare()
    wrk = shutil.which(args.wrk)
    if wrk is None and not args.no_ingest:
        print(f"error: {args.wrk!r} not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    ensure_peer_env()
    threads = args.threads or DEFAULT_THREADS.get(args.peer, 0)
    consumer = (
        f"1 process, batch size {args.batch_size}, async jobs"
        if args.peer == "pgqueuer"
        else f"1 process, {threads} worker threads"
    )
    print(f"peer {args.peer}: {args.count:,} EMAIL notifications, consumer {consumer}, not pinned")

    measured: Ingest | None = None
    with temp_dir("herald-bench-peer-") as work, peer_queue(args.peer, work, args) as env:
        deadline = time.monotonic() + args.timeout
        drained = drain(args.peer, env, work, args.count, threads, deadline, args.window)
        if not args.no_ingest:
            assert wrk is not None
            measured = ingest(args.peer, env, work, args, wrk)

    done = drained.successes
    active = (drained.last or 0.0) - (drained.first or 0.0)
    wall = drained.drain_s
    if args.window is None:
        ok = drained.complete and drained.recorded == args.count and done == args.count
    else:  # a window: what was done must be right, not all of it done
        ok = 0 < done == drained.recorded <= drained.enqueued
    if measured is not None:
        ok = ok and 0 < measured.ok_2xx <= measured.queued
    enqueue_rate = drained.enqueued / drained.enqueue_s if drained.enqueue_s > 0 else None
    short = "" if drained.enqueued == args.count else f", only {drained.enqueued:,} of them"
    figures = {
        "notifications": fmt_int(args.count),
        "consumer": consumer,
        "enqueued/s": f"{enqueue_rate or 0:,.0f} ({drained.enqueue_s:.2f} s{short})",
        "wall (start -> all done)": f"{wall:.2f} s"
        + ("" if drained.complete else window_note(args.window, done, drained.enqueued)),
        "delivered/s (wall)": f"{done / wall:,.0f}" if wall > 0 else "n/a",
        "active (first -> last done)": f"{active:.2f} s",
        "delivered/s (active)": f"{done / active:,.0f}" if active > 0 else "n/a",
        "status records": f"{fmt_int(drained.recorded)} ({fmt_int(done)} successful)",
        "consumer peak RSS": fmt_mib(drained.peak_rss_kib),
    }
    metrics: dict[str, object] = {
        "count": args.count,
        "delivered_per_s": done / active if active > 0 else None,
        "delivered_per_s_wall": done / wall if wall > 0 else None,
        "enqueue_per_s": enqueue_rate,
        "ingest_req_per_s": None,
        "recorded": drained.recorded,
        "successes": done,
        "peak_rss_kib": drained.peak_rss_kib,
        "enqueued": drained.enqueued,
        "wall_s": wall,
        "active_s": active,
        "timed_out": not drained.complete,
    }
    if measured is not None:
        figures["ingest requests/s"] = f"{measured.requests_per_s:,.0f}"
        figures["ingest latency p50 / p99"] = f"{measured.p50_ms} ms / {measured.p99_ms} ms"
        figures["ingest 2xx / non-2xx"] = f"{measured.ok_2xx:,} / {measured.non_2xx:,}"
        figures["jobs enqueued by ingest"] = fmt_int(measured.queued)
        figures["endpoint peak RSS"] = fmt_mib(measured.peak_rss_kib)
        metrics.update(
            ingest_req_per_s=measured.requests_per_s,
            ingest_p50_ms=measured.p50_ms,
            ingest_p99_ms=measured.p99_ms,
            ingest_ok_2xx=measured.ok_2xx,
            ingest_queued=measured.queued,
            endpoint_peak_rss_kib=measured.peak_rss_kib,
        )
    params = {
        "peer": args.peer,
        "count": args.count,
        "threads": threads if args.peer != "pgqueuer" else None,
        "batch_size": args.batch_size if args.peer == "pgqueuer" else None,
        "timeout_s": args.timeout,
        "window_s": args.window,
        "ingest": not args.no_ingest,
    }
    title = f"peer {args.peer} (one consumer, zero-latency sink)"
    failures = [] if ok else [f"expected {args.count:,} successful status records"]
    return finish(args, f"peer-{args.peer}", title, figures, metrics, params, failures)


if __name__ == "__main__":
    exit_with(main)

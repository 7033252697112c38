"""Limits: the ceilings on this machine that every Herald figure is a fraction of.

What it measures, in four parts (``--only`` picks some):

* ``sqlite``: rows per second into SQLite in WAL mode with ``synchronous=FULL``
  (Herald's settings), 1,000 rows per transaction through ``executemany``, one
  commit (and so one fsync) each, until 200,000 rows (``--rows``) or 5 s of
  inserting; then single-row transactions for 3 s, which is the fsync ceiling a
  store without group commit would have per request.
* ``pg``: rows per second through asyncpg's ``copy_records_to_table`` into a
  throwaway PostgreSQL database (see ``_stores.py``), 1,000 rows per COPY, each
  COPY its own transaction (committed with the server's ``synchronous_commit``,
  which is printed), until 200,000 rows or 10 s.
* ``echo``: requests per second and latency of a bare ASGI callable that
  answers every POST with its own body (201, application/json): no framework,
  no parsing, the most one Python process can answer on this machine.
* ``validate``: the same, but each body goes through Herald's own ingest
  handler minus the store: Herald's ``NotificationIn`` model, Herald's error
  envelope (422) and Herald's ``accept`` building the 201 answer from the row a
  store would write. Durable ingest is judged against this figure.

How: both database parts write into Herald's own schema (every migration of
``herald.store.sql`` applied), notifications only (all Herald writes to create
one: its history is read from the row), rows made from ``sample_email()`` the way Herald's
stores make them (``records.fresh``: time-ordered ids, QUEUED). Rows are built
before each transaction's clock starts, so the rates are the database's alone.
Neither part is pinned; the benchmark process is the only client.

The two servers (``_limit_apps.py``) run as separate processes served the way
``herald api`` is (uvicorn, uvloop, httptools, no access log) and are loaded
exactly as ``ingest.py`` loads Herald, with its wrk runner and Lua script: a
3 s warm-up, then ``wrk --latency -t1 -c64 -d10s`` POSTing the same
``sample_email()`` JSON to /api/notifications, closed-loop. With two CPUs and
taskset available, the server is pinned to the first and wrk to the second
(``--no-pin`` turns this off).

Checks: each database part counts its table afterwards and must find every
row it committed; each server must answer a probe correctly (echo: its body
back; validate: 201 with the notification, and 422 for a body without a
recipient) and every answer wrk received must be 2xx. ``ok`` when every part
chosen ran and passed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from _common import (
    BENCH_DIR,
    BenchError,
    Pinning,
    choose_pinning,
    free_port,
    herald_env,
    http_json,
    sample_email,
    start_service,
    taskset_prefix,
    temp_dir,
    wait_healthy,
)
from _report import Options, exit_with, finish, prepare
from _seeded import new_notification
from _stores import database
from herald.store import records
from herald.store.sql import migrations, queries
from ingest import PATH, WrkRun, check_wrk_load, run_wrk, write_lua

NAME = "limits"
PARTS = ("sqlite", "pg", "echo", "validate")
APPS = BENCH_DIR / "_limit_apps.py"
BATCH = 1_000
SQLITE_SECONDS = 5.0
COMMIT_SECONDS = 3.0
PG_SECONDS = 10.0
# The apps open no store; the URL only keeps Herald's settings from looking for one.
NO_DATABASE = "sqlite:///:memory:"
# Herald's insert (queries.sql: insert_notification) names these, in this order.
COLUMNS = (
    "id", "tenant_id", "channel", "recipient", "subject", "body", "html", "metadata",
    "priority", "status", "queue", "due_at", "idempotency_key", "scheduled_at",
    "created_at", "updated_at", "callback_url",
)  # fmt: skip


@dataclass
class Part:
    """One part's figures and metrics, and whether its checks passed."""

    figures: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, object] = field(default_factory=dict)
    ok: bool = True


# -- rows ----------------------------------------------------------------------


def notification_rows(first: int, count: int) -> list[tuple[Any, ...]]:
    """``count`` rows as Herald's stores insert them, from ``sample_email(first)`` on."""
    now = time.time()
    rows = []
    for n in range(first, first + count):
        note = records.fresh(new_notification(n), now)
        rows.append((
            note.id, note.tenant_id, note.channel.value, note.recipient, note.subject, note.body,
            note.html, orjson.dumps(note.metadata).decode(), int(note.priority), note.status.value,
            note.queue, note.due_at, note.idempotency_key, note.scheduled_at, now, now,
            note.callback_url,
        ))  # fmt: skip
    return rows


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


# -- SQLite --------------------------------------------------------------------


def timed_transaction(conn: sqlite3.Connection, insert: str, rows: list[tuple[Any, ...]]) -> float:
    """Insert ``rows`` in one transaction and commit it; the seconds that took."""
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(insert, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - started


def sqlite_part(work: Path, rows_wanted: int) -> Part:
    conn = sqlite3.connect(work / "limits.db", isolation_level=None)
    try:
        # As Herald's writer connection (store/sqlite/__init__.py) sets them.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA cache_size = -65536")
        for migration in migrations("sqlite"):
            conn.executescript(migration.sql)
        insert = queries("sqlite")["insert_notification"]

        batched, batched_s = 0, 0.0
        while batched < rows_wanted and batched_s < SQLITE_SECONDS:
            rows = notification_rows(batched, min(BATCH, rows_wanted - batched))
            batched_s += timed_transaction(conn, insert, rows)
            batched += len(rows)
        print(f"  sqlite: {batched:,} rows in {batched_s:.2f}s, {BATCH:,} per transaction")

        commits, commits_s = 0, 0.0
        while commits_s < COMMIT_SECONDS:
            commits_s += timed_transaction(conn, insert, notification_rows(batched + commits, 1))
            commits += 1
        print(f"  sqlite: {commits:,} single-row commits in {commits_s:.2f}s")
        stored = conn.execute("SELECT count(*) FROM notifications").fetchone()[0]
    finally:
        conn.close()

    expected = batched + commits
    part = Part(ok=stored == expected)
    check = "" if part.ok else f" (MISMATCH: {stored:,} rows stored, {expected:,} committed)"
    part.figures = {
        f"SQLite batched inserts ({BATCH:,}/txn, synchronous=FULL)": (
            f"{rate(batched, batched_s):,.0f} rows/s ({batched:,} rows in {batched_s:.2f} s){check}"
        ),
        "SQLite 1-row commits (synchronous=FULL)": f"{rate(commits, commits_s):,.0f} commits/s",
    }
    part.metrics = {
        "sqlite_batched_rows_per_s": rate(batched, batched_s),
        "sqlite_batched_rows": batched,
        "sqlite_commits_per_s": rate(commits, commits_s),
        "sqlite_rows_stored": stored,
    }
    return part


# -- PostgreSQL ----------------------------------------------------------------


async def copy_rows(url: str, rows_wanted: int) -> tuple[int, float, int, str]:
    """COPY batches until ``rows_wanted``; (rows, seconds, rows counted, synchronous_commit)."""
    conn = await asyncpg.connect(url, timeout=10)
    try:
        for migration in migrations("postgres"):
            await conn.execute(migration.sql)
        synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
        copied, seconds = 0, 0.0
        while copied < rows_wanted and seconds < PG_SECONDS:
            rows = notification_rows(copied, min(BATCH, rows_wanted - copied))
            started = time.perf_counter()
            # Outside a transaction block, each COPY commits on its own.
            await conn.copy_records_to_table("notifications", records=rows, columns=COLUMNS)
            seconds += time.perf_counter() - started
            copied += len(rows)
        stored = await conn.fetchval("SELECT count(*) FROM notifications")
    finally:
        await conn.close()
    return copied, seconds, stored, synchronous_commit


def pg_part(work: Path, rows_wanted: int) -> Part:
    with database("postgres", work) as db:
        copied, seconds, stored, synchronous_commit = asyncio.run(copy_rows(db.url, rows_wanted))
    print(f"  pg: {copied:,} rows in {seconds:.2f}s, {BATCH:,} per COPY")
    part = Part(ok=stored == copied)
    check = "" if part.ok else f" (MISMATCH: {stored:,} rows stored, {copied:,} copied)"
    label = f"PostgreSQL COPY ({BATCH:,}/txn, synchronous_commit={synchronous_commit})"
    part.figures = {
        label: f"{rate(copied, seconds):,.0f} rows/s ({copied:,} rows in {seconds:.2f} s){check}"
    }
    part.metrics = {
        "pg_copy_rows_per_s": rate(copied, seconds),
        "pg_copy_rows": copied,
        "pg_rows_stored": stored,
        "pg_synchronous_commit": synchronous_commit,
    }
    return part


# -- the bare ASGI servers -----------------------------------------------------


def probe_echo(url: str) -> None:
    sample = sample_email()
    status, body = http_json("POST", url, sample)
    if status != 201 or body != sample:
        raise BenchError(f"echo answered {status} {body!r}, not 201 with the body sent")


def probe_validate(url: str) -> None:
    sample = sample_email()
    status, body = http_json("POST", url, sample)
    data = body.get("data") if isinstance(body, dict) else None
    if (
        status != 201
        or not isinstance(data, dict)
        or not data.get("id")
        or data.get("recipient") != sample["recipient"]
        or data.get("status") != "QUEUED"
    ):
        raise BenchError(f"validate answered {status} {body!r}, not 201 with the notification")
    status, body = http_json("POST", url, {**sample, "recipient": ""})
    if status != 422:
        raise BenchError(f"validate answered {status} {body!r} to an empty recipient, not 422")


def serve_and_load(
    app: str,
    probe: Callable[[str], None],
    args: argparse.Namespace,
    env: dict[str, str],
    pinning: Pinning,
    wrk: str,
    lua: Path,
    work: Path,
) -> WrkRun:
    """Start ``_limit_apps.py APP``, check it, load it with wrk; stop it again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    command = [
        *taskset_prefix(pinning.server_cpu),
        sys.executable,
        str(APPS),
        app,
        "--port",
        str(port),
    ]
    server = start_service(f"{app} app", command, env, work, work / f"{app}.log")
    try:
        boot = wait_healthy(server, port)
        print(f"  {app}: server (pid {server.pid}) healthy after {boot:.2f}s")
        probe(url)
        load = functools.partial(
            run_wrk, wrk, lua, url, args.threads, args.connections, pinning.client_cpu
        )
        if args.warmup:
            warm = load(args.warmup)
            print(f"  {app}: warm-up {warm.requests_per_s:,.0f} requests/s")
        run = load(args.duration)
        server.check_running()
        print(f"  {app}: {run.requests_per_s:,.0f} requests/s over {run.seconds:.1f}s")
        return run
    finally:
        code = server.stop()
        if not server.stopped_cleanly():
            print(f"warning: {app} app exited with code {code}\n{server.log_tail()}")


def http_part(app: str, label: str, run: WrkRun) -> Part:
    p50, p90, p99 = (run.latency_ms.get(p) for p in (50, 90, 99))
    sockets = sum(run.socket_errors.values())
    part = Part(ok=run.ok_2xx > 0 and run.non_2xx == 0)
    latency = "n/a" if p50 is None or p99 is None else f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"
    value = f"{run.requests_per_s:,.0f} req/s, {latency}"
    if run.non_2xx:
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(run.statuses.items()) if s >= 300)
        value += f" (NON-2xx: {statuses})"
    if sockets:
        value += f" ({sockets:,} socket errors)"
    part.figures = {label: value}
    part.metrics = {
        f"{app}_req_per_s": run.requests_per_s,
        f"{app}_p50_ms": p50,
        f"{app}_p90_ms": p90,
        f"{app}_p99_ms": p99,
        f"{app}_responses": run.requests,
        f"{app}_non_2xx": run.non_2xx,
        f"{app}_socket_errors": sockets,
    }
    return part


# -- main ----------------------------------------------------------------------


def parse_args() -> Options:
    options = Options(__doc__)
    options.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part; repeat for several (default: all)",
    )
    options.add_argument(
        "--rows",
        type=int,
        default=200_000,
        help="rows for the batched SQLite and COPY parts (default: %(default)s)",
    )
    options.wrk_load("measured wrk seconds")
    options.no_pin()
    options.wrk()
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.rows < 1 or args.duration < 1 or args.warmup < 0:
        options.error("--rows and --duration must be at least 1, --warmup not negative")
    check_wrk_load(options, args)
    args.only = [p for p in PARTS if p in (args.only or PARTS)]
    prepare()
    wrk = shutil.which(args.wrk)
    if wrk is None and {"echo", "validate"} & set(args.only):
        print(f"error: {args.wrk!r} not found (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    pinning = choose_pinning(not args.no_pin)
    print(f"limits: {', '.join(args.only)}")
    print(f"pinning (echo, validate): {pinning.description}")

    labels = {
        "echo": "bare ASGI echo (uvicorn, 1 process)",
        "validate": "bare ASGI + Herald's validation (no store)",
    }
    probes = {"echo": probe_echo, "validate": probe_validate}
    parts: dict[str, Part] = {}
    with temp_dir() as work:
        lua = work / "ingest.lua"
        write_lua(lua)
        env = herald_env(NO_DATABASE)
        for name in args.only:
            print(f"{name} ...")
            try:
                if name == "sqlite":
                    parts[name] = sqlite_part(work, args.rows)
                elif name == "pg":
                    parts[name] = pg_part(work, args.rows)
                else:
                    assert wrk is not None
                    run = serve_and_load(name, probes[name], args, env, pinning, wrk, lua, work)
                    parts[name] = http_part(name, labels[name], run)
            except (BenchError, OSError, sqlite3.Error, asyncpg.PostgresError) as exc:
                print(f"error: {name}: {exc}", file=sys.stderr)
                parts[name] = Part({name: f"FAILED: {exc}".splitlines()[0]}, ok=False)

    figures = {"pinning": pinning.description}
    metrics: dict[str, object] = {}
    for part in parts.values():
        figures.update(part.figures)
        metrics.update(part.metrics)
    params = {
        "parts": args.only,
        "rows": args.rows,
        "batch": BATCH,
        "threads": args.threads,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "pinning": pinning.description,
    }
    failed = ", ".join(name for name, part in parts.items() if not part.ok)
    failures = [failed] if failed else []
    return finish(args, NAME, "limits of this machine", figures, metrics, params, failures)


if __name__ == "__main__":
    exit_with(main)

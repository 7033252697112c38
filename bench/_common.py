"""Helpers shared by the benchmarks in this directory; nothing here measures anything.

Free ports, temporary directories, starting a Herald process with an environment
built from scratch and stopping it again (by its own pid only), CPU pinning with
``taskset``, a process's peak RSS and read-only SQLite access. Reporting and
the command line are in ``_report.py``.

Herald wants a credential on every route but ``GET /api/health``. Every Herald
a benchmark starts through ``herald_env`` takes ``ADMIN_KEY`` (a fresh random
secret for each benchmark process, never written anywhere) as its
``HERALD_ADMIN_KEY``, and every request the benchmarks send carries it as
``Authorization: Bearer`` unless told otherwise (``credential_headers``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
#: The stores a benchmark can run on (``_stores.py`` makes them).
STORES = ("sqlite", "postgres")


#: This process's admin key, given to every Herald it starts (HERALD_ADMIN_KEY). An
#: admin key spends no request budget, so it never throttles a benchmark.
ADMIN_KEY = "bench-admin-" + secrets.token_urlsafe(24)


class BenchError(RuntimeError):
    """A benchmark could not run or its result failed a check."""


def credential_headers(key: str | None = ADMIN_KEY) -> dict[str, str]:
    """``Authorization: Bearer KEY``, or nothing for ``None`` (no credential sent)."""
    return {} if key is None else {"Authorization": f"Bearer {key}"}


# -- process hygiene -----------------------------------------------------------


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop what we started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def line_buffered() -> None:
    """Flush every line, so output interleaves correctly under run_all.py."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)


@contextlib.contextmanager
def temp_dir(prefix: str = "herald-bench-") -> Iterator[Path]:
    """A fresh directory, removed with everything in it on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- CPU pinning ---------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    """Where the server and the load generator run (``None``: anywhere)."""

    server_cpu: int | None
    client_cpu: int | None
    description: str


def taskset_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` to put in front of a command, or nothing."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def choose_pinning(enabled: bool) -> Pinning:
    """Server on the first CPU we may use, client on the second, if taskset can."""
    if not enabled:
        return Pinning(None, None, "not pinned (--no-pin)")
    if shutil.which("taskset") is None:
        return Pinning(None, None, "not pinned (taskset not found)")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return Pinning(None, None, f"not pinned (only CPU {cpus} available)")
    server, client = cpus[0], cpus[1]
    return Pinning(server, client, f"taskset: herald on CPU {server}, client on CPU {client}")


# -- Herald processes ----------------------------------------------------------


def _settings_variables() -> set[str]:
    """Every environment variable Herald's Settings reads, upper-cased."""
    from pydantic import AliasChoices

    from herald.config import Settings

    names: set[str] = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
    return names


def herald_env(database: Path | str, **settings: object) -> dict[str, str]:
    """The caller's environment without any Herald setting, plus ``settings``.

    ``database`` is a SQLite file, or a database URL (``postgresql://…``).

    Keys are Herald setting names without the prefix (``fault_latency_ms=0``
    becomes ``HERALD_FAULT_LATENCY_MS=0``); ``None`` values are left out.
    The log level defaults to ``warning``, the admin key is ``ADMIN_KEY``, and
    load shedding is off (``HERALD_SHED_BACKLOG``).
    """
    drop = _settings_variables()
    env = {
        k: v for k, v in os.environ.items() if k.upper() not in drop and not k.startswith("HERALD_")
    }
    url = database if isinstance(database, str) else f"sqlite:///{database}"
    env["HERALD_DATABASE_URL"] = url
    env["HERALD_LOG_LEVEL"] = "warning"
    env["HERALD_ADMIN_KEY"] = ADMIN_KEY
    # The benchmarks pile up backlogs no deployment would (ingest without a worker,
    # 100,000 LOW before one CRITICAL): load shedding would turn them into cheap 503s.
    env["HERALD_SHED_BACKLOG"] = "1000000000"
    for key, value in settings.items():
        if value is not None:
            env[f"HERALD_{key.upper()}"] = str(value)
    return env


def herald_command(*args: str) -> list[str]:
    """``herald ARGS`` from the running interpreter's environment."""
    script = Path(sys.executable).with_name("herald")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "herald.cli", *args]


@dataclass
class Service:
    """A process this benchmark started; its output goes to ``log_path``."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def check_running(self) -> None:
        if not self.running():
            raise BenchError(
                f"{self.name} exited early with code {self.process.returncode}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        tail = text.splitlines()[-lines:]
        return "\n".join(f"  | {line}" for line in tail) if tail else "  (log is empty)"

    def peak_rss_kib(self) -> int | None:
        return peak_rss_kib(self.pid) if self.running() else None

    def stopped_cleanly(self) -> bool:
        """Exited 0, or re-raised the SIGTERM it was stopped with (uvicorn does)."""
        return self.process.returncode in (0, -signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Returns the exit code."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    print(f"warning: {self.name} ignored SIGTERM for {timeout:.0f}s; killing it")
                    self.process.kill()
                    self.process.wait(10)
        finally:
            self._log.close()
        return self.process.returncode


def start_service(
    name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
) -> Service:
    """Start ``command`` in ``cwd`` (so no stray ``.env`` is read), output to a file."""
    log = log_path.open("wb")
    try:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except BaseException:
        log.close()
        raise
    return Service(name, process, log_path, log)


def start_herald(
    mode: str,
    env: Mapping[str, str],
    workdir: Path,
    cpu: int | None = None,
    log_name: str | None = None,
) -> Service:
    """Start ``herald MODE`` (``api``, ``worker`` or ``up``), pinned to ``cpu`` if given.

    ``taskset`` execs the command, so the pid is Herald's own. ``log_name``
    tells several processes of one mode apart (``herald-<log_name>.log``).
    """
    command = [*taskset_prefix(cpu), *herald_command(mode)]
    log_path = workdir / f"herald-{log_name or mode}.log"
    return start_service(f"herald {log_name or mode}", command, env, workdir, log_path)


def wait_healthy(service: Service, port: int, timeout: float = 30.0) -> float:
    """Poll ``GET /api/health`` until it answers 200; returns the seconds it took."""
    url = f"http://127.0.0.1:{port}/api/health"
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        service.check_running()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} not healthy after {timeout:.0f}s ({last})\n{service.log_tail()}"
    )


def http_json(
    method: str,
    url: str,
    body: object | None = None,
    timeout: float = 10.0,
    key: str | None = ADMIN_KEY,
) -> tuple[int, Any]:
    """One request with an optional JSON body and ``key`` as its credential (None: none).

    Returns (status, decoded JSON body).
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=credential_headers(key))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def peak_rss_kib(pid: int) -> int | None:
    """The process's peak resident set size (``VmHWM``) in KiB, if readable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time (all threads) the process has used so far, if readable.

    Set against the wall time of a run it tells an overloaded server (busy all
    the time) from one that was merely slow to answer; and on a machine shared
    with other work, CPU time per item is steadier than a rate, which also
    counts the time spent waiting for the CPU.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # The command name (field 2) may hold spaces; the fields after it do not.
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # Fields 14 and 15 of proc(5), utime and stime; the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- SQLite ----------------------------------------------------------------------


@contextlib.contextmanager
def sqlite_readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only, autocommit connection (no transaction is held between queries)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        yield conn
    finally:
        conn.close()


def scalar(conn: sqlite3.Connection, query: str, *params: object) -> Any:
    return conn.execute(query, params).fetchone()[0]


# -- the sample notification ---------------------------------------------------


def sample_email(n: int = 0) -> dict[str, Any]:
    """A realistic EMAIL notification as ``POST /api/notifications`` takes it."""
    return {
        "type": "EMAIL",
        "recipient": f"customer{n}@example.com",
        "subject": f"Your order #{100000 + n} has shipped",
        "message": (
            "Hi there,\n\nGood news: your order is on its way. It left our warehouse "
            "this morning and should arrive within 2-3 business days. You can follow "
            "the parcel with the tracking link in your account.\n\nThanks for shopping "
            "with us!\nThe WaveCom team"
        ),
        "html": (
            "<p>Hi there,</p><p>Good news: your order is on its way. It left our "
            "warehouse this morning and should arrive within <b>2-3 business days</b>."
            '</p><p><a href="https://shop.example.com/orders/track">Track your parcel'
            "</a></p><p>Thanks for shopping with us!<br>The WaveCom team</p>"
        ),
        "priority": "MEDIUM",
        "metadata": {
            "userId": str(12345 + n),
            "orderId": f"ORD-{100000 + n}",
            "campaign": "order-shipped",
            "locale": "en-GB",
        },
    }


def stop_all(services: Iterable[Service | None]) -> None:
    """Stop each service in turn (None: never started), warning of an unclean exit."""
    for service in services:
        if service is None:
            continue
        code = service.stop()
        if not service.stopped_cleanly():
            print(f"warning: {service.name} exited with code {code}\n{service.log_tail()}")

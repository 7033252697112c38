"""Fixtures for end-to-end tests: real ``herald`` processes, a real SMTP sink.

Every test gets its own temporary directory and SQLite file. Processes are
started with ``sys.executable -m herald.cli`` and an environment built from
scratch (no ``HERALD_*`` or alias variables leak in from the caller), with
their working directory in the temp dir so no stray ``.env`` is read. Their
output goes to a log file per process; when a test fails, the tail of each
log is printed in the report. Teardown kills only the processes the test
started, by their own pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import ADMIN_KEY, AUTH

#: Variables that configure Herald (its own prefix and the seeds' aliases).
_CONFIG_ALIASES = {
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_USER",
    "EMAIL_PASSWORD",
    "EMAIL_FROM",
    "SMTP_HOST",
    "SMTP_PORT",
    "SMTP_USER",
    "SMTP_PASS",
    "LOG_LEVEL",
    "MAIL_QUEUE_CONCURRENCY",
    "RETRY_1_DELAY",
    "RETRY_2_DELAY",
    "NOTIFICATION_MAX_ATTEMPTS",
    "NOTIFICATION_CLEANUP_DAYS",
}

_ID_HEADER = re.compile(rb"^X-Herald-Notification-Id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a TCP port on 127.0.0.1 that is free right now."""
    return _free_port


async def poll(
    check: Callable[[], Any | Awaitable[Any]],
    timeout: float,
    what: str,
    interval: float = 0.05,
    diagnose: Callable[[], str] | None = None,
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{diagnose()}" if diagnose else ""
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        await asyncio.sleep(interval)


# -- the SMTP sink --------------------------------------------------------------


class Sink:
    """An aiosmtpd handler that records messages by their Herald notification id.

    ``received`` counts messages accepted (answered 250) per id; ``attempts``
    counts every DATA per id, refused or not. ``reply`` (a function of the
    recipient returning an SMTP reply or None) makes DATA fail with that reply;
    ``latency`` delays every answer to DATA, so sends stay in flight for a while.
    All counters are safe to read from the test's thread.
    """

    def __init__(self) -> None:
        self.latency = 0.0
        self.reply: Callable[[str], str | None] = lambda recipient: None
        self._lock = threading.Lock()
        self._received: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self.unidentified = 0
        self.times: list[float] = []  # time.monotonic() of every DATA, refused or not

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.latency:
            await asyncio.sleep(self.latency)
        content = envelope.original_content or b""
        match = _ID_HEADER.search(content)
        recipient = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        refusal = self.reply(recipient)
        with self._lock:
            if match is None:
                self.unidentified += 1
                return "554 5.6.0 no X-Herald-Notification-Id header"
            notification_id = match.group(1).decode()
            self._attempts[notification_id] += 1
            self.times.append(time.monotonic())
            if refusal is not None:
                return refusal
            self._received[notification_id] += 1
        return "250 2.0.0 OK"

    @property
    def received(self) -> Counter[str]:
        """A snapshot of accepted messages per notification id."""
        with self._lock:
            return Counter(self._received)

    @property
    def attempts(self) -> Counter[str]:
        """A snapshot of DATA commands (accepted or refused) per notification id."""
        with self._lock:
            return Counter(self._attempts)

    @property
    def total(self) -> int:
        """Messages accepted so far, duplicates included."""
        with self._lock:
            return sum(self._received.values())


@dataclass
class SMTPServer:
    host: str
    port: int
    sink: Sink


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A recording SMTP server on 127.0.0.1, in a thread of the test process."""
    sink = Sink()
    for tries_left in reversed(range(3)):
        # The port is free when chosen; on the rare race with another binder, pick again.
        port = _free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
        try:
            controller.start()
            break
        except Exception:
            if not tries_left:
                raise
    try:
        yield SMTPServer("127.0.0.1", port, sink)
    finally:
        controller.stop()


# -- herald processes -------------------------------------------------------------


@dataclass
class HeraldProcess:
    name: str
    command: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        assert self.port is not None, f"{self.name} has no HTTP port"
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(cannot read {self.log_path}: {exc})"
        tail = text.splitlines()[-lines:]
        return "\n".join(tail)

    def describe(self) -> str:
        code = self.popen.poll()
        state = "running" if code is None else f"exited with {code}"
        return (
            f"--- {self.name} (`herald {self.command}`, pid {self.pid}, {state}), "
            f"last lines of {self.log_path} ---\n{self.log_tail()}"
        )

    def kill(self) -> None:
        """SIGKILL this process (only this pid) and reap it."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def terminate(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if it is still running after ``timeout`` s."""
        try:
            return await asyncio.to_thread(self.popen.wait, timeout)
        except subprocess.TimeoutExpired:
            return None

    def assert_running(self) -> None:
        if self.popen.poll() is not None:
            pytest.fail(f"{self.name} died unexpectedly\n{self.describe()}")


class Herald:
    """Starts ``herald`` subprocesses for one test and kills them all afterwards."""

    def __init__(self, workdir: Path, smtp: SMTPServer | None) -> None:
        self.workdir = workdir
        self.db_path = workdir / "herald.db"
        self.smtp = smtp
        self.processes: list[HeraldProcess] = []

    def base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HERALD_") and k not in _CONFIG_ALIASES
        }
        env.update(
            HERALD_DATABASE_URL=f"sqlite:///{self.db_path}",
            HERALD_HOST="127.0.0.1",
            HERALD_LOG_LEVEL="info",
            HERALD_ADMIN_KEY=ADMIN_KEY,
            PYTHONUNBUFFERED="1",
        )
        if self.smtp is not None:
            env.update(
                HERALD_EMAIL_PROVIDERS="smtp",
                HERALD_SMTP_HOST=self.smtp.host,
                HERALD_SMTP_PORT=str(self.smtp.port),
                HERALD_SMTP_TLS="none",
                HERALD_SMTP_TIMEOUT="10",
            )
        return env

    def start(self, command: str, *args: str, **overrides: str | float) -> HeraldProcess:
        """Run ``herald COMMAND ARGS`` with the base environment plus ``overrides``.

        ``api`` and ``up`` get a free port unless ``HERALD_PORT`` is given.
        """
        env = self.base_env()
        env.update({k: str(v) for k, v in overrides.items()})
        port = None
        if command in ("api", "up"):
            env.setdefault("HERALD_PORT", str(_free_port()))
            port = int(env["HERALD_PORT"])
        name = f"{command}-{len(self.processes) + 1}"
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "herald.cli", command, *args],
                env=env,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = HeraldProcess(name, command, popen, log_path, env, port)
        self.processes.append(process)
        return process

    async def start_http(self, command: str, *args: str, **overrides: str | float) -> HeraldProcess:
        """Start ``herald api`` or ``herald up`` and wait until it is healthy.

        A free port can be taken by someone else before the process binds it;
        then (unless the caller chose the port) it is started again on another.
        """
        for tries_left in reversed(range(3)):
            process = self.start(command, *args, **overrides)
            if await wait_for_health(
                process, retry_port=tries_left > 0 and "HERALD_PORT" not in overrides
            ):
                return process
        raise AssertionError("unreachable")  # pragma: no cover

    def describe(self) -> str:
        return "\n".join(p.describe() for p in self.processes)

    async def poll(
        self,
        check: Callable[[], Any | Awaitable[Any]],
        timeout: float,
        what: str,
        interval: float = 0.05,
        watch: Sequence[HeraldProcess] = (),
    ) -> Any:
        """``poll`` that shows the processes' logs when it times out.

        Fails at once if a process in ``watch`` exits while waiting.
        """

        def checked() -> Any:
            for process in watch:
                process.assert_running()
            return check()

        return await poll(checked, timeout, what, interval, diagnose=self.describe)

    def cleanup(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.popen.wait(timeout=10)

    # -- looking at the store from outside -------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query on the test's SQLite file (a fresh connection)."""
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            conn.execute("PRAGMA query_only = 1")
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def status_counts(self) -> dict[str, int]:
        if not self.db_path.exists():
            return {}
        rows = self.query("SELECT status, count(*) FROM notifications GROUP BY status")
        return {status: count for status, count in rows}


async def wait_for_health(
    process: HeraldProcess, timeout: float = 20.0, retry_port: bool = False
) -> bool:
    """Poll ``GET /api/health`` until it answers 200; fail at once if the process dies.

    With ``retry_port``, a process that died because its port was taken makes
    this return False instead of failing, so the caller can try another port.
    """
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=process.url, headers=AUTH, timeout=2.0) as client:
        while True:
            died = process.popen.poll() is not None
            if died and retry_port and "address already in use" in process.log_tail().lower():
                return False
            process.assert_running()
            try:
                response = await client.get("/api/health")
                if response.status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{process.name} not healthy after {timeout}s\n{process.describe()}")
            await asyncio.sleep(0.05)


_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember a failed phase, so teardown knows to print the processes' logs."""
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture
def herald(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SMTPServer
) -> Iterator[Herald]:
    """Start ``herald`` processes on this test's own SQLite file, SMTP to ``smtp_server``."""
    yield from _running(request, Herald(tmp_path, smtp_server))


@pytest.fixture
def pg_herald(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SMTPServer, pg_url: str
) -> Iterator[Herald]:
    """Like ``herald``, on a throwaway PostgreSQL database (dropped after the processes)."""
    from tests.e2e.pgherald import PgHerald

    yield from _running(request, PgHerald(tmp_path, smtp_server, pg_url))


def _running(request: pytest.FixtureRequest, runner: Herald) -> Iterator[Herald]:
    try:
        yield runner
    finally:
        runner.cleanup()
        if request.node.stash.get(_FAILED, False) and runner.processes:
            print(runner.describe())

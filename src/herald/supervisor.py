"""``herald up --api-workers N --delivery-workers M``: several processes on one host.

The supervisor applies the migrations once, binds the API port itself and
hands that one listening socket to N ``herald api`` children, which all
accept from it (so a child that dies strands no queued connection, and no
port is shared by accident). It starts M ``herald worker`` children beside
them. A child that exits on its own is logged and started again, with a
growing pause if it keeps dying. SIGTERM or SIGINT asks every child to stop
gracefully (they finish in-flight work and release the rest); the supervisor
waits for them and exits 0 when all stopped cleanly.

Each child names itself ``<instance>/api-<i>`` or ``<instance>/worker-<i>``
(``HERALD_INSTANCE``), so ``X-Herald-Instance`` and breaker states say which
process answered. The processes share one store: on SQLite they take turns
at its writer lock; PostgreSQL is the store for more than one host.

Metrics: the supervisor makes a fresh private directory (mode 0700, empty)
and hands it to every child as ``PROMETHEUS_MULTIPROC_DIR``, where each keeps
its counters, histograms and gauges (``metrics.py``), so a scrape of any API
process shows every process's. A child that exits is marked dead there (its
live gauges go; its counts stay, they happened), and the directory is removed
when the supervisor exits.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import FrameType

import structlog
from prometheus_client import multiprocess

from .config import Settings
from .store import open_store

log = structlog.get_logger("herald.supervisor")

RESTART_PAUSE = 1.0  # seconds before restarting a child that died; doubles if it keeps dying
RESTART_PAUSE_MAX = 30.0
STABLE_AFTER = 10.0  # a child that ran this long before dying is restarted at once


@dataclass
class Child:
    role: str  # "api" or "worker"
    index: int
    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = RESTART_PAUSE
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, pass_fds=self.pass_fds, stdin=subprocess.DEVNULL
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("child_started", child=self.name, pid=self.process.pid)


class Supervisor:
    def __init__(self, settings: Settings, api_workers: int, delivery_workers: int) -> None:
        if api_workers < 0 or delivery_workers < 0 or api_workers + delivery_workers == 0:
            raise ValueError("need at least one API or delivery worker process")
        self.settings = settings
        self.api_workers = api_workers
        self.delivery_workers = delivery_workers
        self.children: list[Child] = []
        self._stopping = False
        self.metrics_dir = ""  # made by ``run``

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit code is 0 when every child stopped cleanly."""
        asyncio.run(_migrate(self.settings))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        listener = self._bind() if self.api_workers else None
        self.metrics_dir = tempfile.mkdtemp(prefix="herald-metrics-")
        try:
            self.children = self._plan(listener)
            for child in self.children:
                child.start()
            log.info(
                "supervisor_started",
                api_workers=self.api_workers,
                delivery_workers=self.delivery_workers,
                port=self.settings.port if listener else None,
                metrics_dir=self.metrics_dir,
            )
            while not self._stopping:
                self._watch()
                time.sleep(0.2)
            return self._shutdown()
        finally:
            if listener is not None:
                listener.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        sock = socket.create_server(
            (self.settings.host, self.settings.port), family=family, backlog=2048
        )
        sock.set_inheritable(True)
        return sock

    def _plan(self, listener: socket.socket | None) -> list[Child]:
        base = {
            **os.environ,
            "HERALD_HOST": self.settings.host,
            "HERALD_PORT": str(self.settings.port),
            "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir,
        }
        command = [sys.executable, "-m", "herald.cli"]
        children = []
        for i in range(1, self.api_workers + 1):
            assert listener is not None
            fd = listener.fileno()
            env = {**base, "HERALD_INSTANCE": f"{self.settings.instance}/api-{i}"}
            argv = [*command, "api", "--socket-fd", str(fd)]
            children.append(Child("api", i, argv, env, (fd,)))
        for i in range(1, self.delivery_workers + 1):
            env = {**base, "HERALD_INSTANCE": f"{self.settings.instance}/worker-{i}"}
            children.append(Child("worker", i, [*command, "worker"], env))
        return children

    def _watch(self) -> None:
        now = time.monotonic()
        for child in self.children:
            assert child.process is not None
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                continue
            code = child.process.poll()
            if code is None:
                continue
            child.exits.append(code)
            # Its live gauges go (its in-flight sends are no more); its counts stay.
            multiprocess.mark_process_dead(child.process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]
            stable = now - child.started_at >= STABLE_AFTER
            child.pause = RESTART_PAUSE if stable else min(child.pause * 2, RESTART_PAUSE_MAX)
            pause = 0.0 if stable else child.pause
            log.error("child_exited", child=child.name, code=code, restart_in=pause)
            child.restart_at = now + pause

    def _shutdown(self) -> int:
        log.info("supervisor_stopping", children=len(self.children))
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + 15
        clean = True
        for child in running:
            assert child.process is not None
            try:
                code = child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("child_killed", child=child.name, pid=child.process.pid)
                child.process.kill()
                code = child.process.wait()
            # A child still starting has no handler yet and dies of the signal itself:
            # it had taken no work, so that is a clean stop too.
            if code not in (0, -signal.SIGTERM):
                clean = False
                log.error("child_stopped_uncleanly", child=child.name, code=code)
        log.info("supervisor_stopped", clean=clean)
        return 0 if clean else 1


async def _migrate(settings: Settings) -> None:
    """Bring the schema up to date once, before any child opens the store, and make the
    first admin key here too, so API children starting together do not each make one."""
    from .api.credentials import first_start

    store = open_store(settings)
    await store.open()
    try:
        await first_start(store, settings)
    finally:
        await store.close()

"""A few render processes with hard limits, shared fairly between tenants.

Every template a tenant wrote is compiled and rendered in one of these
processes, never in the API's own, because only a process can be held to a
budget:

- **CPU.** A thread cannot be stopped inside C code, and Jinja folded
  ``{{ 7**(2*10**7) }}`` at compile time in one C call: 40 s holding the GIL,
  the whole API frozen. A render process runs each job under CPU timers
  (``render_process.py``); one that outlives its wall-clock timeout is
  killed by the watchdog and another started.
- **Memory.** ``{{ 'a' * 10**9 }}`` took the API to 4 GB. A thread has no
  memory limit of its own; a process has RLIMIT_AS.
- **Threads.** Seven renders of two nested ``range(100000)`` loops held every
  thread of the API's default executor for good. Here a render holds a
  process for at most its budget, and an async caller (``run_async``) talks
  to the process from its own event loop: no thread waits, and no GIL changes
  hands, which under load costs up to the 5 ms switch interval each time.

Measured on the dev box (2 cores shared with other work), per render of the
welcome email (subject, text, HTML): 40 to 110 µs of CPU in the API process;
through a render process 160 to 260 µs in the API plus 210 to 380 µs in the
render process. With every template in a process, ``POST /api/signups`` cost
2.06 to 2.78 ms of server CPU before and 3.14 to 4.23 ms after, and ran at
307 to 419 signups/s before and 217 to 305 after (8 clients, SQLite): over
the 10 % a signup may lose. So the built-in templates, Herald's own code,
render in the API's thread (``templates.Renderer``) and only templates a
tenant wrote come here: then 452 signups/s against 454 before (medians of 16
interleaved runs) and 2.34 ms of CPU a signup against 2.25.

Starting a process took 5 to 15 ms by fork (which would copy the API's
sockets into it, and is unsafe in a threaded server), 18 to 20 ms from
multiprocessing's forkserver (which imports the parent's ``__main__`` into
each child) and about 450 ms as a fresh interpreter, the way chosen: a
process lives on between jobs, and the common bombs (a huge power or
repetition, a long loop) are answered without ending it.

Fairness: the next free process goes to the tenant served longest ago, so
another tenant's job waits behind at most one job per process, however many
hostile ones a tenant has queued; no process is kept back for other tenants,
which would leave it idle while one tenant queues. A tenant may have
``max_waiting`` jobs waiting; past that it is told to retry (503
``Overloaded``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future
from pathlib import Path

import structlog

from .errors import Overloaded
from .render_process import READY, Wire
from .sandbox import COMPILE_FACTOR, Job, Limit, Outcome

log = structlog.get_logger("herald.render_pool")
#: The folder ``herald`` is imported from, so render processes run this same code.
_SOURCE_ROOT = str(Path(__file__).resolve().parent.parent)
#: How long a new render process may take to import and warm up before it counts as failed.
START_TIMEOUT = 60.0
#: How often the watchdog looks for a job past its wall-clock timeout, in seconds.
WATCH_INTERVAL = 0.2


class _Stopped(Exception):
    """The render process ended without answering (killed at its timeout, or by a signal);
    ``limit`` is the limit that says it went over, if any."""

    def __init__(self, limit: Limit | None, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit


class _Process:
    """One render process and the parent's end of its socket.

    Started as a fresh interpreter (``render_process.main``) with only that socket
    open: a fork of the API would hold copies of its client connections and
    listening socket, and multiprocessing's forkserver imports the parent's
    ``__main__`` into every child. The socket stays non-blocking; a job is one
    ``send`` and, most often, one ``recv`` (``render_process.Wire``).
    """

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_SOURCE_ROOT, env.get("PYTHONPATH")]))
        start = f"from herald.render_process import main; main({theirs.fileno()})"
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", start], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),), start_new_session=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self.wire = Wire(ours)
        self.deadline: float | None = None  # while a job runs: when the watchdog kills it
        self.timed_out = False

    def wait_ready(self) -> None:
        if self.call(None, START_TIMEOUT) != READY:
            raise RuntimeError("the render process said something other than ready")

    def call(self, job: Job | None, timeout: float) -> object:
        """Send ``job`` (None: nothing) and wait for the answer, blocking."""
        self.deadline = time.monotonic() + timeout
        try:
            if job is not None:
                self.wire.sock.setblocking(True)
                try:
                    self.wire.send(job)
                finally:
                    self.wire.sock.setblocking(False)
            while True:
                answer = self.wire.take()
                if answer is not None:
                    return answer[0]
                poller = select.poll()
                poller.register(self.wire.sock, select.POLLIN)
                left = self.deadline - time.monotonic()
                if not poller.poll(max(0, int(left * 1000))):
                    self.timed_out = True
                    raise EOFError
                self.wire.fill()
        except (EOFError, OSError, pickle.UnpicklingError):
            raise self._ended(timeout) from None
        finally:
            self.deadline = None

    async def call_async(self, job: Job, timeout: float) -> Outcome:
        """Send ``job`` and wait for its ``Outcome`` on the running event loop."""
        loop = asyncio.get_running_loop()
        self.deadline = time.monotonic() + timeout
        try:
            rest = self.wire.send(job)
            if rest:
                await loop.sock_sendall(self.wire.sock, rest)
            while True:
                answer = self.wire.take()
                if answer is not None:
                    outcome: Outcome = answer[0]  # type: ignore[assignment]
                    return outcome
                await self.wire.fill_async(loop)
        except (EOFError, OSError, pickle.UnpicklingError):
            for _ in range(100):  # it closed its socket: it has exited, or is about to
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.01)
            raise self._ended(timeout, wait=0) from None
        finally:
            self.deadline = None

    def _ended(self, timeout: float, wait: float = 1.0) -> _Stopped:
        """Why the process stopped without answering."""
        try:
            code = self.process.wait(wait) if wait else self.process.poll()
        except subprocess.TimeoutExpired:
            code = None  # still there: it is killed and replaced all the same
        if self.timed_out:
            return _Stopped("cpu", f"no answer within {timeout:.1f} s")
        if code == -signal.SIGVTALRM:
            return _Stopped("cpu", "stopped at its CPU limit")
        if code == -signal.SIGKILL:
            return _Stopped("memory", "killed (out of memory?)")
        return _Stopped(None, f"exited with code {code}")

    def kill(self) -> None:
        """Close the socket, kill the process if it is still there, and reap it."""
        self.wire.sock.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


class RenderPool:
    """``run`` (blocking) or ``run_async`` a ``Job`` for a tenant; get its ``Outcome``.

    The processes start with the first job, each from a short-lived thread
    that waits for it to be ready, as does every replacement.
    """

    def __init__(self, size: int | None = None, max_waiting: int = 64) -> None:
        self.size = size or min(8, max(2, os.cpu_count() or 2))
        self.max_waiting = max_waiting
        self._lock = threading.Lock()
        self._idle: list[_Process] = []
        self._waiting: dict[str, deque[Future[_Process]]] = {}
        self._served: dict[str, int] = {}  # tenant: when it last got a process (a count)
        self._turns = itertools.count()
        self._running: set[_Process] = set()  # for the watchdog
        self._started = False
        self._closed = False
        self.replaced = 0  # processes that ended and were replaced, for tests and logs

    def run(self, tenant: str, job: Job) -> Outcome:
        process = self._acquire(tenant).result()
        try:
            outcome = process.call(job, _timeout(job))
        except _Stopped as stopped:
            return self._lost(process, job, stopped)
        except BaseException:
            self._lost(process, job, None)
            raise
        assert isinstance(outcome, Outcome)
        self._release(process, outcome.retire)
        return outcome

    async def run_async(self, tenant: str, job: Job) -> Outcome:
        grant = self._acquire(tenant)
        try:
            process = grant.result() if grant.done() else await asyncio.wrap_future(grant)
        except asyncio.CancelledError:
            grant.add_done_callback(self._unclaimed)
            raise
        try:
            outcome = await process.call_async(job, _timeout(job))
        except _Stopped as stopped:
            return self._lost(process, job, stopped)
        except BaseException:  # cancelled mid-job: the process may still be at it
            self._lost(process, job, None)
            raise
        self._release(process, outcome.retire)
        return outcome

    def close(self) -> None:
        """Stop the idle processes now, and the others when their job ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for queue in self._waiting.values():
                for grant in queue:
                    grant.cancel()
            self._waiting.clear()
        for process in idle:
            process.kill()

    def _acquire(self, tenant: str) -> Future[_Process]:
        with self._lock:
            if self._closed:
                raise RuntimeError("the render pool is closed")
            if not self._started:
                self._started = True
                for _ in range(self.size):
                    self._spawn()
                watch = threading.Thread(target=self._watch, name="herald-render-watch")
                watch.daemon = True
                watch.start()
            queue = self._waiting.setdefault(tenant, deque())
            if len(queue) >= self.max_waiting:
                raise Overloaded(
                    f"{len(queue)} templates of this tenant are waiting to render; retry shortly",
                    retry_after=1,
                )
            grant: Future[_Process] = Future()
            queue.append(grant)
            self._grant()
            return grant

    def _grant(self) -> None:
        """Hand idle processes to waiting jobs, the tenant served longest ago first.
        Called with the lock held."""
        while self._idle and self._waiting:
            tenant = min(self._waiting, key=lambda t: self._served.get(t, -1))
            queue = self._waiting[tenant]
            grant = queue.popleft()
            if not queue:
                del self._waiting[tenant]
            self._served[tenant] = next(self._turns)
            if len(self._served) > 10_000:  # forget tenants that wait for nothing
                self._served = {t: n for t, n in self._served.items() if t in self._waiting}
            if grant.set_running_or_notify_cancel():
                process = self._idle.pop()
                self._running.add(process)
                grant.set_result(process)

    def _release(self, process: _Process, retire: bool = False) -> None:
        with self._lock:
            self._running.discard(process)
            if retire or self._closed:
                threading.Thread(target=process.kill, daemon=True).start()
                if not self._closed:
                    self.replaced += 1
                    self._spawn()
            else:
                self._idle.append(process)
                self._grant()

    def _lost(self, process: _Process, job: Job, stopped: _Stopped | None) -> Outcome:
        """The process is gone or cannot be trusted: replace it; what its job is told."""
        if process.process.poll() is None:
            process.process.kill()
        log.warning("render_process_replaced", template=job.name,
                    reason=str(stopped) if stopped else "abandoned mid-job")  # fmt: skip
        self._release(process, retire=True)
        return _stopped_outcome(job, stopped) if stopped else Outcome()

    def _unclaimed(self, grant: Future[_Process]) -> None:
        """A waiter gave up, but the process it was granted must not be lost with it."""
        if not grant.cancelled() and grant.exception() is None:
            self._release(grant.result())

    def _watch(self) -> None:
        """Kill a process whose job outlived its wall-clock timeout; its caller sees it end."""
        while not self._closed:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._lock:
                late = [p for p in self._running if p.deadline is not None and p.deadline < now]
            for process in late:
                process.timed_out = True
                if process.process.poll() is None:
                    process.process.kill()

    def _spawn(self) -> None:
        """Start a process in a thread of its own; it joins the idle ones once ready."""
        threading.Thread(target=self._start_one, name="herald-render-start", daemon=True).start()

    def _start_one(self) -> None:
        for failures in range(1, 1_000_000):
            process: _Process | None = None
            try:
                process = _Process()
                process.wait_ready()
            except Exception as exc:  # fork refused, out of file descriptors, import failed...
                if process is not None:
                    process.kill()
                log.error("render_process_unstartable", error=str(exc), failures=failures)
                self._fail_oldest(exc)
                time.sleep(min(10.0, 0.1 * 2**failures))
                continue
            with self._lock:
                if not self._closed:
                    self._idle.append(process)
                    self._grant()
                    return
            process.kill()
            return

    def _fail_oldest(self, exc: Exception) -> None:
        """With no process to run it, the oldest waiting job is told to retry, not left waiting."""
        with self._lock:
            for tenant, queue in list(self._waiting.items()):
                grant = queue.popleft()
                if not queue:
                    del self._waiting[tenant]
                if grant.set_running_or_notify_cancel():
                    grant.set_exception(Overloaded(f"no render process could start ({exc})", 1))
                return


def _timeout(job: Job) -> float:
    """Wall-clock seconds before the process is killed: its CPU timers stop it far sooner,
    unless it is starved of CPU, which this allows for generously."""
    return 2.0 + 3 * (COMPILE_FACTOR + 1) * job.budget.cpu_ms / 1000


def _stopped_outcome(job: Job, stopped: _Stopped) -> Outcome:
    if stopped.limit is not None:
        what = job.budget.describe(stopped.limit)
        return Outcome.refused(stopped.limit, f"template {job.name!r}: over {what} ({stopped})",
                               (("template", f"is over {what}"),))  # fmt: skip
    return Outcome.refused(
        "failed", f"template {job.name!r}: its render process {stopped}",
        (("template", f"its render process {stopped}"),),
    )  # fmt: skip

"""A render process: it takes each ``Job`` from a socket and answers with its ``Outcome``.

Started by the pool (``render_pool.py``) as a fresh interpreter running
``main``. Each job runs under the process's limits, which a thread could not
have:

- CPU: SIGPROF raises ``CpuSpent`` once the job has used its CPU time, which
  ends a loop of template code; SIGVTALRM, left to its default action, ends
  the process at twice that, should a C routine keep Python from raising.
  Compiling (parsing only: ``sandbox.py``) gets ``COMPILE_FACTOR`` times the
  limit.
- Memory: before each job the address space is capped (RLIMIT_AS) at what
  the process holds then plus the job's memory budget, so an allocation past
  it is a MemoryError, not the machine's memory.

A process that outgrows its own footprint (what a MemoryError or the
allocator left behind) or has served ``MAX_JOBS`` says so in its last answer
and exits; the pool starts another.
"""

from __future__ import annotations

import asyncio
import io
import os
import pickle
import resource
import signal
import socket
import struct
from dataclasses import replace

from .sandbox import (
    CACHE_BYTES,
    COMPILE_FACTOR,
    MIB,
    Budget,
    Compiled,
    Job,
    Outcome,
    Sandbox,
    over,
)

#: A render process replaces itself after this many jobs.
MAX_JOBS = 10_000
#: What a render process sends once it is warm and waiting for jobs.
READY = "ready"


class Wire:
    """Pickled values, each after its length (4 bytes), over a socket; both ends use it.

    ``take`` returns ``(value,)`` once a whole value has arrived, else None,
    and ``fill`` reads what there is: most answers arrive in one read. Only
    plain values and the three classes of ``sandbox.py`` are unpickled, so a
    render process that went wrong cannot make the API run code.
    """

    HEADER = struct.Struct("!I")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = bytearray()
        self._chunk = bytearray(1 << 16)

    def send(self, value: object) -> bytes:
        """Send ``value``; returns what a non-blocking socket did not take yet."""
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        frame = self.HEADER.pack(len(payload)) + payload
        if self.sock.getblocking():
            self.sock.sendall(frame)
            return b""
        try:
            sent = self.sock.send(frame)
        except BlockingIOError:
            sent = 0
        return frame[sent:]

    def take(self) -> tuple[object] | None:
        if len(self._buffer) < self.HEADER.size:
            return None
        (size,) = self.HEADER.unpack_from(self._buffer)
        end = self.HEADER.size + size
        if len(self._buffer) < end:
            return None
        payload = io.BytesIO(memoryview(self._buffer)[self.HEADER.size : end])
        del self._buffer[:end]
        value = _Unpickler(payload).load()
        return (value,)

    def fill(self) -> None:
        self._got(self.sock.recv_into(self._chunk))

    async def fill_async(self, loop: asyncio.AbstractEventLoop) -> None:
        self._got(await loop.sock_recv_into(self.sock, self._chunk))

    def _got(self, count: int) -> None:
        if count == 0:
            raise EOFError
        self._buffer += memoryview(self._chunk)[:count]

    def receive(self) -> object:
        """The next value, blocking."""
        while (value := self.take()) is None:
            self.fill()
        return value[0]


class _Unpickler(pickle.Unpickler):
    ALLOWED = frozenset({("herald.sandbox", "Job"), ("herald.sandbox", "Budget"),
                         ("herald.sandbox", "Outcome")})  # fmt: skip

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} has no business on this socket")
        return super().find_class(module, name)


class CpuSpent(BaseException):
    """The CPU timer ran out. A BaseException, so no ``except Exception`` in Jinja or a
    filter can swallow it."""


_armed = False


def _cpu_spent(signum: int, frame: object) -> None:
    if _armed:
        raise CpuSpent


def _arm(seconds: float) -> None:
    """SIGPROF raises ``CpuSpent`` after ``seconds`` of CPU; SIGVTALRM, left to its default
    action, ends the process at twice that, should C code keep Python from raising."""
    global _armed
    _armed = True
    signal.setitimer(signal.ITIMER_VIRTUAL, 2 * seconds + 0.05)
    signal.setitimer(signal.ITIMER_PROF, seconds)


def _disarm() -> None:
    global _armed
    _armed = False
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer(signal.ITIMER_VIRTUAL, 0)


def run_budgeted(sandbox: Sandbox, job: Job) -> Outcome:
    """Compile (``COMPILE_FACTOR`` times the CPU limit), then render (the CPU limit)."""
    seconds = job.budget.cpu_ms / 1000
    compiled: Compiled | Outcome = {}
    compiling = True
    try:
        _arm(seconds * COMPILE_FACTOR)
        compiled = sandbox.compile(job)
        _disarm()
        if isinstance(compiled, Outcome):
            return compiled
        compiling = False
        _arm(seconds)
        outcome = sandbox.render(job, compiled)
        _disarm()
    except CpuSpent:
        _disarm()
        outcome = over(job, sandbox.part, "cpu", compiling=compiling)
    if isinstance(compiled, dict):
        sandbox.keep(job, compiled)
    return outcome


def main(fd: int) -> None:
    """Entry point of a render process (``render_pool._Process``): serve on socket ``fd``."""
    serve(Wire(socket.socket(fileno=fd)))


def serve(wire: Wire) -> None:
    """Take a ``Job``, send back its ``Outcome``, until the socket closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which ends us
    signal.signal(signal.SIGPROF, _cpu_spent)
    signal.signal(signal.SIGVTALRM, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a killed render dumps no core
    sandbox = Sandbox()
    warm = Job("warm-up", (("text", "{{ x }}", False), ("html", "{{ x }}", True)), {"x": 1},
               Budget())  # fmt: skip
    run_budgeted(sandbox, warm)
    statm = os.open("/proc/self/statm", os.O_RDONLY)
    base = size = _address_space(statm)
    try:
        wire.send(READY)
    except OSError:  # the API went away while this process was starting
        return
    for done in range(1, MAX_JOBS + 1):
        try:
            job = wire.receive()
        except (EOFError, OSError):
            return
        assert isinstance(job, Job)
        budget = job.budget.memory_mb * MIB
        # The job's data is in, so it counts against the budget: a fair price for its size.
        resource.setrlimit(resource.RLIMIT_AS, (size + budget, resource.RLIM_INFINITY))
        try:
            outcome = run_budgeted(sandbox, job)
        except MemoryError:
            outcome = over(job, sandbox.part, "memory")
        del job
        size = _address_space(statm)
        if done == MAX_JOBS or size > base + CACHE_BYTES + budget // 2:
            outcome = replace(outcome, retire=True)
        try:
            wire.send(outcome)
        except OSError:
            return
        if outcome.retire:
            return


def _address_space(statm: int) -> int:
    """Bytes of address space the process holds (the first field of ``/proc/self/statm``)."""
    return int(os.pread(statm, 64, 0).split()[0]) * resource.getpagesize()

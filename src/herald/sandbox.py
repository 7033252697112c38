"""The sandbox a template runs in, inside a render process (``render_pool.py``).

Jinja2's ``SandboxedEnvironment`` keeps a template away from Python's
internals, not from the machine. This one also:

- never evaluates template code while compiling: the optimizer is off and
  ``finalize`` takes the eval context, the two ways Jinja folds constants at
  compile time (``{{ 7**(2*10**7) }}`` once took 40 s of CPU there, holding
  the GIL). Compiling is parsing only, so its cost follows the source's size;
- refuses a power or a repetition too big for the budget before computing it
  (``*`` and ``**`` are intercepted), so the common bombs are a quick answer,
  not a process killed at its limit;
- prints plain values only: text, numbers, and lists and mappings of them.
  A function or object (``{{ {}.update }}``, ``{{ items|map('upper') }}``) is
  refused naming its type, and a repr with an address that reaches the output
  some other way (``~``, ``|string``) is cut out, so heap addresses never leak;
- streams the output, counting it against the output limit as it grows.

Everything else a template could do to the machine (a C routine that runs long,
an allocation this module did not foresee) is held by the process around it:
the CPU timers and address-space limit ``serve`` sets, and the pool's wall-clock
timeout.

``Sandbox.run`` answers a ``Job`` with an ``Outcome`` made of plain values, so
it crosses the pipe as it is; ``templates.py`` turns a refusal into its typed
error.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import resource
import signal
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined, Undefined, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

if TYPE_CHECKING:
    from .config import Settings

MIB = 1 << 20
#: Compiling (parsing and generating code; no template code runs then) may take this many
#: times the CPU limit. Compiling costs about 4 ms of CPU per KiB of source on the dev box
#: (a 30 KiB HTML email: 133 ms), more than a render may take; it is paid once per render
#: process, since compiled templates are cached.
COMPILE_FACTOR = 10
#: Bytes of compiled templates a render process keeps (least recently used go first). An
#: entry is counted as 4 KiB plus 6 bytes per character of its source and generated code:
#: tracemalloc measured 1.7 to 5.8 bytes kept per character on the built-in templates.
CACHE_BYTES = 16 * MIB
#: A power whose result would have more bits is refused before it is computed:
#: 3**661000 (2**20 bits) took 58 ms of CPU on the dev box, and 2**23 bits 1.3 s.
MAX_POWER_BITS = 1 << 18
#: How many passes a part may take to name every variable the data lacks.
MAX_PASSES = 64
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")
#: A repr carrying a heap address (``<built-in method update of dict object at 0x7f…>``),
#: escaped or not.
_ADDRESS = re.compile(r"(?:<|&lt;)(?:(?!<|&lt;|>|&gt;).){0,300}? at 0x[0-9a-fA-F]+(?:>|&gt;)")
_PLAIN = (str, int, float, bool, type(None), Undefined)

#: What a render process sends once it is warm and waiting for jobs.
READY = "ready"

Limit = Literal["cpu", "memory", "output"]
Kind = Literal["invalid", "unsafe", "failed", "cpu", "memory", "output"]


# Budget, Job and Outcome cross the socket on every render: without slots they pickle
# through the C fast path (slotted dataclasses pickle through ``dataclasses.fields``).


@dataclass(frozen=True)
class Budget:
    """What one render may spend: CPU time, memory beyond its process's own, output bytes."""

    cpu_ms: int = 100
    memory_mb: int = 128
    max_output: int = 256 * 1024

    @classmethod
    def of(cls, settings: Settings) -> Budget:
        return cls(
            settings.template_cpu_ms, settings.template_memory_mb, settings.template_max_output
        )

    def describe(self, limit: Limit, compiling: bool = False) -> str:
        if compiling and limit == "cpu":
            return f"the CPU time limit for compiling ({self.cpu_ms * COMPILE_FACTOR} ms)"
        return {
            "cpu": f"the CPU time limit ({self.cpu_ms} ms)",
            "memory": f"the memory limit ({self.memory_mb} MiB)",
            "output": f"the output size limit ({self.max_output} bytes)",
        }[limit]


@dataclass(frozen=True)
class Job:
    """Render ``parts`` (field, source, is HTML) of template ``name`` with ``data``.

    ``data=None`` is a trial run for a template being saved: every name is
    defined (a lenient undefined), and only a broken budget is reported, since
    anything else may depend on data the template will be given.
    """

    name: str
    parts: tuple[tuple[str, str, bool], ...]
    data: Mapping[str, Any] | None
    budget: Budget


@dataclass(frozen=True)
class Outcome:
    texts: dict[str, str] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    kind: Kind | None = None  # None: rendered (maybe with ``missing`` names)
    message: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    retire: bool = False  # the process exits after this answer; the pool replaces it

    @classmethod
    def refused(cls, kind: Kind, message: str, fields: tuple[tuple[str, str], ...] = ()) -> Outcome:
        return cls(kind=kind, message=message, fields=fields)


class OverLimit(Exception):
    """A render reached for more than its ``Budget`` allows."""

    def __init__(self, limit: Limit, detail: str = "") -> None:
        super().__init__(detail)
        self.limit = limit


class Unprintable(Exception):
    """``{{ … }}`` printed a function or an object instead of a value."""


class CpuSpent(BaseException):
    """The CPU timer ran out. A BaseException, so no ``except Exception`` in Jinja or a
    filter can swallow it."""


class HardenedSandbox(SandboxedEnvironment):
    """``SandboxedEnvironment`` that never folds constants and checks ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(
            undefined=StrictUndefined, autoescape=autoescape, optimized=False, finalize=_printable
        )
        self.budget = Budget()

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        else:
            _check_repeat(left, right, self.budget.memory_mb * MIB)
        return super().call_binop(context, operator, left, right)


def _check_power(base: Any, exponent: Any) -> None:
    if type(base) is int and type(exponent) is int and exponent > 0:
        bits = exponent * abs(base).bit_length() if abs(base) > 1 else 0
        if bits > MAX_POWER_BITS:
            raise OverLimit("cpu", f"a power of {bits} bits")


def _check_repeat(left: Any, right: Any, memory: int) -> None:
    count, sequence = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(count, int) and isinstance(sequence, str | list | tuple):
        width = 1 if isinstance(sequence, str) else 8  # bytes per character or slot, at least
        if count > 0 and len(sequence) * count * width > memory:
            raise OverLimit("memory", f"a repetition of {len(sequence) * count} items")


@pass_eval_context
def _printable(eval_ctx: EvalContext, value: Any) -> Any:
    """Let plain values print; refuse what would print as a repr (``finalize``)."""
    if isinstance(value, _PLAIN) or (isinstance(value, list | tuple | dict) and _plain(value)):
        return value
    kind = "a function" if callable(value) else "an object"
    raise Unprintable(f"prints {kind} ({type(value).__name__}), not a value")


def _plain(value: list[Any] | tuple[Any, ...] | dict[Any, Any]) -> bool:
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
        elif not isinstance(item, _PLAIN):
            return False
    return True


def scrub(text: str) -> str:
    """``text`` without reprs that carry a heap address."""
    return _ADDRESS.sub("", text) if " at 0x" in text else text


class _Lenient(dict[str, Any]):
    """A trial run's context: every name is defined, as a lenient undefined."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> Any:
        return ChainableUndefined(name=key)


class Sandbox:
    """Two hardened environments (text, and autoescaped HTML) and a byte-bounded cache."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._envs = {False: HardenedSandbox(False), True: HardenedSandbox(True)}
        self._cache: OrderedDict[tuple[str, bool], tuple[jinja2.Template, int]] = OrderedDict()
        self._cache_bytes = cache_bytes
        self.cached_bytes = 0
        self.part = ""  # the part being compiled or rendered, to name it if the timer fires
        self.cpu_deadline: float | None = None  # thread CPU time to stop at (``run_here``)

    def compile(self, job: Job) -> dict[str, jinja2.Template] | Outcome:
        """Every part of ``job`` compiled, or the refusal of the first that does not compile.

        Fresh compilations are not cached yet: ``keep`` does that once the job is
        over, so a timer firing mid-job cannot leave the cache half updated.
        """
        out: dict[str, jinja2.Template] = {}
        for part, source, html in job.parts:
            self.part = part
            hit = self._cache.get((source, html))
            if hit is not None:
                self._cache.move_to_end((source, html))
                out[part] = hit[0]
                continue
            env = self._envs[html]
            try:
                raw = env.compile(source, raw=True)
                code = compile(raw, "<template>", "exec")
            except jinja2.TemplateSyntaxError as exc:
                problem = f"line {exc.lineno}: {exc.message}"
                return Outcome.refused("invalid", f"template {job.name!r} {part}: {problem}",
                                       ((part, problem),))  # fmt: skip
            except MemoryError:
                return _over(job, part, "memory")
            except (RecursionError, SyntaxError, ValueError) as exc:  # nesting too deep
                problem = f"does not compile: {type(exc).__name__}"
                return Outcome.refused("invalid", f"template {job.name!r} {part} {problem}",
                                       ((part, problem),))  # fmt: skip
            compiled = env.template_class.from_code(env, code, env.make_globals(None), None)
            compiled._herald_cost = 4096 + 6 * (len(source) + len(raw))  # type: ignore[attr-defined]
            out[part] = compiled
        return out

    def keep(self, job: Job, compiled: Mapping[str, jinja2.Template]) -> None:
        for part, source, html in job.parts:
            key = (source, html)
            if key in self._cache or part not in compiled:
                continue
            cost: int = getattr(compiled[part], "_herald_cost", 0)
            if cost > self._cache_bytes // 4:
                continue  # one huge template must not flush everything else
            self._cache[key] = (compiled[part], cost)
            self.cached_bytes += cost
            while self.cached_bytes > self._cache_bytes:
                _, (_, dropped) = self._cache.popitem(last=False)
                self.cached_bytes -= dropped

    def render(self, job: Job, compiled: Mapping[str, jinja2.Template]) -> Outcome:
        """Render every part within the output budget; the CPU budget is the caller's."""
        for env in self._envs.values():
            env.budget = job.budget
        room = job.budget.max_output
        missing: list[str] = []
        texts: dict[str, str] = {}
        for part, _, _ in job.parts:
            self.part = part
            try:
                if job.data is None:
                    text = self._trial(compiled[part], room)
                else:
                    text = self._passes(compiled[part], job.data, room, missing)
            except OverLimit as exc:
                return _over(job, part, exc.limit)
            except MemoryError:
                return _over(job, part, "memory")
            except _TrialFailed:
                text = ""
            except SecurityError as exc:
                return _refuse(job, "unsafe", part, str(exc))
            except Unprintable as exc:
                return _refuse(job, "unsafe", part, str(exc))
            except Exception as exc:  # the sandbox's range limit, a filter's TypeError, ...
                return _refuse(job, "failed", part, f"{type(exc).__name__}: {exc}")
            text = scrub(text)
            room -= _size(text)
            texts[part] = text
        return Outcome(texts, tuple(dict.fromkeys(missing)))

    def _passes(self, compiled: jinja2.Template, data: Mapping[str, Any], room: int,
                missing: list[str]) -> str:  # fmt: skip
        # Each pass names one missing variable; a lenient stand-in takes its place so
        # the next pass finds the next one, and the client hears of all of them at once.
        context = dict(data)
        for _ in range(MAX_PASSES):
            try:
                return self._stream(compiled.generate(context), room)
            except jinja2.UndefinedError as exc:
                top = _UNDEFINED.match(str(exc))
                if top is None or top.group(1) in context:
                    attribute = _NO_ATTRIBUTE.search(str(exc))
                    missing.append(attribute.group(1) if attribute else str(exc))
                    return ""
                missing.append(top.group(1))
                context[top.group(1)] = ChainableUndefined(name=top.group(1))
        raise RuntimeError("too many missing variables")

    def _trial(self, compiled: jinja2.Template, room: int) -> str:
        lenient = _Lenient(compiled.globals)
        try:
            chunks = compiled.root_render_func(compiled.new_context(lenient, True))
            return self._stream(chunks, room)
        except (OverLimit, MemoryError):
            raise
        except Exception:
            raise _TrialFailed from None

    def _stream(self, chunks: Iterator[str], room: int) -> str:
        """Join ``chunks``, refusing as soon as they pass ``room`` bytes (or the CPU deadline)."""
        out: list[str] = []
        length = 0
        deadline = self.cpu_deadline
        for chunk in chunks:
            length += len(chunk)
            if length > room:  # characters: each is at least one byte
                raise OverLimit("output")
            if deadline is not None and time.thread_time() > deadline:
                raise OverLimit("cpu")
            out.append(chunk)
        text = "".join(out)
        if length * 4 > room and _size(text) > room:
            raise OverLimit("output")
        return text


class _TrialFailed(Exception):
    pass


def run_here(sandbox: Sandbox, job: Job) -> Outcome:
    """Compile and render in this thread, for a template Herald ships (``templates.py``).

    No timer or address-space limit here: the CPU limit is checked against this
    thread's CPU time as each piece of output is produced, and the output limit
    as it grows; memory is bounded by the data (the request body limit) and the
    output. Not thread-safe: the caller holds a lock.
    """
    compiled = sandbox.compile(job)
    if isinstance(compiled, Outcome):
        return compiled
    sandbox.cpu_deadline = time.thread_time() + job.budget.cpu_ms / 1000
    try:
        return sandbox.render(job, compiled)
    finally:
        sandbox.cpu_deadline = None
        sandbox.keep(job, compiled)


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _over(job: Job, part: str, limit: Limit, compiling: bool = False) -> Outcome:
    what = job.budget.describe(limit, compiling)
    return Outcome.refused(limit, f"template {job.name!r} {part}: over {what}",
                           ((part, f"is over {what}"),))  # fmt: skip


def _refuse(job: Job, kind: Kind, part: str, problem: str) -> Outcome:
    problem = scrub(problem)
    return Outcome.refused(kind, f"template {job.name!r} {part}: {problem}", ((part, problem),))


# -- the render process ----------------------------------------------------------------


class Wire:
    """Pickled values, each after its length (4 bytes), over a socket; both ends use it.

    ``take`` returns ``(value,)`` once a whole value has arrived, else None,
    and ``fill`` reads what there is: most answers arrive in one read.
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
        value = pickle.loads(memoryview(self._buffer)[self.HEADER.size : end])
        del self._buffer[:end]
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
    compiled: dict[str, jinja2.Template] | Outcome = {}
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
        outcome = _over(job, sandbox.part, "cpu", compiling=compiling)
    if isinstance(compiled, dict):
        sandbox.keep(job, compiled)
    return outcome


#: A render process replaces itself after this many jobs, or once its address space has
#: grown by half its memory budget beyond its cache (what a MemoryError or the allocator
#: left behind), so a long life never eats into the budget of later jobs.
MAX_JOBS = 10_000


def main(fd: int) -> None:
    """Entry point of a render process (``render_pool._Process``): serve on socket ``fd``."""
    serve(Wire(socket.socket(fileno=fd)))


def serve(wire: Wire) -> None:
    """The render process: take a ``Job``, send back its ``Outcome``, until the socket closes.

    Before each job the address space is capped at what the process holds
    then plus the job's memory budget: RLIMIT_AS turns an allocation past it
    into a MemoryError.
    """
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
    wire.send(READY)
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
            outcome = _over(job, sandbox.part, "memory")
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

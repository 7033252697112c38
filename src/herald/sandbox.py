"""The sandbox a template runs in: hardened Jinja2, and what a render is asked and answers.

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
an allocation this module did not foresee) is held by the process around it
(``render_process.py``): CPU timers, an address-space limit, and the pool's
wall-clock timeout (``render_pool.py``).

A ``Job`` is answered with an ``Outcome`` made of plain values, which crosses
the socket between the processes as it is; ``templates.py`` turns a refusal
into its typed error.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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


class HardenedSandbox(SandboxedEnvironment):
    """``SandboxedEnvironment`` that never folds constants and checks ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(
            undefined=StrictUndefined, autoescape=autoescape, optimized=False, finalize=_printable
        )

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        else:
            _check_repeat(left, right, _MEMORY.limit)
        return super().call_binop(context, operator, left, right)


class _Memory(threading.local):
    """The memory budget of the job this thread renders, in bytes (for ``call_binop``)."""

    limit = Budget().memory_mb * MIB


_MEMORY = _Memory()


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


#: Each part's compiled template, and what keeping it would cost the cache (0: kept already).
Compiled = dict[str, tuple[jinja2.Template, int]]


class Sandbox:
    """Two hardened environments (text, and autoescaped HTML) and a byte-bounded cache.

    Thread-safe: the API renders built-in templates from several threads.
    """

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self._envs = {False: HardenedSandbox(False), True: HardenedSandbox(True)}
        self._cache: OrderedDict[tuple[str, bool], tuple[jinja2.Template, int]] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cache_lock = threading.Lock()
        self.cached_bytes = 0
        self.part = ""  # in a render process: the part at work, named if the timer fires

    def compile(self, job: Job) -> Compiled | Outcome:
        """Every part of ``job`` compiled, or the refusal of the first that does not compile.

        Fresh compilations are not cached yet: ``keep`` does that once the job is
        over, so a timer firing mid-job cannot leave the cache half updated.
        """
        out: Compiled = {}
        for part, source, html in job.parts:
            self.part = part
            with self._cache_lock:
                hit = self._cache.get((source, html))
                if hit is not None:
                    self._cache.move_to_end((source, html))
            if hit is not None:
                out[part] = (hit[0], 0)
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
                return over(job, part, "memory")
            except (RecursionError, SyntaxError, ValueError) as exc:  # nesting too deep
                problem = f"does not compile: {type(exc).__name__}"
                return Outcome.refused("invalid", f"template {job.name!r} {part} {problem}",
                                       ((part, problem),))  # fmt: skip
            compiled = env.template_class.from_code(env, code, env.make_globals(None), None)
            out[part] = (compiled, 4096 + 6 * (len(source) + len(raw)))
        return out

    def keep(self, job: Job, compiled: Compiled) -> None:
        """Cache what ``compile`` compiled for ``job``, dropping the least recently used."""
        for part, source, html in job.parts:
            template, cost = compiled.get(part, (None, 0))
            if template is None or not cost or cost > self._cache_bytes // 4:
                continue  # kept already, or so big it would flush everything else
            with self._cache_lock:
                if (source, html) in self._cache:
                    continue
                self._cache[(source, html)] = (template, cost)
                self.cached_bytes += cost
                while self.cached_bytes > self._cache_bytes:
                    _, (_, dropped) = self._cache.popitem(last=False)
                    self.cached_bytes -= dropped

    def render(self, job: Job, compiled: Compiled, cpu_deadline: float | None = None) -> Outcome:
        """Render every part within the output budget, and by ``cpu_deadline`` (this thread's
        CPU time, checked as output is produced) if one is given."""
        _MEMORY.limit = job.budget.memory_mb * MIB
        room = job.budget.max_output
        missing: list[str] = []
        texts: dict[str, str] = {}
        for part, _, _ in job.parts:
            self.part = part
            template = compiled[part][0]
            try:
                if job.data is None:
                    text = self._trial(template, room, cpu_deadline)
                else:
                    text = self._passes(template, job.data, room, missing, cpu_deadline)
            except OverLimit as exc:
                return over(job, part, exc.limit)
            except MemoryError:
                return over(job, part, "memory")
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
                missing: list[str], cpu_deadline: float | None) -> str:  # fmt: skip
        # Each pass names one missing variable; a lenient stand-in takes its place so
        # the next pass finds the next one, and the client hears of all of them at once.
        context = dict(data)
        for _ in range(MAX_PASSES):
            try:
                chunks = compiled.root_render_func(compiled.new_context(context))
                return _stream(chunks, room, cpu_deadline)
            except jinja2.UndefinedError as exc:
                top = _UNDEFINED.match(str(exc))
                if top is None or top.group(1) in context:
                    attribute = _NO_ATTRIBUTE.search(str(exc))
                    missing.append(attribute.group(1) if attribute else str(exc))
                    return ""
                missing.append(top.group(1))
                context[top.group(1)] = ChainableUndefined(name=top.group(1))
        raise RuntimeError("too many missing variables")

    def _trial(self, compiled: jinja2.Template, room: int, cpu_deadline: float | None) -> str:
        lenient = _Lenient(compiled.globals)
        try:
            chunks = compiled.root_render_func(compiled.new_context(lenient, True))
            return _stream(chunks, room, cpu_deadline)
        except (OverLimit, MemoryError):
            raise
        except Exception:
            raise _TrialFailed from None


class _TrialFailed(Exception):
    pass


def _stream(chunks: Iterator[str], room: int, cpu_deadline: float | None) -> str:
    """Join ``chunks``, refusing as soon as they pass ``room`` bytes (or the CPU deadline)."""
    out: list[str] = []
    keep = out.append
    length = 0
    for chunk in chunks:
        length += len(chunk)
        if length > room:  # characters: each is at least one byte
            raise OverLimit("output")
        keep(chunk)
        # Reading the thread's CPU time is a system call: every 16 pieces is enough.
        if cpu_deadline is not None and not len(out) & 15 and _render_time() > cpu_deadline:
            raise OverLimit("cpu")
    text = "".join(out)
    if length * 4 > room and _size(text) > room:
        raise OverLimit("output")
    return text


class _Collections(threading.local):
    """CPU time this thread spent collecting garbage, which ``run_here`` does not count: a
    full collection of the API's heap takes about 100 ms of CPU on the dev box, and twice
    in 25,000 signups under load one made a built-in subject "over its CPU limit"."""

    started = 0.0
    spent = 0.0


_COLLECTIONS = _Collections()


def _collecting(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _COLLECTIONS.started = time.thread_time()
    else:
        _COLLECTIONS.spent += time.thread_time() - _COLLECTIONS.started


gc.callbacks.append(_collecting)


def _render_time() -> float:
    """This thread's CPU time, less what it spent collecting garbage."""
    return time.thread_time() - _COLLECTIONS.spent


def run_here(sandbox: Sandbox, job: Job) -> Outcome:
    """Compile and render in this thread, for a template Herald ships (``templates.py``).

    No timer or address-space limit here: the CPU limit is checked against this
    thread's CPU time as each piece of output is produced, and the output limit
    as it grows; memory is bounded by the data (the request body limit) and the
    output.
    """
    compiled = sandbox.compile(job)
    if isinstance(compiled, Outcome):
        return compiled
    try:
        return sandbox.render(job, compiled, _render_time() + job.budget.cpu_ms / 1000)
    finally:
        sandbox.keep(job, compiled)


def _size(text: str) -> int:
    """UTF-8 bytes of ``text``."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def over(job: Job, part: str, limit: Limit, compiling: bool = False) -> Outcome:
    """The ``Outcome`` of ``job`` going over ``limit`` in ``part``."""
    what = job.budget.describe(limit, compiling)
    return Outcome.refused(limit, f"template {job.name!r} {part}: over {what}",
                           ((part, f"is over {what}"),))  # fmt: skip


def _refuse(job: Job, kind: Kind, part: str, problem: str) -> Outcome:
    problem = scrub(problem)
    return Outcome.refused(kind, f"template {job.name!r} {part}: {problem}", ((part, problem),))

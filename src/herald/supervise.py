"""Background loops under supervision: a failure is logged, backed off and restarted.

A loop that ends on an exception nobody expected (a bug, a driver error of
a new kind) must not end silently while health still says "running": the
sweeper, the flusher or a listener gone means leases never return, outcomes
never commit, workers never wake. ``Supervisor.run`` runs a loop's body,
restarts it after a failure with a growing pause, and keeps its
``Liveness`` (state, restarts, last error, last success) for ``/api/health``.

A body reports progress by calling ``live.ok()``; a body that fails
``CRASH_LOOP`` times in a row without progress in between is crash-looping,
and health is not healthy while it is. Usage::

    loops = Supervisor()

    async def sweep(live: Liveness) -> None:
        while True:
            await store.sweep(5)
            live.ok()
            await asyncio.sleep(5)

    task = loops.spawn("sweeper", sweep)
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

log = structlog.get_logger("herald.supervise")

#: Failures in a row, with no progress in between, that make a loop crash-looping.
CRASH_LOOP = 3


class LoopState(enum.StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"  # failed, waiting out its backoff
    CRASH_LOOPING = "crash-looping"  # failed CRASH_LOOP times in a row
    STOPPED = "stopped"  # returned, or cancelled on shutdown
    DEAD = "dead"  # ended by something that is not an Exception (never restarted)


class Liveness:
    """What health says about one loop."""

    def __init__(self, name: str, clock: Callable[[], float]) -> None:
        self.name = name
        self.state = LoopState.RUNNING
        self.restarts = 0
        self.failures = 0  # in a row, since the last progress
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self._clock = clock

    def ok(self) -> None:
        """The loop made progress: its failures so far were passing trouble."""
        self.last_success_at = self._clock()
        self.failures = 0
        if self.state is not LoopState.RUNNING:
            self.state = LoopState.RUNNING

    @property
    def healthy(self) -> bool:
        return self.state not in (LoopState.CRASH_LOOPING, LoopState.DEAD)

    def describe(self) -> str:
        """One line for health's ``services`` map."""
        if self.state is LoopState.RUNNING and not self.restarts:
            return self.state.value
        text = f"{self.state.value} ({self.restarts} restarts"
        if self.last_error:
            text += f"; last error: {self.last_error}"
        return text + ")"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "restarts": self.restarts,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "lastSuccessAt": self.last_success_at,
        }


Body = Callable[[Liveness], Awaitable[None]]


class Supervisor:
    """The loops of one process, each restarted after a failure."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.loops: dict[str, Liveness] = {}
        self._clock = clock
        self._backoff = backoff
        self._max_backoff = max_backoff

    @property
    def healthy(self) -> bool:
        return all(live.healthy for live in self.loops.values())

    def spawn(self, name: str, body: Body) -> asyncio.Task[None]:
        """Run ``body`` under supervision in a task of its own."""
        return asyncio.get_running_loop().create_task(self.run(name, body), name=f"herald-{name}")

    async def run(self, name: str, body: Body) -> None:
        """Run ``body`` until it returns, restarting it whenever it fails."""
        live = self.loops.get(name)
        if live is None:
            live = self.loops[name] = Liveness(name, self._clock)
        live.state = LoopState.RUNNING
        delay = self._backoff
        while True:
            try:
                await body(live)
            except asyncio.CancelledError:
                live.state = LoopState.STOPPED
                raise
            except Exception as exc:
                if live.failures == 0:
                    delay = self._backoff  # it made progress since its last failure
                live.failures += 1
                live.restarts += 1
                live.last_error = f"{type(exc).__name__}: {exc}"[:300]
                live.last_error_at = self._clock()
                crash_looping = live.failures >= CRASH_LOOP
                live.state = LoopState.CRASH_LOOPING if crash_looping else LoopState.RESTARTING
                log.error("loop_crashed", loop=name, error=live.last_error, restarts=live.restarts,
                          failures=live.failures, retry_in=round(delay, 3),
                          exc_info=exc)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                log.info("loop_restarted", loop=name, restarts=live.restarts)
                if not crash_looping:
                    live.state = LoopState.RUNNING
                continue
            except BaseException as exc:
                live.state = LoopState.DEAD
                live.last_error = f"{type(exc).__name__}: {exc}"[:300]
                live.last_error_at = self._clock()
                log.critical("loop_died", loop=name, error=live.last_error)
                raise
            live.state = LoopState.STOPPED
            log.info("loop_stopped", loop=name)
            return

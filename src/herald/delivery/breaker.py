"""A circuit breaker per provider (seed 004): closed → open → half-open → closed.

Closed: calls go through; ``threshold`` consecutive failures open it. Open: no
call reaches the provider for ``reset_after`` seconds. Half-open: one trial
call; success closes the breaker, failure opens it again. A permanent error
(a bad address) says the provider is up, so it counts as a success.

Calls go through ``async with breaker.call(max_wait) as call`` (or, on the
chain's hot path, ``admit`` and ``end`` in a ``try``/``finally``). The block
always ends the call, whatever escapes it (a cancellation, a store outage
in the pacer, a bug): a trial that was neither marked ``succeeded`` nor
``failed`` is given back, so the breaker can never stay half-open for ever.
While the trial is out, other calls wait for its verdict (up to ``max_wait``
and the reset time) rather than being turned away at once only to come
straight back.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from ..errors import Throttled

#: When a call that waited out its time for a trial's verdict may come back.
BUSY_RETRY = 1.0
_AWAITING = "circuit half-open: its one trial call is still out"
#: The deferral's cause when a breaker turns a call away (``models.DEFER_CAUSES``).
OPEN_CAUSE = "breaker_open"


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class Breaker:
    def __init__(
        self,
        name: str,
        threshold: int = 10,
        reset_after: float = 30.0,
        on_change: Callable[[Breaker, State], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.reset_after = reset_after
        self.failures = 0
        self._state = State.CLOSED
        self._opened_at = 0.0
        self._trial = False
        self._verdict: asyncio.Event | None = None  # set when the trial in flight ends
        self._on_change = on_change
        self._clock = clock

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.reset_after:
            self._set(State.HALF_OPEN)
        return self._state

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a trial call through."""
        if self.state is not State.OPEN:
            return 0.0
        return max(0.0, self.reset_after - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """May a call go to the provider now? In half-open, only one at a time."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self._trial:
            self._trial = True
            return True
        return False

    @property
    def on_trial(self) -> bool:
        """Is a half-open trial call out now?"""
        return self._trial and self._state is State.HALF_OPEN

    @property
    def closed(self) -> bool:
        """Closed: a call needs no admission (no trial to take, nothing to wait for)."""
        return self._state is State.CLOSED

    @asynccontextmanager
    async def call(self, max_wait: float = 0.0) -> AsyncIterator[Call]:
        """Admit one call, or raise ``Throttled``; see the module docstring."""
        trial = await self.admit(max_wait)
        call = Call()
        try:
            yield call
        finally:
            self.end(trial, call.outcome)

    async def admit(self, max_wait: float) -> bool:
        """Admit one call, or raise ``Throttled``; True when it is the half-open trial.

        The caller must then ``end`` the call, whatever happens (``call()`` does:
        the chain's hot path inlines it, the generator's frame costing more
        than the rest of an admission).
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + min(max_wait, self.reset_after)
        while True:
            state = self.state
            if state is State.CLOSED:
                return False
            if state is State.OPEN:
                raise self._open()
            if not self._trial:
                self._trial = True
                return True
            left = end - loop.time()
            if left <= 0:
                raise Throttled(self.name, BUSY_RETRY, _AWAITING, OPEN_CAUSE)
            if self._verdict is None:
                self._verdict = asyncio.Event()
            try:
                async with asyncio.timeout(left):
                    await self._verdict.wait()
            except TimeoutError:
                raise Throttled(self.name, BUSY_RETRY, _AWAITING, OPEN_CAUSE) from None

    def _open(self) -> Throttled:
        """Why nothing went out, in the words a notification's history keeps."""
        wait = self.retry_in()
        trial = wall_clock(time.time() + wait)
        failures = f"{self.failures} consecutive failure{'s' if self.failures != 1 else ''}"
        reason = f"circuit open after {failures}; next trial at {trial}"
        return Throttled(self.name, wait, reason, OPEN_CAUSE)

    def end(self, trial: bool, outcome: bool | None) -> None:
        """End an admitted call: True it succeeded, False it failed, None it never went out."""
        if outcome is True:
            if self.failures or trial or self._state is not State.CLOSED:
                self.succeeded()
        elif outcome is False:
            self.failed()
        elif trial:
            self.release()

    def release(self) -> None:
        """Give back a half-open trial that was never used (the call did not go out)."""
        self._end_trial()

    def _end_trial(self) -> None:
        self._trial = False
        if self._verdict is not None:
            self._verdict.set()
            self._verdict = None

    def succeeded(self) -> None:
        self.failures = 0
        if self._state is not State.CLOSED:
            self._set(State.CLOSED)
        self._end_trial()

    def failed(self) -> None:
        self.failures += 1
        if self._state is State.HALF_OPEN or (
            self._state is State.CLOSED and self.failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._set(State.OPEN)
        self._end_trial()

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self, state)


def wall_clock(at: float) -> str:
    """``2026-05-01T12:00:00Z``: a moment as a notification's history names it."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Call:
    """One admitted call; the chain marks how it went, if it went out at all."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome: bool | None = None

    def succeeded(self) -> None:
        self.outcome = True

    def failed(self) -> None:
        self.outcome = False


class Breakers:
    """A provider's breakers: one for the provider, or one per destination.

    A webhook or chat provider's failures belong to one receiver, so one
    tenant's broken endpoint must not open the breaker for everybody: such
    providers name a destination (``Provider.destination``) and get a breaker
    each, named ``provider:destination``.
    """

    MAX_TRACKED = 10_000  # destinations; healthy ones are forgotten beyond this

    def __init__(
        self,
        provider: str,
        threshold: int,
        reset_after: float,
        on_change: Callable[[Breaker, State], None] | None = None,
    ) -> None:
        self.provider = provider
        self.threshold = threshold
        self.reset_after = reset_after
        self.on_change = on_change
        self._by_key: dict[str, Breaker] = {}

    def get(self, destination: str | None = None) -> Breaker:
        key = self.provider if destination is None else f"{self.provider}:{destination}"
        breaker = self._by_key.get(key)
        if breaker is None:
            if len(self._by_key) >= self.MAX_TRACKED:
                self._forget_healthy()
            breaker = Breaker(key, self.threshold, self.reset_after, self.on_change)
            self._by_key[key] = breaker
        return breaker

    def _forget_healthy(self) -> None:
        for key, breaker in list(self._by_key.items()):
            if breaker.failures == 0 and breaker.state is State.CLOSED:
                del self._by_key[key]

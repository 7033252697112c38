"""A circuit breaker per provider (seed 004): closed → open → half-open → closed.

Closed: calls go through; ``threshold`` consecutive failures open it. Open: no
call reaches the provider for ``reset_after`` seconds. Half-open: one trial
call; success closes the breaker, failure opens it again. A permanent error
(a bad address) says the provider is up, so it counts as a success.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


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

    def release(self) -> None:
        """Give back a half-open trial that was never used (the call did not go out)."""
        self._trial = False

    def succeeded(self) -> None:
        self._trial = False
        self.failures = 0
        if self._state is not State.CLOSED:
            self._set(State.CLOSED)

    def failed(self) -> None:
        self._trial = False
        self.failures += 1
        if self._state is State.HALF_OPEN or (
            self._state is State.CLOSED and self.failures >= self.threshold
        ):
            self._opened_at = self._clock()
            self._set(State.OPEN)

    def _set(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(self, state)


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

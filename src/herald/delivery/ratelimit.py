"""Per-provider pacing: a token bucket shared by every worker process, and pauses.

``HERALD_RATE_LIMITS`` (``twilio=10,smtp=50``: calls per second) gives a
provider a bucket that lives in the store, so the limit holds however many
worker processes share it; each process takes tokens in small lots. A
provider's 429 with ``Retry-After`` pauses it for that long, here at once and
through the store for the other processes. Throttled sends wait, in priority
order; a send that would wait past its budget's ``wait_limit()`` is handed
back (``Throttled``) so the worker can requeue it instead of holding its
lease.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from ..budget import Budget, Lanes
from ..errors import StoreUnavailable, Throttled
from ..store.base import Store
from .breaker import wall_clock

log = structlog.get_logger("herald.ratelimit")


class Pacer:
    def __init__(
        self, store: Store, provider: str, rate: float | None, burst: float | None = None
    ) -> None:
        self.store = store
        self.provider = provider
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._paused_until = 0.0
        # One caller at a time asks the shared bucket, highest priority first: the
        # others wait here in line rather than each polling the store on its own.
        self._turn = Lanes(1)

    def free(self) -> bool:
        """May a call go out now without asking anyone: no rate set, no pause in force?

        The common case, checked without awaiting ``acquire`` (an await per send
        that has nothing to wait for).
        """
        return self.rate is None and (not self._paused_until or self._paused_until <= time.time())

    async def acquire(self, budget: Budget) -> None:
        """Return when a call may go out; raise ``Throttled`` if that is too far off.

        Waiting is bounded by ``budget.wait_limit()``; a CRITICAL send goes
        ahead of every LOW one still waiting for a token.
        """
        end = time.monotonic() + budget.wait_limit()
        await self._hold_off(end)
        if self.rate is None:
            return
        try:
            async with asyncio.timeout(end - time.monotonic()):
                await self._turn.acquire(budget.priority)
        except TimeoutError:
            raise Throttled(self.provider, self._queued_wait(), self._reached()) from None
        try:
            while True:
                await self._hold_off(end)
                try:
                    granted, wait = await self.store.take_tokens(
                        self.provider, self.rate, self.burst, 1
                    )
                except StoreUnavailable as exc:
                    # Nothing went out: the notification waits for the store, unspent.
                    log.warning("pacer_store_unavailable", provider=self.provider, error=str(exc))
                    raise Throttled(
                        self.provider, 1.0, "cannot reach its rate limit", "store_unavailable"
                    ) from exc
                if granted:
                    return
                if time.monotonic() + wait > end:
                    raise Throttled(self.provider, max(wait, self._queued_wait()), self._reached())
                await asyncio.sleep(max(wait, 0.001))
        finally:
            self._turn.release()

    async def _hold_off(self, end: float) -> None:
        """Sit out the provider's pause; raise ``Throttled`` if it outlasts ``end``."""
        pause = self._paused_until - time.time()
        while pause > 0:
            if time.monotonic() + pause > end:
                until = wall_clock(self._paused_until)
                raise Throttled(self.provider, pause, f"asked to hold off until {until}")
            await asyncio.sleep(pause)
            pause = self._paused_until - time.time()

    def _reached(self) -> str:
        return f"rate limit reached ({self.rate or 0:g}/s)"

    def _queued_wait(self) -> float:
        """Roughly how long the callers already in line will take."""
        return max(1.0, (self._turn.waiting + 1) / (self.rate or 1.0))

    async def pause(self, seconds: float) -> None:
        """The provider asked us to hold off (429/503 with Retry-After)."""
        until = time.time() + seconds
        self._paused_until = max(self._paused_until, until)
        if self.rate is not None:
            try:
                await self.store.pause_provider(self.provider, until)
            except StoreUnavailable as exc:  # held here at least; the others learn later
                log.warning("pause_unshared", provider=self.provider, error=str(exc))

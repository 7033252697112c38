"""Per-provider pacing: a token bucket shared by every worker process, and pauses.

``HERALD_RATE_LIMITS`` (``twilio=10,smtp=50``: calls per second) gives a
provider a bucket that lives in the store, so the limit holds however many
worker processes share it; each process takes tokens in small lots. A
provider's 429 with ``Retry-After`` pauses it for that long, here at once and
through the store for the other processes. Throttled sends wait; a send that
would wait longer than ``max_wait`` is handed back (``Throttled``) so the
worker can requeue it instead of holding its lease.
"""

from __future__ import annotations

import asyncio
import time

from ..store.base import Store


class Throttled(Exception):
    def __init__(self, provider: str, wait: float) -> None:
        super().__init__(f"{provider} is rate limited for {wait:.1f}s")
        self.provider = provider
        self.wait = wait


class Pacer:
    def __init__(
        self, store: Store, provider: str, rate: float | None, burst: float | None = None
    ) -> None:
        self.store = store
        self.provider = provider
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self, max_wait: float) -> None:
        """Return when a call may go out; raise ``Throttled`` if that is too far off."""
        deadline = time.time() + max_wait
        while True:
            pause = self._paused_until - time.time()
            if pause > 0:
                if time.time() + pause > deadline:
                    raise Throttled(self.provider, pause)
                await asyncio.sleep(pause)
                continue
            if self.rate is None:
                return
            async with self._lock:  # one bucket request at a time per process
                granted, wait = await self.store.take_tokens(
                    self.provider, self.rate, self.burst, 1
                )
            if granted:
                return
            if time.time() + wait > deadline:
                raise Throttled(self.provider, wait)
            await asyncio.sleep(max(wait, 0.001))

    async def pause(self, seconds: float) -> None:
        """The provider asked us to hold off (429/503 with Retry-After)."""
        until = time.time() + seconds
        self._paused_until = max(self._paused_until, until)
        if self.rate is not None:
            await self.store.pause_provider(self.provider, until)

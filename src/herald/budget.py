"""An attempt's budget: a deadline taken from its lease, and its priority.

A claim holds its row for ``lease_seconds``; after that the sweeper hands the
row to another worker, and a send still running here would go out twice. So
every attempt ends by a deadline, the claim's ``claimed_at`` plus the lease
less a margin to record the outcome, and each wait inside it (the pacer, a
breaker's trial, a provider's connection pool) is bounded by what is left.
Waits may spend only the first half of the budget: the second half is kept
for the provider call itself, so a send that finally got its turn is not cut
off the moment it starts.

The priority orders those waits (``Lanes``): a CRITICAL notification claimed
behind a thousand LOW ones is next in line, not the thousand-and-first.

A provider reads the budget of the attempt it serves with ``current()``
(a context variable), so the provider contract stays ``send(message)``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from contextvars import ContextVar, Token

from .models import Priority

_CURRENT: ContextVar[Budget | None] = ContextVar("herald_budget", default=None)


class Budget:
    """One attempt's time; ``with budget:`` makes it the one ``current()`` returns."""

    __slots__ = ("_clock", "_token", "calling", "deadline", "priority", "total")

    def __init__(
        self,
        deadline: float,
        total: float,
        priority: Priority = Priority.MEDIUM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.deadline = deadline
        self.total = total
        self.priority = priority
        self.calling: str | None = None  # the provider a request may have gone to
        self._clock = clock
        self._token: Token[Budget | None] | None = None

    @classmethod
    def lasting(cls, seconds: float, priority: Priority = Priority.MEDIUM) -> Budget:
        """A budget of ``seconds`` from now (tests, and callers without a lease)."""
        return cls(time.time() + seconds, seconds, priority)

    def remaining(self) -> float:
        return max(0.0, self.deadline - self._clock())

    def wait_limit(self) -> float:
        """How long a wait may still take: up to the budget's half-way point."""
        return max(0.0, self.remaining() - self.total / 2)

    @property
    def outgoing(self) -> bool:
        """Could a request have reached a provider? Decides retry or deferral when cut."""
        return self.calling is not None

    def applied(self) -> Budget:
        """Make this the budget ``current()`` returns inside the block (``with``)."""
        return self

    # A plain context manager, not a generator-based one: entered once per attempt,
    # the generator's frame and wrapper cost more than setting the variable itself.
    def __enter__(self) -> Budget:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
            self._token = None


def current() -> Budget | None:
    """The budget of the attempt being made, if any."""
    return _CURRENT.get()


class Lanes:
    """A semaphore that serves its waiters by priority, then in arrival order.

    ``asyncio.Semaphore`` is first come, first served: behind a thousand
    waiting LOW sends, a CRITICAL one would wait for all of them.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.waiting = 0

    async def acquire(self, priority: int = Priority.MEDIUM) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-int(priority), next(self._order), future))
        self.waiting += 1
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self.release()  # granted as we were cancelled: pass it on
            else:
                future.cancel()
                self.waiting -= 1
            raise

    def release(self) -> None:
        while self._waiters:
            *_, future = heapq.heappop(self._waiters)
            if not future.done():
                self.waiting -= 1
                future.set_result(None)
                return
        self._free += 1

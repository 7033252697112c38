"""A delivery worker on the memory store, with a provider and a clock the test holds.

``Rig`` wires what the engine wires (one chain per channel: one provider behind its
breaker and pacer) but every part is the test's: ``Pigeon`` answers as told, the
breaker and the store read ``Clock``, and ``WatchedStore`` counts claims and can
fail or stall the calls a test is about.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from herald.delivery.breaker import Breaker, Breakers, State
from herald.delivery.chain import Chain, Route
from herald.delivery.ratelimit import Pacer
from herald.delivery.worker import Worker
from herald.errors import StoreUnavailable
from herald.models import (
    AuditEntry,
    Channel,
    Claim,
    NewNotification,
    Notification,
    Outcome,
    Priority,
    Status,
)
from herald.providers.base import Message, Provider, Receipt
from herald.store.memory import MemoryStore
from tests.conftest import make_settings


class Clock:
    """POSIX seconds under the test's hand: frozen, or ``running`` at the event loop's pace.

    The worker cuts an attempt with a loop timer set from this clock's reading, so a
    test in which both the lease (this clock) and the cut (the loop) must pass runs
    the clock at the loop's pace; ``advance`` jumps it either way.

    It starts in the past: ids carry their creation time and never step back in a
    process, so a clock ahead of the real one would date the ids of later tests.
    """

    def __init__(self, now: float = 1_700_000_000.0, *, running: bool = False) -> None:
        self._at = now
        self._since = time.monotonic() if running else None

    def __call__(self) -> float:
        if self._since is None:
            return self._at
        return self._at + (time.monotonic() - self._since)

    def advance(self, seconds: float) -> None:
        self._at += seconds


class Pigeon(Provider):
    """A provider that answers at once unless told to hold a call or fail it.

    ``hold_next`` makes the next calls wait for an event the test sets (or never
    does), ``hold`` every call to one recipient; ``fail`` makes a recipient's calls
    raise. Cancelled calls are noted:
    that is how a cut or a shutdown shows on the provider's side.
    """

    name = "pigeon"
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)

    def __init__(self) -> None:
        self.calls: list[Message] = []
        self.cancelled: list[str] = []
        self.receipts: dict[str, list[str]] = {}
        self.failures: dict[str, BaseException] = {}
        self._gates: deque[asyncio.Event] = deque()
        self._held: dict[str, asyncio.Event] = {}

    def hold_next(self, calls: int = 1) -> asyncio.Event:
        """The next ``calls`` calls wait until the returned event is set."""
        gate = asyncio.Event()
        self._gates.extend([gate] * calls)
        return gate

    def hold(self, recipient: str) -> asyncio.Event:
        """Calls to ``recipient`` wait until the returned event is set."""
        return self._held.setdefault(recipient, asyncio.Event())

    def fail(self, recipient: str, error: BaseException) -> None:
        self.failures[recipient] = error

    async def send(self, message: Message) -> Receipt:
        self.calls.append(message)
        gate = self._gates.popleft() if self._gates else self._held.get(message.recipient)
        if gate is not None:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(message.id)
                raise
        error = self.failures.get(message.recipient)
        if error is not None:
            raise error
        receipt = Receipt(self.name, f"pigeon-{len(self.calls)}")
        self.receipts.setdefault(message.id, []).append(receipt.message_id)
        return receipt

    def called(self, notification_id: str) -> int:
        return sum(1 for m in self.calls if m.id == notification_id)


class WatchedStore(MemoryStore):
    """The memory store, counting claims, with switches for the failures tests need."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.claimed: Counter[str] = Counter()
        self.empty_claims = 0
        self.released: list[Claim] = []
        self.bucket_down = False
        self.commit_gate: asyncio.Event | None = None  # completions wait for it while set
        self.committing = asyncio.Event()  # set while a completion waits at the gate

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        claims = await super().claim(limit, lease_seconds, min_priority, queues)
        self.claimed.update(c.id for c in claims)
        self.empty_claims += not claims
        return claims

    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        if self.commit_gate is not None:
            self.committing.set()
            await self.commit_gate.wait()
        return await super().complete(outcomes)

    async def release(self, claims: Sequence[Claim]) -> int:
        self.released.extend(claims)
        return await super().release(claims)

    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        if self.bucket_down:
            raise StoreUnavailable("the bucket's database is unreachable")
        return await super().take_tokens(provider, rate, burst, want)


class OneBreaker(Breakers):
    """The provider's one breaker, made by the test so it reads the test's clock."""

    def __init__(self, breaker: Breaker) -> None:
        super().__init__(breaker.name, breaker.threshold, breaker.reset_after)
        self.breaker = breaker

    def get(self, destination: str | None = None) -> Breaker:
        return self.breaker


class Rig:
    def __init__(
        self, tmp_path: Path, clock: Clock | None = None, rate: float | None = None,
        **settings: Any,
    ) -> None:  # fmt: skip
        self.clock = clock or Clock()
        self.store = WatchedStore(self.clock)
        self.provider = Pigeon()
        self.settings = make_settings(tmp_path, **settings)
        self.breaker = Breaker("pigeon", threshold=1, reset_after=30.0, clock=self.clock)
        route = Route(self.provider, OneBreaker(self.breaker), Pacer(self.store, "pigeon", rate))
        chains = {c.value: Chain([route]) for c in Channel}
        self.worker = Worker(self.store, chains, self.settings, clock=self.clock)
        self.task: asyncio.Task[None] | None = None

    async def create(
        self, count: int, recipient: str = "a@example.com", priority: Priority = Priority.MEDIUM
    ) -> list[Notification]:
        items = [
            NewNotification(Channel.EMAIL, recipient, f"body {i}", subject="s", priority=priority)
            for i in range(count)
        ]
        return await self.store.create(items)

    def half_open(self) -> None:
        """Open the breaker with one failure and let its reset time pass."""
        self.breaker.failed()
        assert self.breaker_state() is State.OPEN
        self.clock.advance(self.breaker.reset_after)
        assert self.breaker_state() is State.HALF_OPEN

    def breaker_state(self) -> State:
        """Read afresh each time: the state moves with the clock and the calls."""
        return self.breaker.state

    async def get(self, notification: Notification) -> Notification:
        got = await self.store.get(notification.tenant_id, notification.id)
        assert got is not None
        return got

    async def history(self, notification: Notification) -> list[AuditEntry]:
        return await self.store.audit(notification.tenant_id, notification.id)

    async def all_in(self, notifications: Sequence[Notification], status: Status) -> bool:
        return all([(await self.get(n)).status is status for n in notifications])

    async def logged(self, notification: Notification, text: str) -> bool:
        """Has the notification's history an entry whose message holds ``text``?"""
        return any(text in e.message for e in await self.history(notification))

    def start(self) -> asyncio.Task[None]:
        self.task = asyncio.create_task(self.worker.run())
        return self.task

    async def stopped(self, timeout: float = 5.0) -> None:
        """Stop the worker and wait for ``run`` to return."""
        self.worker.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Rig]:
        self.start()
        try:
            yield self
        finally:
            await self.stopped()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 2.0, what: str = "it"
) -> None:
    """Wait until ``check()`` is true (awaiting it if it returns an awaitable), or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        await asyncio.sleep(0.002)

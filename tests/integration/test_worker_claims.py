"""Inside the worker, on each store: in-flight accounting by claim, pacing by priority."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from herald.budget import Budget
from herald.delivery.breaker import Breakers
from herald.delivery.chain import Chain, Route
from herald.delivery.ratelimit import Pacer
from herald.delivery.worker import Worker
from herald.models import Channel, NewNotification, Priority
from herald.providers.base import Message, Provider, Receipt
from herald.store.base import Store
from tests.conftest import make_settings


class Held(Provider):
    """Every send waits until ``opened`` is set."""

    name = "held"  # type: ignore[misc]
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.calls = 0

    async def send(self, message: Message) -> Receipt:
        self.calls += 1
        await self.opened.wait()
        return Receipt(self.name, f"held-{self.calls}")


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def test_a_row_claimed_again_after_its_lease_expired_holds_two_slots(
    store: Store, tmp_path: Path
) -> None:
    [note] = await store.create([NewNotification(Channel.EMAIL, "a@example.com", "m", "s")])
    [first] = await store.claim(10, 0.05)
    async with asyncio.timeout(5):  # the sweeper returns the expired lease to the queue
        while True:
            if (await store.sweep(5)).expired:
                break
            await asyncio.sleep(0.02)
    [second] = await store.claim(10, 60)
    assert first.id == second.id == note.id and first.token != second.token

    provider = Held()
    route = Route(provider, Breakers("held", 10, 30), Pacer(store, "held", None))
    chains = {c.value: Chain([route]) for c in Channel}
    settings = make_settings(tmp_path, worker_concurrency=4, reserved_slots=1)
    worker = Worker(store, chains, settings)
    running = asyncio.create_task(worker.run())
    try:
        worker.start(first)
        worker.start(second)
        await wait_until(lambda: provider.calls == 2)
        assert worker.inflight == 2, "two claims in flight, two slots taken"
        provider.opened.set()
        await wait_until(lambda: worker.inflight == 0)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)


async def test_the_pacer_gives_the_next_token_to_the_critical_send(store: Store) -> None:
    """Five LOW sends wait for a rate-limited provider; a CRITICAL one arriving last
    is served before all but, at most, the one already waiting at the bucket."""
    pacer = Pacer(store, "limited", rate=10, burst=1)
    await pacer.acquire(Budget.lasting(10))  # the burst is spent
    served: list[str] = []

    async def send(name: str, priority: Priority) -> None:
        await pacer.acquire(Budget.lasting(10, priority))
        served.append(name)

    lows = [asyncio.create_task(send(f"low{i}", Priority.LOW)) for i in range(5)]
    await asyncio.sleep(0.02)
    critical = asyncio.create_task(send("critical", Priority.CRITICAL))
    async with asyncio.timeout(5):
        await asyncio.gather(*lows, critical)
    assert served.index("critical") <= 1, served
    assert [s for s in served if s != "critical"] == [f"low{i}" for i in range(5)]

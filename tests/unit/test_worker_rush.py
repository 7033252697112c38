"""HIGH and CRITICAL work announced while a LOW claim is on its way to the store.

On PostgreSQL a claim does not see rows committed after it began, so a
CRITICAL notification would wait for the LOW claim on its way and then ride
the next one. The worker claims HIGH and above at once instead, into the
reserved slots, and writes their outcomes without waiting for the LOW claim.
The rig is ``worker_rig.py``; here its store announces work as PostgreSQL's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from herald.models import Claim, Priority, Status
from tests.unit.worker_rig import Rig, WatchedStore, eventually


class AnnouncingStore(WatchedStore):
    """Announces work to every process (``notifies_work``); a LOW claim can be held."""

    notifies_work = True

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.low_gate: asyncio.Event | None = None  # LOW claims wait for it while set
        self.low_waiting = asyncio.Event()  # set while a LOW claim waits at the gate
        self.floors: list[Priority] = []

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        self.floors.append(min_priority)
        if min_priority is Priority.LOW and self.low_gate is not None:
            self.low_waiting.set()
            await self.low_gate.wait()
        return await super().claim(limit, lease_seconds, min_priority, queues)


def announcing_rig(tmp_path: Path) -> tuple[Rig, AnnouncingStore]:
    rig = Rig(tmp_path, worker_concurrency=8, reserved_slots=2, claim_batch=4)
    store = AnnouncingStore(rig.clock)
    rig.store = store
    rig.worker.store = store
    for chain in rig.worker.chains.values():
        for route in chain.routes:
            route.pacer.store = store
    return rig, store


async def test_critical_work_is_claimed_and_recorded_while_a_low_claim_hangs(
    tmp_path: Path,
) -> None:
    rig, store = announcing_rig(tmp_path)
    lows = await rig.create(4, "low@example.com", Priority.LOW)
    async with rig.running():
        await eventually(lambda: rig.all_in(lows, Status.SENT), what="the first LOW batch")
        more = await rig.create(4, "low@example.com", Priority.LOW)
        store.low_gate = asyncio.Event()
        store.low_waiting.clear()
        await asyncio.wait_for(store.low_waiting.wait(), 2.0)  # a LOW claim is on its way
        [critical] = await rig.create(1, "critical@example.com", Priority.CRITICAL)
        await eventually(lambda: rig.all_in([critical], Status.SENT), what="the CRITICAL send")
        assert not store.low_gate.is_set(), "the CRITICAL went out only after the LOW claim"
        assert Priority.HIGH in store.floors
        store.low_gate.set()
        await eventually(lambda: rig.all_in(more, Status.SENT), what="the LOW backlog")


async def test_no_claim_of_high_work_while_no_low_claim_is_on_its_way(tmp_path: Path) -> None:
    """An idle worker woken by an announcement claims as usual, with one claim."""
    rig, store = announcing_rig(tmp_path)
    async with rig.running():
        await eventually(lambda: Priority.LOW in store.floors, what="the first claim")
        [critical] = await rig.create(1, "critical@example.com", Priority.CRITICAL)
        await eventually(lambda: rig.all_in([critical], Status.SENT), what="the CRITICAL send")
        assert Priority.HIGH not in store.floors

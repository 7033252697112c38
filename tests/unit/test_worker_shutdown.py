"""The worker's shutdown on the memory store: what was in flight finishes within the grace
period, what cannot is released, and nothing being recorded is taken for unsent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from herald.models import Status
from herald.store import records
from tests.unit.worker_rig import Rig, eventually


async def test_in_flight_sends_finish_within_the_grace_and_the_rest_are_released(
    tmp_path: Path,
) -> None:
    """Three sends out at the stop: two end during the grace period and are recorded sent;
    the third outlasts it, is cancelled and released unspent. The notifications never
    claimed stay as they were, and nothing is claimed after the stop."""
    rig = Rig(tmp_path, worker_concurrency=4, reserved_slots=1, shutdown_grace=0.3,
              poll_interval=0.005)  # fmt: skip
    quick = rig.provider.hold_next(2)
    rig.provider.hold_next(1)  # outlasts the grace period
    notes = await rig.create(5)
    rig.start()
    await eventually(lambda: len(rig.provider.calls) == 3, what="three sends out")
    finished = [m.id for m in rig.provider.calls[:2]]
    [cut] = [m.id for m in rig.provider.calls[2:]]
    rig.worker.stop()
    stopped_at = time.monotonic()
    quick.set()  # they end after the stop, well inside the grace period
    assert rig.task is not None
    await asyncio.wait_for(rig.task, 3)
    took = time.monotonic() - stopped_at
    assert 0.3 <= took < 1.5, f"run() returned {took:.2f}s after the stop"
    by_id = {n.id: await rig.get(n) for n in notes}
    assert [by_id[i].status for i in finished] == [Status.SENT, Status.SENT]
    released = by_id[cut]
    assert (released.status, released.attempts) == (Status.QUEUED, 0)
    assert (await rig.history(released))[-1].message == records.RELEASED
    assert rig.provider.cancelled == [cut]
    assert len(rig.provider.calls) == 3 and rig.store.claimed.total() == 3
    untouched = [by_id[i] for i in by_id if i not in (*finished, cut)]
    assert [n.status for n in untouched] == [Status.QUEUED, Status.QUEUED]
    assert rig.worker.delivered == 2


async def test_an_outcome_being_recorded_at_the_stop_is_not_released(tmp_path: Path) -> None:
    """The send is over and its outcome is being written when the stop comes: shutdown
    waits for that write instead of counting the claim unsent and releasing it (which
    left the notification QUEUED after it went out, to be sent a second time)."""
    rig = Rig(tmp_path, shutdown_grace=0.3, poll_interval=0.005)
    rig.store.commit_gate = gate = asyncio.Event()
    [note] = await rig.create(1)
    rig.start()
    await eventually(lambda: rig.store.committing.is_set(), what="the outcome's write")
    rig.worker.stop()
    # Let the shutdown run as far as it can while the write is held.
    await eventually(lambda: rig.worker.loops.loops["claimer"].state == "stopped")
    for _ in range(50):
        await asyncio.sleep(0)
    gate.set()
    assert rig.task is not None
    await asyncio.wait_for(rig.task, 3)
    assert rig.store.released == []
    got = await rig.get(note)
    assert got.status is Status.SENT, [e.message for e in await rig.history(note)]
    assert rig.worker.inflight == 0 and rig.worker.delivered == 1

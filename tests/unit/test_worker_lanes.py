"""Per-lane concurrency (HERALD_<LANE>_CONCURRENCY) and workers of some lanes only
(HERALD_WORKER_QUEUES, ``herald worker --channels``): seeds 000 and 003."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from herald.models import Channel, NewNotification, Notification, Status
from herald.providers.base import Message, Receipt
from tests.unit.worker_rig import Rig, eventually

HELD = "held@example.com"


def watch_in_flight(rig: Rig) -> tuple[Counter[Channel], Counter[Channel]]:
    """Sends in flight now, and the most ever at once, per channel."""
    now: Counter[Channel] = Counter()
    most: Counter[Channel] = Counter()
    send = rig.provider.send

    async def counted(message: Message) -> Receipt:
        now[message.channel] += 1
        most[message.channel] = max(most[message.channel], now[message.channel])
        try:
            return await send(message)
        finally:
            now[message.channel] -= 1

    rig.provider.send = counted  # type: ignore[method-assign]
    return now, most


async def texts(rig: Rig, count: int) -> list[Notification]:
    items = [NewNotification(Channel.SMS, "+14155550100", f"code {i}") for i in range(count)]
    return await rig.store.create(items)


async def test_a_capped_lane_has_no_more_sends_in_flight_while_another_lane_flows(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, worker_concurrency=32, email_concurrency=2, poll_interval=0.005)
    now, most = watch_in_flight(rig)
    gate = rig.provider.hold(HELD)
    mails = await rig.create(6, recipient=HELD)
    sms = await texts(rig, 5)
    async with rig.running():
        await eventually(lambda: rig.all_in(sms, Status.SENT), what="the SMS lane flowing")
        await asyncio.sleep(0.05)  # room for a third email send, were the cap not held
        assert now[Channel.EMAIL] == 2
        gate.set()
        await eventually(lambda: rig.all_in(mails, Status.SENT), what="the email sent")
    assert most[Channel.EMAIL] == 2
    assert most[Channel.SMS] >= 1


async def test_a_lane_at_its_cap_is_left_out_of_the_next_claims(tmp_path: Path) -> None:
    rig = Rig(tmp_path, worker_concurrency=32, email_concurrency=2, claim_batch=1,
              poll_interval=0.005)  # fmt: skip
    gate = rig.provider.hold(HELD)
    mails = await rig.create(6, recipient=HELD)
    sms = await texts(rig, 3)
    async with rig.running():
        await eventually(lambda: rig.all_in(sms, Status.SENT), what="the SMS lane flowing")
        await asyncio.sleep(0.05)
        claimed = [m for m in mails if rig.store.claimed[m.id]]
        assert len(claimed) == 2  # the other four are free for another worker to take
        gate.set()
        await eventually(lambda: rig.all_in(mails, Status.SENT), what="the email sent")


async def test_a_worker_of_some_lanes_leaves_the_others_alone(tmp_path: Path) -> None:
    rig = Rig(tmp_path, worker_queues="sms", poll_interval=0.005)
    mails = await rig.create(3)
    sms = await texts(rig, 3)
    async with rig.running():
        await eventually(lambda: rig.all_in(sms, Status.SENT), what="the SMS sent")
        await asyncio.sleep(0.05)
    assert await rig.all_in(mails, Status.QUEUED)
    assert not any(rig.store.claimed[m.id] for m in mails)

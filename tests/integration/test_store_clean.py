"""Cleaning (``clean_queue``, ``clean``, ``trim_sent``) and retention, on every store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from herald import retention
from herald.events import NewEvent
from herald.models import (
    DONE,
    Channel,
    Dead,
    MailboxMessage,
    NewNotification,
    Notification,
    Sent,
    Status,
    new_id,
)
from herald.store.base import Store
from tests.conftest import make_settings

DAY = 86_400


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def note(n: int, tenant: str, channel: Channel = Channel.EMAIL) -> NewNotification:
    recipient = f"+1415555{n:04d}" if channel is Channel.SMS else f"user{n}@example.com"
    return NewNotification(channel, recipient, f"body {n}", subject="s", tenant_id=tenant)


async def settle(store: Store, sent: list[Notification], dead: list[Notification]) -> None:
    """Claim every due row; ``sent`` ones go out, ``dead`` ones to the DLQ."""
    claims = {c.id: c for c in await store.claim(100, 30)}
    now = time.time()
    outcomes = [Sent(claims[n.id], "capture", f"m-{n.id}", 1.0, now) for n in sent]
    outcomes += [Dead(claims[n.id], "capture", "gone", True, now) for n in dead]
    assert await store.complete(outcomes) == len(outcomes)


async def exists(store: Store, tenant: str, n: Notification) -> bool:
    return await store.get(tenant, n.id) is not None


async def test_clean_queue_takes_one_tenants_old_rows_of_one_lane_oldest_first(
    store: Store,
) -> None:
    event = NewEvent(new_id(), "a", "signup", "user0@example.com", {}, {}, None, time.time())
    record, [first] = await store.create_event(event, [note(0, "a")])
    second, third, theirs, texted, dead, cancelled = await store.create([
        note(1, "a"), note(2, "a"), note(3, "b"), note(4, "a", Channel.SMS), note(5, "a"),
        note(6, "a"),
    ])  # fmt: skip
    assert await store.cancel("a", cancelled.id)
    await settle(store, [first, second, third, theirs, texted], [dead])
    [waiting] = await store.create([note(7, "a")])
    await store.capture(MailboxMessage(new_id(), first.id, "a", Channel.EMAIL, first.recipient,
                                       "s", "b", None, time.time()))  # fmt: skip
    assert record.notification_ids == (first.id,)

    assert await store.clean_queue("a", "email", DONE, time.time() - 3600, 100) == 0
    later = time.time() + 1
    counts = [await store.count_old(later, DONE, "a", lane) for lane in ("email", "sms", "dlq")]
    assert counts == [3, 1, 0], "a dry run counts what would go, and deletes nothing"
    assert await store.count_old(later, (Status.FAILED,), "a", "dlq") == 1
    assert await store.count_old(later, DONE, "a", "email") == 3
    assert await store.clean_queue("a", "email", DONE, later, 2) == 2, "at most the limit"
    assert not await exists(store, "a", first) and not await exists(store, "a", second)
    assert await exists(store, "a", third), "the oldest go first"
    assert await store.audit("a", first.id) == []
    assert await store.mailbox("a", 10) == []
    found = await store.get_event("a", event.id)
    assert found is not None and found.notification_ids == ()

    assert await store.clean_queue("a", "email", DONE, later, 100) == 1
    assert await exists(store, "b", theirs), "another tenant's rows stay"
    assert await exists(store, "a", texted), "another lane's rows stay"
    assert await store.clean_queue("a", "email", (Status.FAILED,), later, 100) == 0
    assert await store.clean_queue("a", "dlq", (Status.FAILED,), later, 100) == 1
    assert not await exists(store, "a", dead)
    assert await store.clean_queue("a", "email", (Status.CANCELLED,), later, 100) == 1
    assert not await exists(store, "a", cancelled)
    assert await exists(store, "a", waiting), "a row still to send is never cleaned"
    assert await store.clean_queue("b", "email", DONE, later, 100) == 1
    assert not await exists(store, "b", theirs)


async def test_clean_takes_failed_rows_only_when_asked(store: Store) -> None:
    sent, dead, theirs = await store.create([note(0, "a"), note(1, "a"), note(2, "b")])
    await settle(store, [sent], [dead, theirs])
    later = time.time() + 1
    assert await store.count_old(later, (Status.FAILED,)) == 2, "every tenant's"
    assert await store.count_old(later) == 1 and await store.count_old(time.time() - 3600) == 0
    assert await store.clean(time.time() - 3600, statuses=(Status.FAILED,)) == 0
    assert await store.clean(later, batch=1, statuses=(Status.FAILED,)) == 2, "every tenant's"
    assert await exists(store, "a", sent) and not await exists(store, "b", theirs)
    assert await store.clean(later) == 1


async def test_ids_are_found_by_their_beginning_in_one_tenant(store: Store) -> None:
    made = await store.create([note(n, "a") for n in range(3)])
    [theirs] = await store.create([note(9, "b")])
    ids = sorted(n.id for n in made)
    common = ids[0]
    while not ids[-1].startswith(common):  # made together, they begin with the same time
        common = common[:-1]
    assert await store.ids_starting("a", common, 10) == ids
    assert await store.ids_starting("a", common, 2) == ids[:2]
    assert await store.ids_starting("a", ids[1], 10) == [ids[1]]
    assert await store.ids_starting("a", ids[1][:-1] + "g", 10) == [], "no such id"
    assert await store.ids_starting("a", theirs.id[:20], 10) == [], "another tenant's"
    assert await store.ids_starting("b", theirs.id[:20], 10) == [theirs.id]


async def test_trim_sent_keeps_each_tenants_newest(store: Store) -> None:
    a1, a2, a3, b1, failed = await store.create(
        [note(0, "a"), note(1, "a"), note(2, "a"), note(3, "b"), note(4, "a")]
    )
    await settle(store, [a1, a2, a3, b1], [failed])
    assert await store.trim_sent(1, batch=1) == 2
    assert [await exists(store, "a", n) for n in (a1, a2, a3)] == [False, False, True]
    assert await exists(store, "b", b1) and await exists(store, "a", failed)
    assert await store.audit("a", a1.id) == []
    assert await store.trim_sent(1) == 0
    assert await store.trim_sent(0) == 2


async def test_retention_takes_failed_rows_after_their_days_only_if_set(
    store: Store, tmp_path: Path
) -> None:
    sent, dead = await store.create([note(0, "a"), note(1, "a")])
    await settle(store, [sent], [dead])
    now = time.time()
    forever = make_settings(tmp_path)
    assert (await retention.clean_once(store, forever, now=now + 400 * DAY)).failed == 0
    assert await exists(store, "a", dead), "FAILED rows stay by default"
    assert not await exists(store, "a", sent), "SENT ones go after HERALD_CLEANUP_DAYS"

    week = make_settings(tmp_path, failed_retention_days=7)
    assert (await retention.clean_once(store, week, now=now + 6 * DAY)).failed == 0
    assert await exists(store, "a", dead)
    assert (await retention.clean_once(store, week, now=now + 8 * DAY)).failed == 1
    assert not await exists(store, "a", dead)


async def test_retention_keeps_at_most_keep_sent_per_tenant(store: Store, tmp_path: Path) -> None:
    a1, a2, b1 = await store.create([note(0, "a"), note(1, "a"), note(2, "b")])
    await settle(store, [a1, a2, b1], [])
    unlimited = await retention.clean_once(store, make_settings(tmp_path))
    assert unlimited.beyond_kept == 0 and await exists(store, "a", a1)
    done = await retention.clean_once(store, make_settings(tmp_path, keep_sent=1))
    assert (done.beyond_kept, done.notifications) == (1, 0)
    assert not await exists(store, "a", a1)
    assert await exists(store, "a", a2) and await exists(store, "b", b1)

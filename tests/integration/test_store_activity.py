"""The ``Activity`` port on every store: the change feed of the dashboard's live view, and the
per-minute history counts of its charts."""

from __future__ import annotations

import time

import pytest

from herald.models import Channel, Dead, NewNotification, Retry, Sent, Status
from herald.store.base import Store

CHARTED = (Status.SENT, Status.FAILED, Status.RETRYING)


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def email(n: int, tenant: str = "default") -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s",
                           tenant_id=tenant)  # fmt: skip


async def test_the_feed_shows_creations_claims_and_outcomes_of_every_tenant(store: Store) -> None:
    before = time.time() - 0.001
    [ours] = await store.create([email(1)])
    [theirs] = await store.create([email(2, "beta")])
    feed = await store.changes(before, 100)
    created = {(c.tenant_id, c.notification_id, c.status) for c in feed.changes}
    assert ("default", ours.id, "QUEUED") in created and ("beta", theirs.id, "QUEUED") in created
    assert not feed.full and feed.paused == frozenset()

    claimed_at = time.time() - 0.001
    claims = {c.id: c for c in await store.claim(10, 30)}
    feed = await store.changes(claimed_at, 100)
    assert {c.notification_id for c in feed.changes if c.status == "PROCESSING"} == {
        ours.id, theirs.id}  # fmt: skip

    done_at = time.time() - 0.001
    now = time.time()
    await store.complete([Sent(claims[ours.id], "smtp", "m-1", 1.0, now),
                          Dead(claims[theirs.id], "smtp", "550", True, now)])  # fmt: skip
    feed = await store.changes(done_at, 100)
    ended = {(c.notification_id, c.status) for c in feed.changes}
    assert {(ours.id, "SENT"), (theirs.id, "FAILED")} <= ended
    assert len({c.key for c in feed.changes}) == len(feed.changes), "keys tell changes apart"
    assert all(c.at >= done_at for c in feed.changes)

    again = await store.changes(done_at, 100)
    assert {c.key for c in again.changes} == {c.key for c in feed.changes}, "same rows, same keys"
    assert not [c for c in (await store.changes(time.time() + 1, 100)).changes]


async def test_the_feed_says_when_it_is_full_and_names_paused_lanes(store: Store) -> None:
    before = time.time() - 0.001
    await store.create([email(n) for n in range(5)])
    feed = await store.changes(before, 3)
    assert feed.full and len([c for c in feed.changes if c.key.startswith("n")]) == 3
    assert not (await store.changes(before, 50)).full
    await store.set_paused("sms", True)
    assert (await store.changes(time.time(), 10)).paused == frozenset({"sms"})
    await store.set_paused("sms", False)
    assert (await store.changes(time.time(), 10)).paused == frozenset()


async def test_history_is_counted_per_minute_and_status_for_one_tenant(store: Store) -> None:
    created = await store.create([email(n) for n in range(4)] + [email(9, "beta")])
    claims = {c.id: c for c in await store.claim(10, 30)}
    minute = 60 * (int(time.time()) // 60)
    earlier, now = minute - 90.0, minute + 1.0  # the minute before last, and this one
    a, b, c, d, other = (claims[n.id] for n in created)
    await store.complete([
        Sent(a, "smtp", "m-a", 1.0, now), Sent(b, "smtp", "m-b", 1.0, earlier),
        Retry(c, "smtp", "451", now + 60, 0, "email", now), Dead(d, "smtp", "550", True, now),
        Sent(other, "smtp", "m-o", 1.0, now),
    ])  # fmt: skip
    counts = await store.history_per_minute("default", minute - 3600, CHARTED)
    assert sorted(counts) == sorted([
        (minute // 60, "SENT", 1), ((minute - 120) // 60, "SENT", 1),
        (minute // 60, "RETRYING", 1), (minute // 60, "FAILED", 1),
    ])  # fmt: skip
    recent = await store.history_per_minute("default", minute, CHARTED)
    assert sorted(recent) == [(minute // 60, s, 1) for s in ("FAILED", "RETRYING", "SENT")]
    assert await store.history_per_minute("default", minute, (Status.SENT,)) == [
        (minute // 60, "SENT", 1)]  # fmt: skip
    assert await store.history_per_minute("beta", minute - 3600, CHARTED) == [
        (minute // 60, "SENT", 1)]  # fmt: skip
    assert await store.history_per_minute("nobody", minute - 3600, CHARTED) == []

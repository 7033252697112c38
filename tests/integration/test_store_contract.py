"""The store contract, run against every store implementation (see ``backend``)."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from herald.models import (
    Channel,
    Dead,
    MailboxMessage,
    NewNotification,
    Priority,
    Retry,
    Sent,
    Status,
    new_id,
)
from herald.store import records
from herald.store.base import ListFilter, Store
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SQLiteStore


def email(n: int = 0, **kw: object) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", [SQLiteStore, PostgresStore])
def test_every_store_implements_the_whole_contract(impl: type[Store]) -> None:
    abstract = {n for n, v in vars(Store).items() if getattr(v, "__isabstractmethod__", False)}
    assert abstract, "the contract lists its operations"
    assert not getattr(impl, "__abstractmethods__", None)
    for name in abstract:
        ours = inspect.signature(getattr(Store, name))
        theirs = inspect.signature(getattr(impl, name))
        assert list(ours.parameters) == list(theirs.parameters), name


async def test_create_get_and_audit(store: Store) -> None:
    [n] = await store.create([email(1, priority=Priority.HIGH, metadata={"k": [1, 2]})])
    assert n.status is Status.QUEUED and n.queue == "email" and n.attempts == 0
    got = await store.get("default", n.id)
    assert got == n
    assert await store.get("other-tenant", n.id) is None
    log = await store.audit("default", n.id)
    assert [(e.status, e.message) for e in log] == [
        (Status.PENDING, "Notification created"),
        (Status.QUEUED, "Added to queue"),
    ]


async def test_idempotency_key_gives_the_same_row_per_tenant(store: Store) -> None:
    [a] = await store.create([email(1, idempotency_key="k1")])
    [b] = await store.create([email(2, idempotency_key="k1")])
    [c] = await store.create([email(3, idempotency_key="k1", tenant_id="t2")])
    assert a.id == b.id and b.body == "body 1"
    assert c.id != a.id
    page = await store.find("default", ListFilter(), 1, 10)
    assert page.total == 1


async def test_create_many_stores_what_create_stores(store: Store) -> None:
    later = time.time() + 3600
    items = [email(n, metadata={"n": n}) for n in range(120)]  # more than one chunk
    items[7] = email(7, metadata={"n": 7}, scheduled_at=later, priority=Priority.CRITICAL,
                     callback_url="https://x.io")  # fmt: skip
    created = await store.create_many(items)
    assert [status for _, status in created] == [
        Status.SCHEDULED if n == 7 else Status.QUEUED for n in range(120)
    ]
    assert len({note_id for note_id, _ in created}) == 120
    for n, (note_id, status) in enumerate(created):
        got = await store.get("default", note_id)
        assert got is not None and (got.body, got.metadata, got.status) == (f"body {n}", {"n": n},
                                                                           status)  # fmt: skip
        entries = [(e.status, e.message) for e in await store.audit("default", note_id)]
        assert entries[0] == (Status.PENDING, "Notification created") and len(entries) == 2
    scheduled = await store.get("default", created[7][0])
    assert scheduled is not None
    assert (scheduled.due_at, scheduled.scheduled_at, scheduled.priority) == (
        later, later, Priority.CRITICAL)  # fmt: skip
    assert scheduled.callback_url == "https://x.io" and scheduled.created_at <= later
    log = await store.audit("default", created[7][0])
    assert [(e.status, e.message) for e in log][1] == (
        Status.SCHEDULED, "Scheduled for later delivery")  # fmt: skip
    [first] = await store.create_many([email(1, idempotency_key="k")])
    [again] = await store.create_many([email(2, idempotency_key="k")])
    assert again == first, "a taken idempotency key answers the stored row"
    assert await store.create_many([]) == []


def commits(store: Store) -> int:
    """Transactions the store's group commit has made so far."""
    if isinstance(store, SQLiteStore):
        assert store._writer is not None
        return store._writer.commits
    assert isinstance(store, PostgresStore)
    return store.commits


async def test_concurrent_writes_share_commits(store: Store) -> None:
    before = commits(store)
    await asyncio.gather(*(store.create([email(i)]) for i in range(300)))
    commits_taken = commits(store) - before
    assert commits_taken < 100, f"300 concurrent creates took {commits_taken} commits"
    assert (await store.find("default", ListFilter(), 1, 1)).total == 300


async def test_claim_orders_by_priority_then_due_time(store: Store) -> None:
    for p in (Priority.LOW, Priority.CRITICAL, Priority.MEDIUM, Priority.HIGH):
        await store.create([email(int(p), priority=p)])
    claims = await store.claim(10, 30)
    assert [c.priority for c in claims] == [
        Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM, Priority.LOW
    ]  # fmt: skip
    assert all(c.attempts == 1 for c in claims)
    assert len({c.token for c in claims}) == 1
    assert await store.claim(10, 30) == []  # leased rows are not claimed twice
    got = await store.get("default", claims[0].id)
    assert got is not None and got.status is Status.PROCESSING


async def test_min_priority_reserves_capacity(store: Store) -> None:
    await store.create([email(i, priority=Priority.LOW) for i in range(5)])
    await store.create([email(9, priority=Priority.HIGH)])
    claims = await store.claim(10, 30, min_priority=Priority.HIGH)
    assert [c.priority for c in claims] == [Priority.HIGH]


async def test_scheduled_rows_wait_for_their_time(store: Store) -> None:
    [n] = await store.create([email(1, scheduled_at=time.time() + 0.4)])
    assert n.status is Status.SCHEDULED
    assert await store.claim(10, 30) == []
    await asyncio.sleep(0.5)
    assert [c.id for c in await store.claim(10, 30)] == [n.id]


async def test_paused_queue_is_skipped(store: Store) -> None:
    await store.create([email(1)])
    await store.set_paused("email", True)
    assert await store.claim(10, 30) == []
    queues = {q.name: q for q in await store.queues("default")}
    assert queues["email"].paused and queues["email"].waiting == 1
    await store.set_paused("email", False)
    assert len(await store.claim(10, 30)) == 1


async def test_outcomes_and_their_audit_rows(store: Store) -> None:
    created = await store.create([email(i) for i in range(3)])
    by_id = {c.id: c for c in await store.claim(10, 30)}
    ok, again, dead = (by_id[n.id] for n in created)
    now = time.time()
    applied = await store.complete([
        Sent(ok, "smtp", "<m1@example.com>", 12.5, now),
        Retry(again, "smtp", "451 try later", now + 60, 0, "email", now),
        Dead(dead, "smtp", "550 no such user", True, now),
    ])  # fmt: skip
    assert applied == 3
    sent = await store.get("default", ok.id)
    assert sent is not None and sent.status is Status.SENT
    assert sent.provider_message_id == "<m1@example.com>" and sent.processing_ms == 12.5
    retrying = await store.get("default", again.id)
    assert retrying is not None and retrying.status is Status.RETRYING
    assert retrying.last_error == "451 try later" and retrying.due_at == pytest.approx(now + 60)
    failed = await store.get("default", dead.id)
    assert failed is not None and (failed.status, failed.queue) == (Status.FAILED, "dlq")
    assert failed.failed_at is not None
    log = await store.audit("default", dead.id)
    assert [e.status for e in log][-2:] == [Status.PROCESSING, Status.FAILED]
    assert log[-1].metadata["error"] == "550 no such user" and log[-1].metadata["permanent"]
    stats = await store.stats("default")
    assert stats.by_status["SENT"] == 1 and stats.by_status["FAILED"] == 1
    assert stats.success_rate == 50.0 and stats.average_processing_ms == 12.5


async def test_stale_completion_is_ignored(store: Store) -> None:
    [n] = await store.create([email(1)])
    [first] = await store.claim(1, 0.05)
    await asyncio.sleep(0.1)
    assert await store.sweep(max_attempts=6) == 1
    [second] = await store.claim(1, 30)
    assert second.token != first.token and second.attempts == 2
    now = time.time()
    assert await store.complete([Sent(first, "smtp", "late", 1.0, now)]) == 0
    assert await store.complete([Sent(second, "smtp", "on time", 1.0, now)]) == 1
    got = await store.get("default", n.id)
    assert got is not None and got.provider_message_id == "on time"
    assert any("Stalled" in e.message for e in await store.audit("default", n.id))


async def test_sweep_buries_a_row_that_stalls_on_its_last_attempt(store: Store) -> None:
    [n] = await store.create([email(1)])
    await store.claim(1, 0.01)
    await asyncio.sleep(0.05)
    assert await store.sweep(max_attempts=1) == 1
    got = await store.get("default", n.id)
    assert got is not None and (got.status, got.queue) == (Status.FAILED, "dlq")


async def test_release_returns_claims_unspent(store: Store) -> None:
    [n] = await store.create([email(1)])
    claims = await store.claim(1, 30)
    assert await store.release(claims) == 1
    assert await store.release(claims) == 0  # the token is spent: nothing more to release
    # The history says why it is queued again after "processing".
    trail = [(e.status, e.message) for e in await store.audit("default", n.id)]
    assert trail[-2:] == [("PROCESSING", records.CLAIMED), ("QUEUED", records.RELEASED)]
    [again] = await store.claim(1, 30)
    assert again.attempts == 1


async def test_find_filters_and_pages(store: Store) -> None:
    await store.create([email(i, priority=Priority(i % 4)) for i in range(10)])
    await store.create([NewNotification(Channel.SMS, "+14155550123", "code")])
    page = await store.find("default", ListFilter(channel=Channel.EMAIL), 2, 3)
    assert page.total == 10 and len(page.items) == 3
    newest_first = await store.find("default", ListFilter(), 1, 20)
    assert newest_first.items[0].channel is Channel.SMS
    high = await store.find("default", ListFilter(priority=Priority.HIGH), 1, 20)
    assert high.total == 2 and all(n.priority is Priority.HIGH for n in high.items)
    queued = await store.find("default", ListFilter(status=Status.QUEUED), 1, 20)
    assert queued.total == 11


async def test_mailbox_keeps_captured_messages(store: Store) -> None:
    [n] = await store.create([email(1)])
    message = MailboxMessage(
        new_id(), n.id, "default", Channel.EMAIL, n.recipient, "s", "b", None, time.time()
    )
    await store.capture(message)
    assert await store.mailbox("default", 10) == [message]
    assert await store.mailbox("default", 10, Channel.SMS) == []
    assert await store.mailbox("elsewhere", 10) == []


async def test_wait_for_work_wakes_on_create(store: Store) -> None:
    waiter = asyncio.create_task(store.wait_for_work(5))
    await asyncio.sleep(0.01)
    started = time.perf_counter()
    await store.create([email(1)])
    await asyncio.wait_for(waiter, 1)
    assert time.perf_counter() - started < 0.5

"""The store contract, run against every store implementation (see ``backend``): SQLite,
PostgreSQL and the in-memory test double."""

from __future__ import annotations

import asyncio
import inspect
import time

import pytest

from herald.events import NewEvent
from herald.models import (
    Channel,
    Dead,
    Deferred,
    MailboxMessage,
    NewNotification,
    Priority,
    Retry,
    Sent,
    Status,
    new_id,
)
from herald.store import records
from herald.store.base import DlqFilter, ListFilter, Store
from herald.store.memory import MemoryStore
from herald.store.ports import PORTS, members
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SQLiteStore

IMPLEMENTATIONS = [SQLiteStore, PostgresStore, MemoryStore]


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on the in-memory store too: it is the contract, not a database's."""
    return str(request.param)


def email(n: int = 0, **kw: object) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.__name__)
def test_every_store_provides_every_port(port: type, impl: type[Store]) -> None:
    """Each member of the port, with the port's parameters and defaults, in every store."""
    required = members(port)
    assert required, "the port lists its operations"
    assert not getattr(impl, "__abstractmethods__", None)
    for name in required:
        assert hasattr(impl, name), f"{impl.__name__} lacks {port.__name__}.{name}"
        if not callable(getattr(port, name, None)):
            continue  # an attribute (notifies_work)
        ours = inspect.signature(getattr(port, name))
        theirs = inspect.signature(getattr(impl, name))
        assert [(p.name, p.kind, p.default) for p in ours.parameters.values()] == [
            (p.name, p.kind, p.default) for p in theirs.parameters.values()
        ], f"{impl.__name__}.{name}"


def test_the_store_is_the_union_of_its_ports() -> None:
    """Nothing in the contract outside a port, besides the lifecycle."""
    abstract = set(Store.__abstractmethods__)
    by_port = {name for port in PORTS for name in members(port) if name != "notifies_work"}
    assert abstract - by_port == {"open", "close", "migrate", "ping"}
    assert by_port <= abstract | {"create_many"}


async def test_a_store_answers_to_each_port(store: Store) -> None:
    assert all(isinstance(store, port) for port in PORTS)


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
    if isinstance(store, MemoryStore):
        pytest.skip("the memory store has no transactions to share")
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


async def test_claim_takes_only_the_lanes_asked_for(store: Store) -> None:
    """``herald worker --channels sms``: the claim leaves every other lane's rows alone."""
    [failing] = await store.create([email(1)])
    [text] = await store.create([NewNotification(Channel.SMS, "+14155550100", "code 1")])
    [mail] = await store.create([email(2)])
    [first] = await store.claim(1, 30, queues=["email"])
    assert first.id == failing.id
    now = time.time()
    await store.complete([Retry(first, "smtp", "451", now - 1, 1, "retry-1", now)])

    assert await store.claim(10, 30, queues=["push", "chat"]) == []
    [sms] = await store.claim(10, 30, queues=["sms"])
    assert (sms.id, sms.queue) == (text.id, "sms")
    [escalated] = await store.claim(10, 30, queues=["retry-1"])
    assert (escalated.id, escalated.queue) == (failing.id, "retry-1")
    assert [(c.id, c.queue) for c in await store.claim(10, 30, queues=[])] == []
    [rest] = await store.claim(10, 30, queues=None)
    assert (rest.id, rest.queue) == (mail.id, "email")


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
    assert (await store.sweep(max_attempts=6)).expired == 1
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
    swept = await store.sweep(max_attempts=1)
    assert (swept.expired, swept.buried) == (1, (Channel.EMAIL,))  # the failed counter's
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


# -- history: derived from what is stored (DESIGN 5), never thinned ------------------


async def test_history_tells_seed_004s_sequence(store: Store) -> None:
    [n] = await store.create([email(1)])
    [claim] = await store.claim(1, 30)
    running = await store.audit("default", n.id)
    assert [(e.status, e.message, e.metadata) for e in running] == [
        (Status.PENDING, "Notification created", {}),
        (Status.QUEUED, "Added to queue", {}),
        (Status.PROCESSING, records.CLAIMED, {"attempt": 1}),
    ], "a running attempt shows its PROCESSING entry"
    assert running[-1].at == claim.claimed_at and running[0].at == n.created_at
    sent_at = time.time()
    assert await store.complete([Sent(claim, "smtp", "<m1@example.com>", 2.5, sent_at)]) == 1
    done = await store.audit("default", n.id)
    assert done[:3] == running, "entries keep their ids, times and words once the attempt ends"
    assert [(e.status, e.message, e.metadata) for e in done[3:]] == [(
        Status.SENT, "Successfully sent via smtp",
        {"attempt": 1, "provider": "smtp", "providerMessageId": "<m1@example.com>"},
    )]  # fmt: skip
    assert done[3].at == sent_at
    assert [e.id for e in done] == [1, 2, 3, 4] and {e.notification_id for e in done} == {n.id}
    assert await store.audit("default", n.id) == done, "read again, nothing moves"
    assert await store.audit("other-tenant", n.id) == []


async def test_history_keeps_every_retry_defer_stall_replay_and_cancel(store: Store) -> None:
    [n] = await store.create([email(1)])
    seen: list[object] = []

    async def step(expected: list[tuple[Status, str]]) -> None:
        """The history grew by ``expected`` (status, message start) and kept what it had."""
        log = await store.audit("default", n.id)
        assert log[: len(seen)] == seen, "what was shown stays as it was"
        grown = log[len(seen) :]
        assert [
            (e.status, e.message[: len(m)]) for e, (_, m) in zip(grown, expected, strict=False)
        ] == expected and len(grown) == len(expected)
        assert [e.at for e in log] == sorted(e.at for e in log), "in time order"
        assert [e.id for e in log] == list(range(1, len(log) + 1))
        seen[:] = log

    await step([(Status.PENDING, "Notification created"), (Status.QUEUED, "Added to queue")])
    [first] = await store.claim(1, 30)
    now = time.time()
    await store.complete([Retry(first, "smtp", "451 later", now, 0, "email", now)])
    await step([(Status.PROCESSING, records.CLAIMED), (Status.RETRYING, "Attempt 1 failed: 451")])
    [second] = await store.claim(1, 30)
    await store.complete([Deferred(second, "rate limited", time.time(), time.time())])
    await step([(Status.PROCESSING, records.CLAIMED), (Status.QUEUED, "Not attempted")])
    [third] = await store.claim(1, 0.01)
    assert third.attempts == 2, "the deferral gave its attempt back"
    await asyncio.sleep(0.05)
    assert (await store.sweep(max_attempts=6)).expired == 1
    await step([(Status.PROCESSING, records.CLAIMED), (Status.QUEUED, "Stalled")])
    [fourth] = await store.claim(1, 30)
    await store.complete([Dead(fourth, "smtp", "550 no such user", True, time.time())])
    await step([(Status.PROCESSING, records.CLAIMED), (Status.FAILED, "Delivery failed")])
    assert await store.replay("default", [n.id], None, "ops") == [n.id]
    await step([(Status.QUEUED, "Replayed from the DLQ by ops")])
    assert await store.cancel("default", n.id, "ops")
    await step([(Status.CANCELLED, "Cancelled before delivery by ops")])
    log = await store.audit("default", n.id)
    attempts = [e.metadata.get("attempt") for e in log if e.status is Status.PROCESSING]
    assert attempts == [1, 2, 2, 3], "each PROCESSING entry names its attempt"
    retry = next(e for e in log if e.status is Status.RETRYING)
    assert retry.metadata == {"attempt": 1, "provider": "smtp", "error": "451 later",
                              "queue": "email", "retryInSeconds": 0.0}  # fmt: skip
    assert log[-2].metadata == {"actor": "ops"}


async def test_a_stale_completion_changes_nothing(store: Store) -> None:
    created = await store.create([email(i) for i in range(4)])
    stale = {c.id: c for c in await store.claim(10, 0.01)}
    await asyncio.sleep(0.05)
    assert (await store.sweep(max_attempts=6)).expired == 4
    fresh = await store.claim(10, 30)
    assert len(fresh) == 4
    before = [(await store.get("default", n.id), await store.audit("default", n.id))
              for n in created]  # fmt: skip
    now = time.time()
    a, b, c, d = (stale[n.id] for n in created)
    outcomes = [
        Sent(a, "smtp", "late", 1.0, now),
        Retry(b, "smtp", "451", now + 60, 1, "retry-1", now),
        Dead(c, "smtp", "550", True, now, unregistered=True),
        Deferred(d, "rate limited", now + 60, now),
    ]
    assert await store.complete(outcomes) == 0
    after = [(await store.get("default", n.id), await store.audit("default", n.id))
             for n in created]  # fmt: skip
    assert after == before, "a completion with a spent token changes neither row nor history"
    assert not any(claim.unregistered for claim in fresh)


async def test_deleting_a_notification_takes_its_history_and_event_link(store: Store) -> None:
    event = NewEvent(new_id(), "default", "signup", "a@example.com", {}, {}, None, time.time())
    record, [kept, gone] = await store.create_event(event, [email(1), email(2)])
    claims = {c.id: c for c in await store.claim(10, 30)}
    await store.complete([Sent(claims[gone.id], "smtp", "m", 1.0, time.time())])
    assert record.notification_ids == (kept.id, gone.id)
    assert await store.delete_final("default", gone.id)
    assert await store.audit("default", gone.id) == []
    found = await store.get_event("default", event.id)
    assert found is not None and found.notification_ids == (kept.id,)


async def test_a_stalled_then_replayed_history(store: Store) -> None:
    [n] = await store.create([email(1)])
    await store.claim(1, 0.01)
    await asyncio.sleep(0.05)
    assert (await store.sweep(max_attempts=1)).expired == 1
    assert await store.replay("default", [n.id], None, "ops") == [n.id]
    trail = [(e.status.value, e.message, e.metadata) for e in await store.audit("default", n.id)]
    assert trail[2:] == [
        ("PROCESSING", records.CLAIMED, {"attempt": 1}),
        ("FAILED", "Stalled: lease expired on attempt 1, the last the ladder allows; moved to dlq",
         {}),
        ("QUEUED", records.replayed("ops"), {"actor": "ops"}),
    ]  # fmt: skip
    [again] = await store.claim(1, 30)
    assert again.attempts == 1, "a replay starts the ladder again"


async def test_the_dlq_filter_pages_counts_and_replays_oldest_first(store: Store) -> None:
    created = await store.create([email(i) for i in range(5)])
    claims = {c.id: c for c in await store.claim(10, 30)}
    base = time.time()
    for n, note in enumerate(created):  # failed one after another, the last one first
        error = "552 mailbox full" if n % 2 else "550 no such user"
        await store.complete([Dead(claims[note.id], "smtp", error, True, base - n)])
    newest_first = [n.id for n in created]
    first = await store.dlq("default", DlqFilter(), 1, 2)
    assert [n.id for n in first.items] == newest_first[:2] and first.total == 5
    last = await store.dlq("default", DlqFilter(), 3, 2)
    assert [n.id for n in last.items] == newest_first[4:] and last.total == 5
    beyond = await store.dlq("default", DlqFilter(), 9, 2)
    assert beyond.items == [] and beyond.total == 5, "a page past the end still counts"
    none = await store.dlq("default", DlqFilter(error="nothing like it"), 2, 2)
    assert none.items == [] and none.total == 0
    such = DlqFilter(error="NO SUCH", until=base - 0.5)
    matching = await store.dlq("default", such, 1, 10)
    assert [n.id for n in matching.items] == [created[2].id, created[4].id]
    assert matching.total == 2
    replayed = await store.replay("default", None, such, "ops", limit=1)
    assert replayed == [created[4].id], "replay by filter takes the oldest failure first"
    assert (await store.dlq("default", such, 1, 10)).total == 1


async def test_gauges_count_every_tenant_by_lane_priority_and_wait(store: Store) -> None:
    """What /api/metrics reads at a scrape: waiting rows, the oldest one's due time, the
    DLQ, the depth of each lane and the counts by status, over every tenant."""
    [dead] = await store.create([email(0)])
    [claim] = await store.claim(1, 30)
    await store.complete([Dead(claim, "smtp", "550 no such user", True, time.time())])
    sms = NewNotification(Channel.SMS, "+14155550123", "hi", tenant_id="t2", priority=Priority.LOW)
    before = time.time()
    await store.create([
        email(1, priority=Priority.HIGH), email(2, priority=Priority.HIGH), sms,
        email(3, scheduled_at=before + 3600), email(4, priority=Priority.CRITICAL),
    ])  # fmt: skip
    [sending] = await store.claim(1, 30)  # the CRITICAL one: claimed, not waiting
    assert sending.priority is Priority.CRITICAL

    now = time.time() + 60
    gauges = await store.gauges(now, alive_after=now)
    assert gauges.waiting == {("email", "HIGH"): 2, ("sms", "LOW"): 1}
    assert gauges.oldest_due["email"] == pytest.approx(before, abs=5)
    assert set(gauges.oldest_due) == {"email", "sms"}
    assert gauges.depth["email"] == 4  # two due, one scheduled, one being sent
    assert gauges.depth["sms"] == 1 and gauges.depth["dlq"] == 0
    assert gauges.dlq == 1 and gauges.by_status["FAILED"] == 1
    assert gauges.by_status["QUEUED"] == 3 and gauges.by_status["SCHEDULED"] == 1
    assert gauges.by_status["PROCESSING"] == 1 and gauges.workers == 0

    assert await store.delete_dead("default", dead.id)
    assert (await store.gauges(now, now)).dlq == 0


async def test_workers_seen_lately_are_counted(store: Store) -> None:
    await store.worker_seen("host:8000#101")
    await store.worker_seen("host:8000#102")
    await store.worker_seen("host:8000#101")  # a heartbeat again: the same worker
    now = time.time()
    assert (await store.gauges(now, alive_after=now - 60)).workers == 2
    assert (await store.gauges(now, alive_after=now + 1)).workers == 0, "none seen since"

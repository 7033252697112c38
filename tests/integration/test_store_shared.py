"""The store contract where several processes share one store, on every store.

Each test opens a second store object on the same database, as a second
process would (its own connections, its own writer), and checks that the
operations the API and workers run concurrently stay correct: claims never
overlap, a one-time token works once, an idempotency key is claimed once,
template versions never collide, the rate limit bucket is shared. Also the
parts of the contract the first file leaves out: cancellation, the DLQ,
callbacks, gone recipients, and text the store cannot hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from herald.errors import Unstorable
from herald.events import EventFilter, NewEvent, TokenExpired, TokenUnknown, TokenUsed
from herald.models import (
    Channel,
    Dead,
    Deferred,
    NewNotification,
    Priority,
    Retry,
    Sent,
    Status,
    new_id,
)
from herald.store.base import BreakerState, DlqFilter, ListFilter, Store
from herald.store.memory import MemoryStore
from herald.store.postgres import PostgresStore
from herald.store.sqlite import SQLiteStore
from herald.templates import TemplateDraft, TemplateExists


def email(n: int = 0, **kw: object) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s", **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    """This suite runs on the in-memory store too (two stores there share one set of tables)."""
    return str(request.param)


@pytest_asyncio.fixture
async def other(backend: str, database_url: str, store: Store) -> AsyncIterator[Store]:
    """A second store on the same database, as another process would open it."""
    second: Store
    if isinstance(store, MemoryStore):
        second = store.beside()
    elif backend == "sqlite":
        second = SQLiteStore(database_url.removeprefix("sqlite:///"))
    else:
        second = PostgresStore(database_url, pool_size=4)
    await second.open()
    try:
        yield second
    finally:
        await second.close()


async def test_concurrent_claims_from_two_stores_never_overlap(store: Store, other: Store) -> None:
    created = await store.create([email(i) for i in range(600)])
    seen: list[str] = []

    async def drain(s: Store) -> None:
        while claims := await s.claim(25, 30):
            seen.extend(c.id for c in claims)
            await s.complete([Sent(c, "x", "m", 1.0, time.time()) for c in claims])

    await asyncio.gather(drain(store), drain(other), drain(store), drain(other))
    assert sorted(seen) == sorted(n.id for n in created), "every row claimed exactly once"
    assert (await store.stats("default")).by_status["SENT"] == 600


async def test_a_token_works_once_across_stores(store: Store, other: Store) -> None:
    token_hash = hashlib.sha256(b"token").hexdigest()
    event = NewEvent(new_id(), "default", "signup", "a@example.com", {"userId": 7}, {},
                     token_hash, time.time())  # fmt: skip
    await store.create_event(event, [email(1)])

    async def spend(s: Store) -> str:
        try:
            await s.verify_event("default", token_hash, 0)
        except TokenUsed:
            return "used"
        return "ok"

    results = await asyncio.gather(*(spend(s) for s in [store, other] * 5))
    assert sorted(results) == ["ok"] + ["used"] * 9
    theirs = hashlib.sha256(b"theirs").hexdigest()
    await other.create_event(NewEvent(new_id(), "acme", "signup", "c@example.com", {}, {},
                                      theirs, time.time()), [])  # fmt: skip
    assert await store.verification_tenant(token_hash) == "default"
    assert await store.verification_tenant(theirs) == "acme", "the link names its tenant"
    assert await other.verification_tenant("0" * 64) is None
    with pytest.raises(TokenUnknown):
        await other.verify_event("default", "0" * 64, 0)
    late = hashlib.sha256(b"late").hexdigest()
    old = NewEvent(new_id(), "default", "signup", "b@example.com", {}, {}, late, 100.0)
    await store.create_event(old, [])
    with pytest.raises(TokenExpired):
        await other.verify_event("default", late, not_before=time.time() - 60)
    stats = await other.event_stats("default", "signup", since=time.time() - 60)
    assert (stats.total, stats.verified, stats.recent) == (2, 1, 1)
    assert stats.primary_by_status == {"QUEUED": 1}
    found = await other.find_events("default", EventFilter(user_id="7"), 1, 10)
    assert [e.id for e in found.items] == [event.id] and found.items[0].verified_at is not None
    linked = await other.event_notifications("default", [event.id, old.id])
    assert [n.recipient for n in linked[event.id]] == ["user1@example.com"]
    assert linked[old.id] == []


async def test_an_idempotency_key_is_claimed_once(store: Store, other: Store) -> None:
    now = time.time()
    found = await asyncio.gather(
        *(s.idempotency_begin("default", "k", "h1", now - 60) for s in [store, other] * 10)
    )
    assert sum(1 for f in found if f is None) == 1, "exactly one request runs"
    assert all(f is None or (f.request_hash, f.status_code) == ("h1", None) for f in found)
    await other.idempotency_finish("default", "k", 201, b'{"ok":true}')
    record = await store.idempotency_begin("default", "k", "h1", now - 60)
    assert record is not None and (record.status_code, record.response) == (201, b'{"ok":true}')
    # Expired: forgotten and claimed anew; abandoned: free again.
    assert await store.idempotency_begin("default", "k", "h2", time.time() + 1) is None
    await other.idempotency_abandon("default", "k")
    assert await store.idempotency_begin("default", "k", "h3", now - 60) is None
    assert await other.idempotency_expire(time.time() + 1) == 1


async def test_template_versions_never_collide(store: Store, other: Store) -> None:
    draft = TemplateDraft("welcome", Channel.EMAIL, "en", "Hi {{ name }}", subject="Hello")
    saved = await asyncio.gather(*(s.save_template("default", draft, False)
                                   for s in [store, other] * 4))  # fmt: skip
    assert sorted(t.version for t in saved) == list(range(1, 9))
    with pytest.raises(TemplateExists):
        await other.save_template("default", draft, True)
    [latest] = await store.templates("default", "welcome")
    assert latest.version == 8 and latest.body == "Hi {{ name }}"
    assert [t.version for t in await other.templates("default", "welcome", 3)] == [3]
    assert await other.delete_templates("default", "welcome", Channel.SMS) == 0
    assert await store.delete_templates("default", "welcome") == 8


async def test_the_rate_limit_bucket_is_shared(store: Store, other: Store) -> None:
    granted = await asyncio.gather(
        *(s.take_tokens("smtp", rate=0.001, burst=10, want=3) for s in [store, other] * 4)
    )
    assert sum(g for g, _ in granted) == 10, granted
    assert all(wait > 0 for g, wait in granted if g == 0)
    await other.pause_provider("twilio", time.time() + 30)
    got, wait = await store.take_tokens("twilio", rate=100, burst=100, want=1)
    assert got == 0 and 29 < wait <= 30


async def test_breaker_states_from_every_process(store: Store, other: Store) -> None:
    for process in ("host:1#a", "host:2#b"):
        await store.heartbeat(process)
    await store.record_breaker(BreakerState("host:1", "smtp", "open", 10, 1.0, "host:1#a"))
    await other.record_breaker(BreakerState("host:2", "smtp", "closed", 0, 2.0, "host:2#b"))
    await other.record_breaker(BreakerState("host:1", "smtp", "half-open", 10, 3.0, "host:1#a"))
    assert await store.breakers(live_since=time.time() - 60) == [
        BreakerState("host:1", "smtp", "half-open", 10, 3.0, "host:1#a"),
        BreakerState("host:2", "smtp", "closed", 0, 2.0, "host:2#b"),
    ]


async def test_breakers_belong_to_a_live_process_and_go_with_it(store: Store, other: Store) -> None:
    """A process restarted under its old instance name is a new process: the old one's
    open breaker is not its own, and is shown only while the old heartbeat is fresh."""
    await store.heartbeat("host:1#old")
    await store.record_breaker(BreakerState("host:1", "smtp", "open", 10, 1.0, "host:1#old"))
    await other.heartbeat("host:1#new")
    await other.record_breaker(BreakerState("host:1", "twilio", "open", 3, 2.0, "host:1#new"))
    await other.record_breaker(BreakerState("host:9", "apns", "open", 3, 2.0, "host:9#mute"))
    seen = time.time()
    assert [(b.process, b.provider) for b in await other.breakers(seen - 60)] == [
        ("host:1#old", "smtp"), ("host:1#new", "twilio")]  # fmt: skip
    assert await other.breakers(seen + 60) == [], "no heartbeat that fresh: nothing live"

    await other.end_process("host:1#new")  # a clean stop takes its rows at once
    assert [b.process for b in await store.breakers(seen - 60)] == ["host:1#old"]

    await asyncio.sleep(0.01)
    await other.heartbeat("host:2#c")
    await other.record_breaker(BreakerState("host:2", "smtp", "closed", 0, 3.0, "host:2#c"))
    # ``host:1#old`` died: its heartbeat is older than the cut; ``host:9#mute`` never beat.
    assert await store.prune_processes(seen_before=seen + 0.005) == 2
    assert [b.process for b in await store.breakers(seen - 60)] == ["host:2#c"]
    assert await store.prune_processes(seen_before=seen + 0.005) == 0


async def test_cancel_only_what_is_not_in_flight(store: Store) -> None:
    queued, leased = await store.create([email(1), email(2, priority=Priority.HIGH)])
    [claim] = await store.claim(1, 30)
    assert claim.id == leased.id
    assert await store.cancel("default", queued.id)
    assert not await store.cancel("default", queued.id)
    assert not await store.cancel("default", leased.id), "in flight"
    assert not await store.cancel("other", leased.id)
    log = await store.audit("default", queued.id)
    assert (log[-1].status, log[-1].message) == (Status.CANCELLED, "Cancelled before delivery")


async def test_dlq_filters_replay_and_delete(store: Store) -> None:
    created = await store.create([email(i) for i in range(4)]
                                 + [NewNotification(Channel.SMS, "+14155550100", "x")])  # fmt: skip
    claims = {c.id: c for c in await store.claim(10, 30)}
    now = time.time()
    errors = ["550 No Such User", "552 mailbox full", "550 no such user", "554 spam"]
    await store.complete(
        [Dead(claims[n.id], "smtp", e, True, now) for n, e in zip(created, errors, strict=False)]
        + [Dead(claims[created[4].id], "twilio", "21211 invalid", True, now)]
    )
    assert (await store.dlq("default", DlqFilter(), 1, 10)).total == 5
    such = await store.dlq("default", DlqFilter(error="NO SUCH"), 1, 10)
    assert {n.id for n in such.items} == {created[0].id, created[2].id}
    assert (await store.dlq("default", DlqFilter(channel=Channel.SMS), 1, 10)).total == 1
    assert (await store.dlq("default", DlqFilter(since=now + 1), 1, 10)).total == 0
    assert (await store.dlq("default", DlqFilter(until=now + 1), 1, 2)).total == 5
    by_filter = await store.replay("default", None, DlqFilter(error="full"), "ops@example.com")
    assert by_filter == [created[1].id]
    by_id = await store.replay("default", [created[0].id, created[1].id], None, "ops")
    assert by_id == [created[0].id], "only dead letters are replayed"
    again = await store.get("default", created[0].id)
    assert again is not None and (again.status, again.queue, again.attempts) == (
        Status.QUEUED, "email", 0)  # fmt: skip
    log = await store.audit("default", created[0].id)
    assert log[-1].metadata == {"actor": "ops"} and "Replayed" in log[-1].message
    assert await store.delete_dead("default", created[3].id)
    assert not await store.delete_dead("default", created[3].id)
    assert await store.get("default", created[3].id) is None
    assert await store.audit("default", created[3].id) == []


async def test_retry_defer_and_gone_recipients(store: Store) -> None:
    first, second, third = await store.create([email(1), email(2), email(3)])
    claims = {c.id: c for c in await store.claim(10, 30)}
    now = time.time()
    await store.complete([
        Retry(claims[first.id], "smtp", "451 later", now + 0.2, 0, "email", now),
        Deferred(claims[second.id], "rate limited", now + 0.2, now),
        Dead(claims[third.id], "fcm", "UNREGISTERED", True, now, unregistered=True),
    ])  # fmt: skip
    assert await store.claim(10, 30) == []
    await asyncio.sleep(0.3)
    again = {c.id: c for c in await store.claim(10, 30)}
    assert again[first.id].attempts == 2 and again[second.id].attempts == 1, "a deferral is free"
    [later] = await store.create([email(3)])
    [gone] = await store.claim(10, 30)
    assert gone.id == later.id and gone.unregistered


async def test_an_outcome_and_its_callback_are_one_write(store: Store) -> None:
    [n] = await store.create([email(1, callback_url="https://hooks.example.com/herald")])
    [claim] = await store.claim(1, 30)
    assert claim.callback_url == "https://hooks.example.com/herald"
    sent = Sent(claim, "smtp", "m-1", 5.0, time.time(), callback=claim.callback_url)
    assert await store.complete([sent]) == 1
    [hook] = (await store.find("default", ListFilter(channel=Channel.WEBHOOK), 1, 10)).items
    assert hook.recipient == "https://hooks.example.com/herald"
    assert hook.metadata["callbackFor"] == n.id and hook.priority is Priority.HIGH


async def test_work_written_elsewhere_wakes_a_waiting_worker(store: Store, other: Store) -> None:
    if not store.notifies_work:
        pytest.skip("this store wakes only its own process; workers elsewhere poll")
    await store.wait_for_work(0.01)  # starts listening
    await asyncio.sleep(0.3)
    waiter = asyncio.create_task(store.wait_for_work(5))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    await other.create([email(1)])
    await asyncio.wait_for(waiter, 2)
    assert time.perf_counter() - started < 0.5
    # A notification scheduled for later wakes the waiter when it falls due.
    await other.create([email(2, scheduled_at=time.time() + 0.6)])
    started = time.perf_counter()
    await store.wait_for_work(0.05)  # drains the wake-up of the commit itself
    await store.wait_for_work(5)
    assert 0.3 < time.perf_counter() - started < 1.5


async def test_text_the_store_cannot_hold_is_refused_cleanly(store: Store) -> None:
    """SQLite (and memory) keep a NUL character; PostgreSQL cannot, and says so with a
    typed error."""
    item = NewNotification(Channel.EMAIL, "a@example.com", "nul \x00 here", subject="s",
                           metadata={"k": "v\x00"})  # fmt: skip
    try:
        [n] = await store.create([item])
    except Unstorable:
        assert isinstance(store, PostgresStore)
    else:
        assert isinstance(store, SQLiteStore | MemoryStore)
        got = await store.get("default", n.id)
        assert got is not None and got.body == "nul \x00 here"
    [ok] = await store.create([email(1)])  # the store is still fine
    assert (await store.get("default", ok.id)) == ok


async def test_an_event_and_its_notifications_are_one_write(store: Store, other: Store) -> None:
    """A refused event row (its id is taken) keeps none of its notifications either."""
    event = NewEvent("e1", "default", "login", "a@example.com", {"userId": "u1"}, {}, None, 1.0)
    record, [note] = await store.create_event(event, [email(1)])
    assert record.notification_ids == (note.id,) and not record.verifiable
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own integrity error
        await other.create_event(event, [email(2), email(3)])
    assert (await store.find("default", ListFilter(), 1, 10)).total == 1
    unencodable = NewEvent("e2", "default", "login", None, {}, {}, None, 2.0)
    with pytest.raises(TypeError):  # the notifications fail after the event row was written
        await store.create_event(unencodable, [email(4, metadata={"x": object()})])
    assert await other.get_event("default", "e2") is None, "the event row went with them"
    assert await other.get_event("default", "e1") == record
    assert await other.get_event("other-tenant", "e1") is None
    queued = EventFilter(type="login", primary_status=Status.QUEUED, user_id="u1")
    assert [e.id for e in (await other.find_events("default", queued, 1, 10)).items] == ["e1"]
    sent = EventFilter(primary_status=Status.SENT)
    assert (await other.find_events("default", sent, 1, 10)).total == 0


async def test_event_types_and_sensitive_rows(store: Store, other: Store) -> None:
    from herald.events import EventTypeExists, parse

    kind = parse({"name": "sign-in", "targets": [{"template": "t", "channel": "EMAIL"}]})
    saved = await store.save_event_type("default", kind, create=True)
    assert saved.source == "api"
    with pytest.raises(EventTypeExists):
        await other.save_event_type("default", kind, create=True)
    await other.save_event_type("default", kind, create=False)  # replaces
    assert [t.name for t in await other.event_types("default")] == ["sign-in"]
    assert await other.event_types("elsewhere") == []
    assert await store.delete_event_type("default", "sign-in")
    assert not await other.delete_event_type("default", "sign-in")
    secret, plain = await store.create([email(1, metadata={"sensitive": True}), email(2)])
    found = await other.sensitive_notifications("default", [secret.id, plain.id])
    assert found == {secret.id}
    assert await other.sensitive_notifications("elsewhere", [secret.id]) == set()

"""The in-memory store under a fake clock: leases, schedules and buckets move when the test
says, and the worker runs on it without a database."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from herald.engine import Engine
from herald.errors import ConfigError
from herald.models import Channel, NewNotification, Priority, Retry, Sent, Status
from herald.store import open_store, sql
from herald.store.access import statements
from herald.store.memory import MemoryStore
from herald.store.memory.access import MemoryRunner
from herald.store.memory.statements import MemoryDialect
from tests.conftest import make_settings


class Clock:
    """POSIX seconds that pass only when the test moves them."""

    def __init__(self, now: float = 1_600_000_000.0) -> None:  # past: ids never step back
        self.now = now

    def __call__(self) -> float:
        return self.now


def email(n: int = 0, **kw: object) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", f"body {n}", subject="s", **kw)  # type: ignore[arg-type]


async def test_a_lease_expires_when_the_clock_passes_it() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    [n] = await store.create([email(1)])
    [first] = await store.claim(1, lease_seconds=30)
    clock.now += 29
    assert (await store.sweep(max_attempts=6)).expired == 0, "the lease still holds"
    clock.now += 2
    assert (await store.sweep(max_attempts=6)).expired == 1
    [second] = await store.claim(1, lease_seconds=30)
    assert await store.complete([Sent(first, "smtp", "late", 1.0, clock())]) == 0
    assert await store.complete([Sent(second, "smtp", "m", 1.0, clock())]) == 1
    got = await store.get("default", n.id)
    assert got is not None and (got.status, got.attempts) == (Status.SENT, 2)
    assert got.sent_at == clock.now


async def test_schedules_and_the_ladder_wait_for_the_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    [later] = await store.create([email(1, scheduled_at=clock.now + 60)])
    assert later.status is Status.SCHEDULED and await store.claim(10, 30) == []
    assert (await store.queues("default"))[0].delayed == 1
    clock.now += 60
    [claim] = await store.claim(10, 30)
    await store.complete([Retry(claim, "smtp", "451", clock.now + 300, 1, "retry-1", clock.now)])
    assert {q.name: q.delayed for q in await store.queues("default")}["retry-1"] == 1
    clock.now += 299
    assert await store.claim(10, 30) == [] and await store.backlog() == 0
    clock.now += 1
    assert [c.id for c in await store.claim(10, 30)] == [later.id]


async def test_priority_then_due_time_orders_claims() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    [old_low] = await store.create([email(1, priority=Priority.LOW)])
    clock.now += 1
    [new_high, newer_high] = await store.create([email(2, priority=Priority.HIGH),
                                                 email(3, priority=Priority.HIGH)])  # fmt: skip
    claims = await store.claim(10, 30)
    assert {c.id for c in claims[:2]} == {new_high.id, newer_high.id}
    assert claims[2].id == old_low.id


async def test_the_token_bucket_refills_with_the_clock() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    assert await store.take_tokens("smtp", rate=1, burst=2, want=5) == (2, 0.0)
    granted, wait = await store.take_tokens("smtp", rate=1, burst=2, want=1)
    assert granted == 0 and wait == pytest.approx(1.0)
    clock.now += 1
    assert await store.take_tokens("smtp", rate=1, burst=2, want=1) == (1, 0.0)
    await store.pause_provider("smtp", clock.now + 10)
    assert await store.take_tokens("smtp", rate=1, burst=2, want=1) == (0, 10.0)


async def test_two_stores_beside_each_other_share_their_tables() -> None:
    store = MemoryStore()
    other = store.beside()
    [n] = await store.create([email(1)])
    assert await other.get("default", n.id) == n
    [claim] = await other.claim(1, 30)
    assert await store.claim(1, 30) == [] and claim.id == n.id


def test_every_named_statement_has_its_memory_twin() -> None:
    """Access and the shared rules run here only if each statement they name is answered."""
    assert set(statements("sqlite")) <= set(dir(MemoryRunner))
    for dialect in ("sqlite", "postgres"):
        assert set(sql.queries(dialect, "events.sql")) <= set(dir(MemoryDialect)), dialect
    sqlite, postgres = (sql.queries(d, "events.sql") for d in ("sqlite", "postgres"))
    assert set(sqlite) == set(postgres), "both dialects answer the same names"
    for name, text in sqlite.items():
        ours = {int(n) for n in re.findall(r"\?(\d+)", text)}
        theirs = {int(n) for n in re.findall(r"\$(\d+)", postgres[name])}
        assert ours == theirs, f"{name}: the same parameters in both dialects"


def test_no_database_url_names_the_memory_store(tmp_path: Path) -> None:
    for url in ("memory://", "memory:", "mem://x"):
        with pytest.raises(ConfigError):
            open_store(make_settings(tmp_path, database_url=url))


async def test_the_worker_delivers_through_the_memory_store(tmp_path: Path) -> None:
    """A whole engine (worker, capture provider, retention) on the memory store."""
    store = MemoryStore()
    engine = Engine(make_settings(tmp_path), deliver=True, store=store)
    await engine.start()
    try:
        [n] = await store.create([email(1)])
        for _ in range(200):
            got = await store.get("default", n.id)
            if got is not None and got.status is Status.SENT:
                break
            await asyncio.sleep(0.01)
        assert got is not None and got.status is Status.SENT and got.provider == "capture"
        [kept] = await store.mailbox("default", 10)
        assert kept.notification_id == n.id
        assert [e.status for e in await store.audit("default", n.id)][-1] is Status.SENT
    finally:
        await engine.stop()


async def test_retention_removes_old_sent_rows_only() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    sent, failed, waiting = await store.create([email(1), email(2), email(3)])
    claims = {c.id: c for c in await store.claim(2, 30)}
    await store.complete([Sent(claims[sent.id], "capture", "m", 1.0, clock()),
                          Retry(claims[failed.id], "smtp", "451", clock() + 60, 1, "retry-1",
                                clock())])  # fmt: skip
    assert await store.clean(clock.now - 3600) == 0, "nothing is old yet"
    clock.now += 10
    assert await store.clean(clock.now) == 1
    assert await store.get("default", sent.id) is None
    assert await store.audit("default", sent.id) == []
    assert await store.get("default", waiting.id) is not None

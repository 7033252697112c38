"""An attempt's budget and the priority lanes its waits go through; settings that fit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from herald.budget import Budget, Lanes, current
from herald.models import Priority
from tests.conftest import make_settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_waits_may_spend_only_the_first_half_of_the_budget() -> None:
    clock = Clock()
    budget = Budget(deadline=110.0, total=10.0, priority=Priority.HIGH, clock=clock)
    assert budget.remaining() == 10.0 and budget.wait_limit() == 5.0
    clock.now = 104.0
    assert budget.wait_limit() == 1.0
    clock.now = 107.0
    assert budget.wait_limit() == 0.0 and budget.remaining() == 3.0
    clock.now = 111.0
    assert budget.remaining() == 0.0
    assert not budget.outgoing
    budget.calling = "smtp"
    assert budget.outgoing


def test_the_current_budget_is_the_one_applied() -> None:
    budget = Budget.lasting(5)
    assert current() is None
    with budget.applied():
        assert current() is budget
    assert current() is None


async def test_lanes_serve_the_highest_priority_first_then_in_order() -> None:
    lanes = Lanes(1)
    await lanes.acquire(Priority.LOW)  # held
    served: list[str] = []

    async def wait(name: str, priority: Priority) -> None:
        await lanes.acquire(priority)
        served.append(name)
        lanes.release()

    tasks = [asyncio.create_task(wait(f"low{i}", Priority.LOW)) for i in range(5)]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(wait("critical", Priority.CRITICAL)))
    tasks.append(asyncio.create_task(wait("high", Priority.HIGH)))
    await asyncio.sleep(0)
    assert lanes.waiting == 7
    lanes.release()
    async with asyncio.timeout(1):
        await asyncio.gather(*tasks)
    assert served == ["critical", "high", "low0", "low1", "low2", "low3", "low4"]


async def test_a_waiter_that_gives_up_loses_no_slot() -> None:
    lanes = Lanes(1)
    await lanes.acquire()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await lanes.acquire(Priority.CRITICAL)
    assert lanes.waiting == 0
    lanes.release()
    async with asyncio.timeout(1):
        await lanes.acquire()  # the slot came back


async def test_a_slot_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    lanes = Lanes(1)
    await lanes.acquire()
    first = asyncio.create_task(lanes.acquire())
    second = asyncio.create_task(lanes.acquire())
    await asyncio.sleep(0)
    lanes.release()  # granted to ``first``...
    first.cancel()  # ...which is cancelled before it runs
    async with asyncio.timeout(1):
        await second
    assert first.cancelled()


def test_settings_refuse_an_smtp_timeout_longer_than_an_attempt(tmp_path: Path) -> None:
    smtp = {"smtp_host": "127.0.0.1", "smtp_tls": "none"}
    with pytest.raises(ValidationError) as caught:
        make_settings(tmp_path, **smtp, lease_seconds=20, smtp_timeout=30)
    text = str(caught.value)
    assert "HERALD_SMTP_TIMEOUT (30s)" in text and "HERALD_LEASE_SECONDS (20s)" in text
    assert "HERALD_LEASE_MARGIN (2s)" in text
    settings = make_settings(tmp_path, **smtp, lease_seconds=20, smtp_timeout=10)
    assert settings.lease_margin == 2 and settings.attempt_seconds == 18
    # A timeout of a provider nobody uses is no reason to refuse.
    assert make_settings(tmp_path, lease_seconds=2).attempt_seconds == pytest.approx(1.8)


def test_settings_refuse_a_webhook_timeout_or_margin_that_cannot_fit(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="HERALD_WEBHOOK_TIMEOUT"):
        make_settings(tmp_path, webhook_providers=["webhook"], lease_seconds=5,
                      webhook_timeout=10)  # fmt: skip
    with pytest.raises(ValidationError, match=r"HERALD_LEASE_MARGIN .* below HERALD_LEASE_SECONDS"):
        make_settings(tmp_path, lease_seconds=5, lease_margin=5)
    assert make_settings(tmp_path).attempt_seconds == 55, "the default lease fits every default"

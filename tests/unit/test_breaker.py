"""The circuit breaker and the failover chain, with a clock and providers of the test's own."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import ClassVar

import pytest

from herald.budget import Budget
from herald.delivery.breaker import Breaker, Breakers, State
from herald.delivery.chain import Chain, Route
from herald.delivery.ratelimit import Pacer
from herald.errors import PermanentError, StoreUnavailable, Throttled, TransientError
from herald.models import Channel
from herald.providers.base import Message, Provider, Receipt
from herald.store.memory import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_then_half_opens_and_closes() -> None:
    clock = Clock()
    changes: list[State] = []
    breaker = Breaker("p", threshold=3, reset_after=30, on_change=lambda b, s: changes.append(s),
                      clock=clock)  # fmt: skip
    for _ in range(2):
        assert breaker.allow()
        breaker.failed()
    assert breaker.state is State.CLOSED
    breaker.failed()
    assert breaker.state is State.OPEN and not breaker.allow()
    assert breaker.retry_in() == 30
    clock.now = 29.9
    assert not breaker.allow()
    clock.now = 30
    assert breaker.state is State.HALF_OPEN
    assert breaker.allow() and not breaker.allow(), "one trial call at a time"
    breaker.succeeded()
    assert breaker.state is State.CLOSED and breaker.failures == 0
    assert changes == [State.OPEN, State.HALF_OPEN, State.CLOSED]


def test_failed_trial_opens_again() -> None:
    clock = Clock()
    breaker = Breaker("p", threshold=1, reset_after=5, clock=clock)
    breaker.failed()
    clock.now = 5
    assert breaker.allow()
    breaker.failed()
    assert breaker.state is State.OPEN and breaker.retry_in() == 5
    breaker.release()


def test_success_resets_the_count() -> None:
    breaker = Breaker("p", threshold=3)
    breaker.failed()
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    breaker.failed()
    assert breaker.state is State.CLOSED


class Scripted(Provider):
    """Answers from a script: a Receipt, or an exception to raise."""

    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)

    def __init__(self, name: str, *script: Exception | None) -> None:
        self.name = name  # type: ignore[misc]
        self.script = list(script)
        self.calls: list[float] = []

    async def send(self, message: Message) -> Receipt:
        self.calls.append(time.monotonic())
        step = self.script.pop(0) if self.script else None
        if step is not None:
            raise step
        return Receipt(self.name, f"{self.name}-{len(self.calls)}")


class NoStore:
    """Pacers without a rate limit never touch the store."""


def route(provider: Scripted, threshold: int = 2) -> Route:
    return Route(provider, Breakers(provider.name, threshold=threshold, reset_after=60),
                 Pacer(NoStore(), provider.name, None))  # type: ignore[arg-type]  # fmt: skip


def within(wait: float) -> Budget:
    """A budget whose waits may last ``wait`` seconds (half of it)."""
    return Budget.lasting(2 * wait)


MESSAGE = Message("n1", "default", Channel.EMAIL, "a@example.com", "hi", subject="s")


async def test_transient_error_fails_over_and_open_breaker_is_skipped() -> None:
    first = Scripted("primary", TransientError("down"), TransientError("down"))
    second = Scripted("backup")
    chain = Chain([route(first), route(second)])
    for _ in range(4):
        receipt = await chain.send(MESSAGE, within(1))
        assert receipt.provider == "backup"
    assert len(first.calls) == 2, "no call reaches a provider whose breaker is open"
    assert chain.routes[0].breakers.get().state is State.OPEN


async def test_permanent_error_ends_the_attempt_and_names_the_provider() -> None:
    first = Scripted("primary", PermanentError("550 no such user"))
    second = Scripted("backup")
    chain = Chain([route(first), route(second)])
    with pytest.raises(PermanentError) as caught:
        await chain.send(MESSAGE, within(1))
    assert caught.value.provider == "primary" and second.calls == []
    assert chain.routes[0].breakers.get().failures == 0, "a bad address says the provider is up"


async def test_retry_after_pauses_the_provider() -> None:
    provider = Scripted("sms", TransientError("429 slow down", retry_after=2))
    chain = Chain([route(provider, threshold=10)])
    with pytest.raises(TransientError):
        await chain.send(MESSAGE, within(5))
    with pytest.raises(Throttled) as caught:
        await chain.send(MESSAGE, within(0.5))  # would have to wait about 2 s
    assert 1.5 < caught.value.wait <= 2
    started = time.monotonic()
    await chain.send(MESSAGE, within(5))
    assert provider.calls[1] - provider.calls[0] >= 2.0
    assert time.monotonic() - started >= 1.4


async def test_all_breakers_open_defers_without_an_attempt() -> None:
    only = Scripted("p", TransientError("down"))
    chain = Chain([route(only, threshold=1)])
    with pytest.raises(TransientError):
        await chain.send(MESSAGE, within(1))
    with pytest.raises(Throttled) as caught:
        await chain.send(MESSAGE, within(1))
    assert caught.value.wait == pytest.approx(60, abs=1)
    assert caught.value.cause == "breaker_open"  # notifications_deferred_total's reason
    assert len(only.calls) == 1


async def test_a_deferral_says_what_held_the_send_back() -> None:
    """An open breaker is not a rate limit: the words (kept in the history) tell which,
    with the failures that opened it and when it lets a trial through."""
    clock = Clock()
    breaker = Breaker("smtp", threshold=3, reset_after=30, clock=clock)
    for _ in range(3):
        breaker.failed()
    clock.now = 10
    with pytest.raises(Throttled) as caught:
        await breaker.admit(0.0)
    trial = datetime.fromisoformat(str(caught.value).rpartition(" at ")[2])
    assert str(caught.value).startswith("smtp circuit open after 3 consecutive failures; next ")
    assert "rate limit" not in str(caught.value) and caught.value.wait == 20
    assert abs(trial.timestamp() - (time.time() + 20)) < 2

    limited = Pacer(MemoryStore(), "twilio", rate=0.1, burst=1)
    await limited.acquire(within(1))
    with pytest.raises(Throttled) as caught:
        await limited.acquire(within(0.5))
    assert str(caught.value) == "twilio rate limit reached (0.1/s)"

    paused = Pacer(NoStore(), "fcm", None)  # type: ignore[arg-type]
    await paused.pause(30)  # the provider's own 429 with Retry-After
    with pytest.raises(Throttled) as caught:
        await paused.acquire(within(0.5))
    assert str(caught.value).startswith("fcm asked to hold off until ")


async def test_a_provider_without_capacity_is_skipped_without_counting_a_failure() -> None:
    # An SMTP pool that stayed full past the wait bound raises Throttled itself.
    busy = Scripted("primary", *[Throttled("primary", 1.0) for _ in range(3)])
    chain = Chain([route(busy, threshold=2), route(Scripted("backup"))])
    for _ in range(3):
        receipt = await chain.send(MESSAGE, within(1))
        assert receipt.provider == "backup"
    breaker = chain.routes[0].breakers.get()
    assert breaker.state is State.CLOSED and breaker.failures == 0

    alone = Chain([route(Scripted("p", Throttled("p", 2.5)))])
    with pytest.raises(Throttled) as caught:
        await alone.send(MESSAGE, within(1))
    assert caught.value.wait == 2.5, "nothing was attempted: the worker defers it"


class PerHost(Scripted):
    def destination(self, recipient: str) -> str | None:
        return recipient.split("/")[2]


async def test_per_destination_breakers_keep_one_bad_receiver_to_itself() -> None:
    hook = PerHost("webhook", *[TransientError("503")] * 3)
    chain = Chain([route(hook, threshold=2)])
    bad = Message("n1", "default", Channel.WEBHOOK, "https://bad.example/h", "x")
    good = Message("n2", "default", Channel.WEBHOOK, "https://good.example/h", "x")
    for _ in range(2):
        with pytest.raises(TransientError):
            await chain.send(bad, within(1))
    with pytest.raises(Throttled):
        await chain.send(bad, within(1))  # its breaker is open
    with pytest.raises(TransientError):
        await chain.send(good, within(1))  # the third scripted failure, on another host
    assert (await chain.send(good, within(1))).provider == "webhook"
    assert chain.routes[0].breakers.get("bad.example").state is State.OPEN
    assert chain.routes[0].breakers.get("good.example").state is State.CLOSED


class Picky(Scripted):
    def accepts(self, recipient: str) -> bool:
        return recipient.startswith("{")


async def test_providers_that_cannot_take_the_recipient_are_skipped() -> None:
    webpush, fcm = Picky("webpush"), Scripted("fcm")
    chain = Chain([route(webpush), route(fcm)])
    token = Message("n1", "default", Channel.PUSH, "fcm-token-abc:123", "x")
    assert (await chain.send(token, within(1))).provider == "fcm"
    assert webpush.calls == []
    only_webpush = Chain([route(Picky("webpush"))])
    with pytest.raises(PermanentError, match="takes this recipient"):
        await only_webpush.send(token, within(1))


# -- the half-open trial: always ended, and awaited rather than turned away --


def half_open(reset_after: float = 60) -> tuple[Breaker, Clock]:
    clock = Clock()
    breaker = Breaker("p", threshold=1, reset_after=reset_after, clock=clock)
    breaker.failed()
    clock.now = reset_after
    assert breaker.state is State.HALF_OPEN
    return breaker, clock


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    "escaping", [asyncio.CancelledError, StoreUnavailable, Boom, TimeoutError], ids=repr
)
async def test_a_trial_ends_whatever_escapes_it(escaping: type[BaseException]) -> None:
    breaker, _ = half_open()
    with pytest.raises(escaping):
        async with breaker.call() as call:
            assert breaker.on_trial
            raise escaping()
    assert call.outcome is None and not breaker.on_trial, "the trial was given back"
    async with asyncio.timeout(1):
        async with breaker.call():  # the next call is the trial, at once
            assert breaker.on_trial


async def test_a_released_trial_lets_the_next_send_through_at_once() -> None:
    """The token bucket's store fails during the trial: nothing went out, so the
    trial is given back (``Breaker.release``) and the next send is the trial."""
    provider = Scripted("p")
    down = FailingBucket()
    chain = Chain([Route(provider, Breakers("p", threshold=1, reset_after=0.05),
                         Pacer(down, "p", rate=10))])  # type: ignore[arg-type]  # fmt: skip
    breaker = chain.routes[0].breakers.get()
    breaker.failed()
    await asyncio.sleep(0.06)
    with pytest.raises(Throttled):
        await chain.send(MESSAGE, within(5))
    assert not breaker.on_trial
    down.working = True
    started = time.monotonic()
    assert (await chain.send(MESSAGE, within(5))).provider == "p"
    assert time.monotonic() - started < 0.5, "the next send waited for a trial nobody runs"
    assert breaker.state is State.CLOSED


class FailingBucket:
    """A rate limit whose shared bucket cannot be reached until ``working``."""

    def __init__(self) -> None:
        self.working = False

    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        if not self.working:
            raise StoreUnavailable("connection refused")
        return want, 0.0


class Slow(Scripted):
    """Each call takes ``delay`` seconds; records how many overlap."""

    def __init__(self, name: str, delay: float, *script: Exception | None) -> None:
        super().__init__(name, *script)
        self.delay = delay
        self.active = 0
        self.most = 0

    async def send(self, message: Message) -> Receipt:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(self.delay)
            return await super().send(message)
        finally:
            self.active -= 1


async def test_sends_behind_a_trial_wait_for_its_success() -> None:
    provider = Slow("p", 0.3)
    chain = Chain([Route(provider, Breakers("p", threshold=1, reset_after=0.5),
                         Pacer(NoStore(), "p", None))])  # type: ignore[arg-type]  # fmt: skip
    chain.routes[0].breakers.get().failed()
    await asyncio.sleep(0.51)
    receipts = await asyncio.gather(*(chain.send(MESSAGE, within(5)) for _ in range(20)))
    assert [r.provider for r in receipts] == ["p"] * 20, "none was turned away"
    assert provider.calls[1] - provider.calls[0] >= 0.25, "the others waited for the trial"
    assert chain.routes[0].breakers.get().state is State.CLOSED


async def test_sends_behind_a_failed_trial_are_deferred_until_the_reset() -> None:
    provider = Slow("p", 0.2, TransientError("still down"))
    chain = Chain([Route(provider, Breakers("p", threshold=1, reset_after=0.1),
                         Pacer(NoStore(), "p", None))])  # type: ignore[arg-type]  # fmt: skip
    chain.routes[0].breakers.get().failed()
    await asyncio.sleep(0.11)
    results = await asyncio.gather(
        *(chain.send(MESSAGE, within(5)) for _ in range(10)), return_exceptions=True
    )
    assert isinstance(results[0], TransientError)
    deferred = [r for r in results[1:] if isinstance(r, Throttled)]
    assert len(deferred) == 9 and len(provider.calls) == 1
    assert all(t.wait > 0.05 for t in deferred), "deferred for the reset time, not for zero"


async def test_a_wait_for_the_trial_is_bounded_by_the_budget_and_never_zero() -> None:
    provider = Slow("p", 1.0)
    chain = Chain([Route(provider, Breakers("p", threshold=1, reset_after=0.5),
                         Pacer(NoStore(), "p", None))])  # type: ignore[arg-type]  # fmt: skip
    chain.routes[0].breakers.get().failed()
    await asyncio.sleep(0.51)
    trial = asyncio.create_task(chain.send(MESSAGE, within(5)))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        await chain.send(MESSAGE, within(0.2))
    assert 0.15 <= time.monotonic() - started < 0.6
    assert caught.value.wait >= 1.0
    await trial


async def test_a_busy_trial_fails_over_to_the_next_provider_first() -> None:
    primary, backup = Slow("primary", 0.5), Scripted("backup")
    chain = Chain([route(primary, threshold=1), route(backup)])
    breaker = chain.routes[0].breakers.get()
    breaker.reset_after = 0.05
    breaker.failed()
    await asyncio.sleep(0.06)
    trial = asyncio.create_task(chain.send(MESSAGE, within(5)))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    assert (await chain.send(MESSAGE, within(5))).provider == "backup"
    assert time.monotonic() - started < 0.3
    assert (await trial).provider == "primary"

"""The fault-injection provider: failure rate, kind, latency, reproducibility."""

from __future__ import annotations

import random
import time
from typing import Any, cast

import pytest

from herald.config import Settings
from herald.errors import DeliveryError, PermanentError, TransientError
from herald.models import Channel
from herald.providers.base import Message
from herald.providers.fault import FaultProvider
from herald.store.base import Store


def fault(rng: random.Random | None = None, **settings: Any) -> FaultProvider:
    return FaultProvider(Settings(**settings), cast(Store, None), rng=rng)


def message(n: int = 0) -> Message:
    return Message(
        id=f"n{n}", tenant_id="default", channel=Channel.SMS, recipient="+15550100", body="hi"
    )


async def test_rate_zero_always_succeeds() -> None:
    provider = fault(fault_failure_rate=0.0)

    receipts = [await provider.send(message(i)) for i in range(200)]

    assert [r.message_id for r in receipts] == [f"fault-n{i}" for i in range(200)]
    assert {r.provider for r in receipts} == {"fault"}


@pytest.mark.parametrize(
    ("kind", "error"), [("transient", TransientError), ("permanent", PermanentError)]
)
async def test_rate_one_always_fails_with_the_configured_kind(
    kind: str, error: type[DeliveryError]
) -> None:
    provider = fault(fault_failure_rate=1.0, fault_error=kind)

    for i in range(50):
        with pytest.raises(error) as caught:
            await provider.send(message(i))
        assert caught.value.provider == "fault"


async def test_latency_is_honoured() -> None:
    provider = fault(fault_latency_ms=50)

    started = time.perf_counter()
    await provider.send(message())
    elapsed = time.perf_counter() - started

    assert 0.045 <= elapsed < 1.0


async def test_zero_latency_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(delay: float) -> None:
        raise AssertionError("slept")

    monkeypatch.setattr("herald.providers.fault.asyncio.sleep", no_sleep)

    await fault(fault_latency_ms=0).send(message())


async def outcomes(provider: FaultProvider, count: int) -> list[bool]:
    result = []
    for i in range(count):
        try:
            await provider.send(message(i))
        except TransientError:
            result.append(False)
        else:
            result.append(True)
    return result


async def test_seeded_rng_is_deterministic() -> None:
    first = await outcomes(fault(random.Random(7), fault_failure_rate=0.3), 300)
    second = await outcomes(fault(random.Random(7), fault_failure_rate=0.3), 300)

    assert first == second
    assert 45 <= first.count(False) <= 135  # about 30% of 300


def test_serves_every_channel() -> None:
    assert FaultProvider.channels == frozenset(Channel)

"""Fault injection: a provider that is slow and fails on demand.

Tests and benchmarks use it to exercise the retry ladder, the breaker and
failover without a real network. ``send`` sits on the benchmark hot path, so
it does no work that its settings do not ask for.
"""

from __future__ import annotations

import asyncio
import random

from ..config import Settings
from ..errors import PermanentError, TransientError
from ..models import Channel
from ..store.base import Store
from .base import Message, Provider, Receipt, register


@register("fault")
class FaultProvider(Provider):
    name = "fault"
    channels = frozenset(Channel)

    def __init__(
        self, settings: Settings, store: Store, *, rng: random.Random | None = None
    ) -> None:
        """``rng`` makes the failures reproducible; by default they are not."""
        self._delay = settings.fault_latency_ms / 1000
        self._rate = settings.fault_failure_rate
        self._error = TransientError if settings.fault_error == "transient" else PermanentError
        self._random = (rng if rng is not None else random.Random()).random

    async def send(self, message: Message) -> Receipt:
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._rate and self._random() < self._rate:
            raise self._error("injected failure", provider=self.name)
        return Receipt(self.name, f"fault-{message.id}")

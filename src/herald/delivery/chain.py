"""A channel's providers in failover order, each behind its breaker and pacer.

A transient error, an open breaker or a throttled provider moves the attempt
to the next provider; a permanent error ends it. The receipt or the error
names the provider that was used. When no provider could even be called
(all open or throttled), nothing was attempted: ``Throttled`` says how long
to wait, and the worker puts the notification back without spending an attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from ..errors import PermanentError, TransientError
from ..providers.base import Message, Provider, Receipt
from .breaker import Breaker
from .ratelimit import Pacer, Throttled

log = structlog.get_logger("herald.chain")


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    breaker: Breaker
    pacer: Pacer


class Chain:
    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes:
            raise ValueError("a chain needs at least one provider")
        self.routes = list(routes)

    async def send(self, message: Message, max_wait: float) -> Receipt:
        last: TransientError | None = None
        waits: list[float] = []
        for route in self.routes:
            name = route.provider.name
            if not route.breaker.allow():
                waits.append(route.breaker.retry_in())
                continue
            try:
                await route.pacer.acquire(max_wait)
            except Throttled as throttled:
                route.breaker.release()
                waits.append(throttled.wait)
                continue
            try:
                receipt = await route.provider.send(message)
            except PermanentError as exc:
                route.breaker.succeeded()  # the provider answered: it is up
                exc.provider = exc.provider or name
                raise
            except TransientError as exc:
                route.breaker.failed()
                exc.provider = exc.provider or name
                if exc.retry_after:
                    await route.pacer.pause(exc.retry_after)
                log.info("provider_failed_over", provider=name, error=str(exc))
                last = exc
                continue
            except Exception:
                route.breaker.failed()
                raise
            route.breaker.succeeded()
            return receipt
        if last is not None:
            raise last
        names = ", ".join(r.provider.name for r in self.routes)
        raise Throttled(names, min(waits) if waits else 1.0)

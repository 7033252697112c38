"""A channel's providers in failover order, each behind its breaker and pacer.

A transient error, an open breaker or a throttled provider moves the attempt
to the next provider; a permanent error ends it. The receipt or the error
names the provider that was used. When no provider could even be called
(all open or throttled, by its pacer or by the provider itself raising
``Throttled`` because it had no capacity in time), nothing was attempted:
``Throttled`` says how long to wait, and the worker puts the notification
back without spending an attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from ..errors import PermanentError, TransientError
from ..providers.base import Message, Provider, Receipt
from .breaker import Breakers
from .ratelimit import Pacer, Throttled

log = structlog.get_logger("herald.chain")


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    breakers: Breakers
    pacer: Pacer


class Chain:
    def __init__(self, routes: Sequence[Route]) -> None:
        if not routes:
            raise ValueError("a chain needs at least one provider")
        self.routes = list(routes)

    async def send(self, message: Message, max_wait: float) -> Receipt:
        last: TransientError | None = None
        waits: list[float] = []
        routes = [r for r in self.routes if r.provider.accepts(message.recipient)]
        if not routes:
            names = ", ".join(r.provider.name for r in self.routes)
            raise PermanentError(f"no provider of this channel ({names}) takes this recipient")
        for route in routes:
            name = route.provider.name
            breaker = route.breakers.get(route.provider.destination(message.recipient))
            if not breaker.allow():
                waits.append(breaker.retry_in())
                continue
            try:
                await route.pacer.acquire(max_wait)
            except Throttled as throttled:
                breaker.release()
                waits.append(throttled.wait)
                continue
            try:
                receipt = await route.provider.send(message)
            except PermanentError as exc:
                breaker.succeeded()  # the provider answered: it is up
                exc.provider = exc.provider or name
                raise
            except TransientError as exc:
                breaker.failed()
                exc.provider = exc.provider or name
                if exc.retry_after:
                    await route.pacer.pause(exc.retry_after)
                log.info("provider_failed_over", provider=name, error=str(exc))
                last = exc
                continue
            except Throttled as throttled:
                # The provider had no capacity in time (a full SMTP pool): nothing went out.
                breaker.release()
                waits.append(throttled.wait)
                continue
            except Exception:
                breaker.failed()
                raise
            breaker.succeeded()
            return receipt
        if last is not None:
            raise last
        names = ", ".join(r.provider.name for r in self.routes)
        raise Throttled(names, min(waits) if waits else 1.0)

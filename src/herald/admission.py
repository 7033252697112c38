"""Load shedding by priority: seed 004's graceful degradation.

When the queued backlog passes ``HERALD_SHED_BACKLOG`` (100,000 by default,
seed 004's queue cap), new LOW and MEDIUM notifications are refused with 503
and ``Retry-After`` while HIGH and CRITICAL are still taken, so a flood of
newsletters cannot delay a password reset. Shedding ends by itself once the
backlog falls under 90 % of the threshold (the gap keeps it from flapping).

The backlog is counted once a second by a background loop in each API
process (one indexed count), never per request.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from .errors import Overloaded
from .models import Priority
from .store import Store

log = structlog.get_logger("herald.admission")

RETRY_AFTER = 5  # seconds a shed client is asked to wait
RESUME_AT = 0.9  # of the threshold


class Admission:
    def __init__(self, store: Store, threshold: int, interval: float = 1.0) -> None:
        self.store = store
        self.threshold = threshold
        self.interval = interval
        self.backlog: int | None = None
        self.shedding = False
        self._task: asyncio.Task[None] | None = None

    def check(self, priorities: list[Priority] | tuple[Priority, ...]) -> None:
        """Raise ``Overloaded`` if any of these priorities is shed now."""
        if self.shedding and any(p < Priority.HIGH for p in priorities):
            raise Overloaded(self.reason(), RETRY_AFTER)

    def reason(self) -> str:
        return (
            f"The backlog ({self.backlog:,} waiting) passed HERALD_SHED_BACKLOG "
            f"({self.threshold:,}): LOW and MEDIUM notifications are refused until it falls "
            f"under {int(self.threshold * RESUME_AT):,}; HIGH and CRITICAL are still taken."
        )

    def observe(self, backlog: int) -> None:
        self.backlog = backlog
        if not self.shedding and backlog >= self.threshold:
            self.shedding = True
            log.warning("shedding_started", backlog=backlog, threshold=self.threshold)
        elif self.shedding and backlog < self.threshold * RESUME_AT:
            self.shedding = False
            log.warning("shedding_ended", backlog=backlog, threshold=self.threshold)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="herald-admission")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                self.observe(await self.store.backlog())
            except Exception as exc:  # keep the last state; the store's outage shows in health
                log.info("backlog_unknown", error=str(exc))
            await asyncio.sleep(self.interval)

"""Retention (seed 002): SENT notifications go after ``HERALD_CLEANUP_DAYS``.

FAILED ones stay until an operator replays or deletes them. Expired
idempotency keys go too, and so do ended dashboard sessions, old login
failures, the request budgets of past windows and the replay keys of delivery
receipts past their time. ``herald clean`` runs this once; a worker process
runs it every ``HERALD_CLEANUP_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from .config import Settings
from .errors import StoreUnavailable
from .store.base import Store
from .supervise import Liveness

log = structlog.get_logger("herald.retention")


@dataclass(frozen=True, slots=True)
class Cleaned:
    notifications: int
    idempotency_keys: int


async def clean_once(store: Store, settings: Settings) -> Cleaned:
    now = time.time()
    removed = await store.clean(now - settings.cleanup_days * 86_400)
    expired = await store.idempotency_expire(now - settings.idempotency_ttl_hours * 3600)
    await store.access.expire(
        now, settings.session_idle_minutes * 60, settings.session_max_hours * 3600
    )
    await store.forget_receipts_seen()
    if removed or expired:
        log.info("retention_cleaned", notifications=removed, idempotency_keys=expired)
    return Cleaned(removed, expired)


async def run_forever(store: Store, settings: Settings, live: Liveness) -> None:
    """Clean now and then every interval, until cancelled.

    Run it under a ``Supervisor``: an outage is waited out here, anything
    else ends this run and the supervisor restarts it.
    """
    while True:
        try:
            await clean_once(store, settings)
        except StoreUnavailable as exc:
            log.warning("retention_failed", error=str(exc))
        else:
            live.ok()
        await asyncio.sleep(settings.cleanup_interval)

"""Retention (seed 002): SENT notifications go after ``HERALD_CLEANUP_DAYS``.

FAILED ones go after ``HERALD_FAILED_RETENTION_DAYS`` if it is set (seed 002's
``removeOnFail``), and stay until an operator replays or deletes them if not.
With ``HERALD_KEEP_SENT`` (``removeOnComplete``'s count) each tenant keeps only
its newest sent ones. "Sent" is every status a provider accepted, and
SUPPRESSED (``models.DONE``). Expired idempotency keys go too, and so do ended
dashboard sessions, old login failures, the request budgets of past windows and
the replay keys of delivery receipts past their time. ``herald clean`` runs this
once; a worker process runs it every ``HERALD_CLEANUP_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from .config import Settings
from .errors import StoreUnavailable
from .models import Status
from .store.base import Store
from .supervise import Liveness

log = structlog.get_logger("herald.retention")


@dataclass(frozen=True, slots=True)
class Cleaned:
    notifications: int  # sent ones older than the days
    idempotency_keys: int
    failed: int = 0  # older than HERALD_FAILED_RETENTION_DAYS
    beyond_kept: int = 0  # sent ones beyond HERALD_KEEP_SENT


async def clean_once(store: Store, settings: Settings, now: float | None = None) -> Cleaned:
    """One retention run, as of ``now`` (the present unless a test moves it)."""
    now = time.time() if now is None else now
    removed = await store.clean(now - settings.cleanup_days * 86_400)
    failed = beyond_kept = 0
    if settings.failed_retention_days is not None:
        before = now - settings.failed_retention_days * 86_400
        failed = await store.clean(before, statuses=(Status.FAILED,))
    if settings.keep_sent is not None:
        beyond_kept = await store.trim_sent(settings.keep_sent)
    expired = await store.idempotency_expire(now - settings.idempotency_ttl_hours * 3600)
    await store.access.expire(
        now, settings.session_idle_minutes * 60, settings.session_max_hours * 3600
    )
    await store.forget_receipts_seen()
    if removed or failed or beyond_kept or expired:
        log.info("retention_cleaned", notifications=removed, failed=failed,
                 beyond_kept=beyond_kept, idempotency_keys=expired)  # fmt: skip
    return Cleaned(removed, expired, failed, beyond_kept)


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

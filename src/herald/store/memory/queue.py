"""The memory store's queue work: create, claim, complete, release and sweep over ``Tables``.

Functions of the tables and the time, like the SQL stores' write functions,
with the same effects row for row: the words of each history entry come from
``records.py``, as theirs do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import orjson
import structlog

from ...models import (
    ALL_QUEUES,
    CLAIMABLE,
    DLQ,
    Claim,
    Dead,
    NewNotification,
    Notification,
    Outcome,
    Priority,
    Retry,
    Sent,
    Status,
    Suppressed,
)
from .. import records
from ..ports import Swept
from ..rows import status_callback
from .tables import Row, Tables

log = structlog.get_logger("herald.store.memory")


def insert(t: Tables, items: Sequence[NewNotification], now: float) -> list[Notification]:
    """Store new notifications; an item whose idempotency key is taken gets the stored row."""
    created = []
    for item in items:
        key = None if item.idempotency_key is None else (item.tenant_id, item.idempotency_key)
        if key is not None and key in t.by_key:
            created.append(t.notifications[t.by_key[key]].notification())
            continue
        note = records.fresh(item, now)
        t.notifications[note.id] = Row.of(note)
        if key is not None:
            t.by_key[key] = note.id
        for status, message in records.created(note.status):
            t.audit(note.id, status, message, now, None)
        created.append(note)
    return created


def due(row: Row, now: float) -> bool:
    return row.status in CLAIMABLE and row.due_at <= now


def claim(
    t: Tables,
    limit: int,
    lease_seconds: float,
    min_priority: Priority,
    now: float,
    queues: Sequence[str] | None = None,
) -> list[Claim]:
    """Lease due rows, highest priority first then earliest due; paused lanes are skipped,
    and with ``queues`` every lane but those."""
    skip = t.paused if queues is None else t.paused | (set(ALL_QUEUES) - set(queues))
    ready = [
        r
        for r in t.notifications.values()
        if due(r, now) and r.priority >= min_priority and r.queue not in skip
    ]
    ready.sort(key=lambda r: (-r.priority, r.due_at, r.id))
    token = os.urandom(8).hex()
    claims = []
    for r in ready[:limit]:
        r.status, r.claim_token, r.lease_until = Status.PROCESSING, token, now + lease_seconds
        r.attempts += 1
        r.updated_at = now
        t.audit(r.id, "PROCESSING", records.CLAIMED, now, {"attempt": r.attempts})
        claims.append(
            Claim(
                id=r.id,
                tenant_id=r.tenant_id,
                channel=r.channel,
                recipient=r.recipient,
                subject=r.subject,
                body=r.body,
                html=r.html,
                metadata=orjson.loads(r.metadata),
                priority=r.priority,
                attempts=r.attempts,
                token=token,
                claimed_at=now,
                callback_url=r.callback_url,
                unregistered=(r.channel.value, r.recipient) in t.unregistered,
                category=r.category,
                suppressed=None if r.ignore_suppression else t.suppressed(r),
                unsubscribable=t.unsubscribable(r.tenant_id, r.category),
                max_retries=r.max_retries,
                queue=r.queue,
            )
        )
    return claims


def complete(t: Tables, outcomes: Sequence[Outcome], now: float) -> int:
    """Apply outcomes whose claim still holds the row; a stale one changes nothing."""
    applied = 0
    callbacks = []
    for o in outcomes:
        c = o.claim
        r = t.notifications.get(c.id)
        if r is None or r.claim_token != c.token:
            continue
        applied += 1
        r.lease_until = r.claim_token = None
        r.updated_at = o.at
        if isinstance(o, Sent):
            r.status, r.provider, r.provider_message_id = Status.SENT, o.provider, o.message_id
            r.processing_ms, r.sent_at, r.last_error = o.processing_ms, o.at, None
        elif isinstance(o, Retry):
            r.status, r.provider, r.last_error = Status.RETRYING, o.provider, o.error
            r.due_at, r.stage, r.queue = o.due_at, o.stage, o.queue
        elif isinstance(o, Dead):
            r.status, r.provider, r.last_error = Status.FAILED, o.provider, o.error
            r.queue, r.failed_at = DLQ, o.at
            if o.unregistered:
                t.unregistered[(c.channel.value, c.recipient)] = (o.provider, o.error, o.at)
        elif isinstance(o, Suppressed):
            r.status, r.last_error = Status.SUPPRESSED, o.reason
        else:
            r.status, r.due_at = Status.QUEUED, o.due_at
            r.attempts -= 1  # a deferral does not spend the attempt
        status, text, meta = records.outcome(o)
        t.audit(c.id, status, text, o.at, meta)
        if isinstance(o, Sent | Dead) and o.callback:
            callbacks.append(status_callback(o, o.callback))
    if applied < len(outcomes):
        log.info("stale_completions_ignored", count=len(outcomes) - applied)
    if callbacks:  # in the same write: an outcome is never recorded without its callback
        insert(t, callbacks, now)
    return applied


def release(t: Tables, claims: Sequence[Claim], now: float) -> int:
    released = 0
    for c in claims:
        r = t.notifications.get(c.id)
        if r is not None and r.claim_token == c.token:
            r.status, r.lease_until, r.claim_token = Status.QUEUED, None, None
            r.attempts -= 1
            r.updated_at = now
            t.audit(r.id, "QUEUED", records.RELEASED, now, None)
            released += 1
    return released


def sweep(t: Tables, max_attempts: int, now: float) -> Swept:
    """Expired leases back to the queue, or to the DLQ on the last allowed attempt."""
    expired = [
        r
        for r in t.notifications.values()
        if r.status is Status.PROCESSING and r.lease_until is not None and r.lease_until < now
    ]
    buried = []
    for r in expired:
        status, text, error = records.stalled(r.attempts, max_attempts)
        r.lease_until = r.claim_token = None
        r.updated_at = now
        if error is not None:
            r.status, r.queue, r.last_error, r.failed_at = Status.FAILED, DLQ, error, now
            buried.append(r.channel)
        else:
            r.status, r.due_at = Status.QUEUED, now
        t.audit(r.id, status, text, now, None)
    if expired:
        log.warning("stalled", count=len(expired))
    return Swept(len(expired), tuple(buried))

"""The PostgreSQL store's queue work: insert, claim, complete and sweep, in batches.

Functions of a connection, like ``store/sqlite/jobs.py``'s;
``PostgresStore`` owns the transactions (a function that writes with one
statement runs as that statement's own). Each batch is a handful of
statements whatever its size: rows travel as arrays, and the audit row that
ends an attempt is written by the statement that records its outcome. A new
notification is its row alone and a claim only stamps the row: ``history.py``
reads those entries back.

Several worker processes claim from one table: ``FOR UPDATE SKIP LOCKED``
gives each row to one claimer, and a completion applies only while the row
still carries the claim's token, in the same statement that checks it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from typing import Any, TypeVar

import asyncpg
import orjson
import structlog

from ...models import (
    Channel,
    Claim,
    Dead,
    Deferred,
    NewNotification,
    Notification,
    Outcome,
    Priority,
    Retry,
    Sent,
    Suppressed,
    new_ids,
)
from .. import records
from ..base import Created, Swept
from ..rows import notification_from_row, status_callback
from .listen import CHANNEL
from .pool import Q

log = structlog.get_logger("herald.store.postgres")

T = TypeVar("T")
SWEEP_BATCH = 5000
PART = 250  # rows per claim or completion statement; bigger batches run as several at once
PARTS = 4  # at most this many at once, so one batch never takes the whole pool
_CHANNELS = {c.value: c for c in Channel}  # a dict lookup is much cheaper than Channel(x)
_CHANNEL_QUEUES = {c: (c.value, c.queue) for c in Channel}  # and than c.value, c.queue
_PRIORITIES = {int(p): p for p in Priority}


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _storable(o: Outcome) -> Outcome:
    """The outcome with NUL characters replaced in the provider's words.

    PostgreSQL text and jsonb cannot hold NUL; an error message that carries
    one (a remote server's reply) must not stop its outcome being recorded.
    """
    if isinstance(o, Sent) and "\x00" not in o.message_id and "\x00" not in o.provider:
        return o  # the hot path: nothing to look at
    fields: dict[str, Any] = {
        name: value.replace("\x00", "\ufffd")
        for name in ("provider", "message_id", "error", "reason")
        if isinstance(value := getattr(o, name, None), str) and "\x00" in value
    }
    return dataclasses.replace(o, **fields) if fields else o


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as columns: what ``unnest`` takes, one array per column."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


async def insert(
    conn: asyncpg.Connection, items: Sequence[NewNotification], now: float
) -> list[Notification]:
    """Store new notifications (their rows alone); one result per item, in order.

    An item whose idempotency key is taken (here, by an earlier item of the
    same batch, or by another process) gets the stored row in its place.
    """
    notes = [records.fresh(item, now) for item in items]
    rows = [
        (
            n.id, n.tenant_id, n.channel.value, n.recipient, n.subject, n.body, n.html,
            _json(n.metadata), int(n.priority), n.status.value, n.queue, n.due_at,
            n.idempotency_key, n.scheduled_at, now, n.callback_url, n.category,
            n.ignore_suppression, n.max_retries, n.request_id,
        )
        for n in notes
    ]  # fmt: skip
    inserted = await conn.fetchval(Q["create"], *_columns(rows, 20), CHANNEL)
    if len(inserted) == len(notes):
        return notes
    taken = set(inserted)
    keys = [(n.tenant_id, n.idempotency_key) for n in notes if n.id not in taken]
    found = await conn.fetch(Q["by_idempotency_keys"], [k[0] for k in keys], [k[1] for k in keys])
    stored = {(r["tenant_id"], r["idempotency_key"]): notification_from_row(r) for r in found}
    return [n if n.id in taken else stored[(n.tenant_id, n.idempotency_key)] for n in notes]


#: The columns ``insert_many`` gives, in its rows' order (``insert``'s, as COPY takes them).
_COPY_COLUMNS = (
    "id", "tenant_id", "channel", "recipient", "subject", "body", "html", "metadata",
    "priority", "status", "queue", "due_at", "scheduled_at", "created_at", "updated_at",
    "callback_url", "category", "ignore_suppression", "max_retries", "request_id",
    "creation_derived",
)  # fmt: skip


async def insert_many(
    conn: asyncpg.Connection, items: Sequence[NewNotification], now: float
) -> list[Created]:
    """``insert`` without building a Notification per row (see ``Store.create_many``).

    The rows travel by COPY, then the NOTIFY, in one transaction. For 1,000
    rows at a time PostgreSQL spent 9 us of CPU a row on COPY, 17.5 us on the
    same rows sent as one JSON document of arrays and 21.5 us as one of
    objects; this process spent 4.3, 3.1 and 3.7 us building and sending them
    (measured), and the server shares the machine. (An array per column, as
    ``insert`` sends them, cost this process most: asyncpg checks every
    element against the collection ABCs.)
    """
    if any(item.idempotency_key is not None for item in items):
        return [(n.id, n.status) for n in await insert(conn, items, now)]
    created: list[Created] = []
    rows: list[tuple[Any, ...]] = []
    for item, note_id in zip(items, new_ids(len(items), now), strict=True):
        status, due_at = records.placement(item, now)
        channel, queue = _CHANNEL_QUEUES[item.channel]
        rows.append((
            note_id, item.tenant_id, channel, item.recipient, item.subject, item.body,
            item.html, item.metadata, int(item.priority), status.value, queue,
            due_at, item.scheduled_at, now, now, item.callback_url, item.category,
            item.ignore_suppression, item.max_retries, item.request_id, True,
        ))  # fmt: skip
        created.append((note_id, status))
    async with conn.transaction():
        await conn.copy_records_to_table("notifications", records=rows, columns=_COPY_COLUMNS)
        await conn.execute(Q["notify"], CHANNEL, repr(min(row[11] for row in rows)))
    return created


async def claim(
    conn: asyncpg.Connection, limit: int, lease_seconds: float, min_priority: Priority,
    now: float, queues: Sequence[str] | None = None,
) -> list[Claim]:  # fmt: skip
    token = os.urandom(8).hex()
    lanes = None if queues is None else list(queues)
    lease_until, priority = now + lease_seconds, int(min_priority)
    rows = await conn.fetch(Q["claim"], token, lease_until, now, priority, limit, lanes)
    claims = [
        Claim(
            id=r["id"],
            tenant_id=r["tenant_id"],
            channel=_CHANNELS[r["channel"]],
            recipient=r["recipient"],
            subject=r["subject"],
            body=r["body"],
            html=r["html"],
            metadata=r["metadata"],
            priority=_PRIORITIES[r["priority"]],
            attempts=r["attempts"],
            token=token,
            claimed_at=now,
            callback_url=r["callback_url"],
            unregistered=r["unregistered"],
            category=r["category"],
            suppressed=r["suppressed"],
            unsubscribable=r["unsubscribable"],
            max_retries=r["max_retries"],
            queue=r["queue"],
        )
        for r in rows
    ]
    claims.sort(key=lambda c: -c.priority)
    return claims


def split(rows: Sequence[T]) -> list[Sequence[T]]:
    """``rows`` in parts of about ``PART``, at most ``PARTS`` of them."""
    if not rows:
        return []
    count = min(PARTS, math.ceil(len(rows) / PART))
    size = math.ceil(len(rows) / count)
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def one_statement(outcomes: Sequence[Outcome]) -> bool:
    """Whether ``complete`` writes these with one statement (the common case: all sent)."""
    return all(isinstance(o, Sent) and not o.callback for o in outcomes)


async def complete(conn: asyncpg.Connection, outcomes: Sequence[Outcome], now: float) -> int:
    """Record outcomes whose claim token still matches; return how many applied."""
    sent: list[tuple[Any, ...]] = []
    retry: list[tuple[Any, ...]] = []
    dead: list[tuple[Any, ...]] = []
    deferred: list[tuple[Any, ...]] = []
    suppressed: list[tuple[Any, ...]] = []
    outcomes = [_storable(o) for o in outcomes]
    for o in outcomes:
        c = o.claim
        _, message, meta = records.outcome(o)
        if isinstance(o, Sent):  # one JSON document (see mark_sent): metadata stays a value
            sent.append((c.id, c.token, o.provider, o.message_id, o.processing_ms, o.at, message,
                         meta))  # fmt: skip
            continue
        tail = (o.at, message, _json(meta))
        if isinstance(o, Retry):
            retry.append((c.id, c.token, o.provider, o.error, o.due_at, o.stage, o.queue, *tail))
        elif isinstance(o, Dead):
            dead.append((c.id, c.token, o.provider, o.error, *tail))
        elif isinstance(o, Suppressed):
            suppressed.append((c.id, c.token, o.reason, *tail))
        else:
            deferred.append((c.id, c.token, o.due_at, *tail))
    applied: set[tuple[str, str]] = set()  # (id, token): a stale outcome may share the id
    if sent:
        try:
            document = orjson.dumps(sent).decode()
        except orjson.JSONEncodeError:  # a lone surrogate: the server refuses it as unstorable
            document = json.dumps(sent)
        applied.update((r["id"], r["token"]) for r in await conn.fetch(Q["mark_sent"], document))
    batches = (
        ("mark_retry", retry), ("mark_dead", dead), ("defer", deferred),
        ("mark_suppressed", suppressed),
    )  # fmt: skip
    for query, batch in batches:
        if batch:
            rows = await conn.fetch(Q[query], *_columns(batch, len(batch[0])))
            applied.update((r["id"], r["token"]) for r in rows)
    if len(applied) < len(outcomes):
        log.info("stale_completions_ignored", count=len(outcomes) - len(applied))
    live = [o for o in outcomes if (o.claim.id, o.claim.token) in applied]
    later = [o.due_at for o in live if isinstance(o, Retry | Deferred)]
    if later:  # tell every worker when these fall due, so none needs to poll for them
        await conn.execute(Q["notify"], CHANNEL, repr(min(later)))
    gone = [o for o in live if isinstance(o, Dead) and o.unregistered]
    if gone:
        await conn.execute(
            Q["remember_unregistered"],
            [o.claim.channel.value for o in gone],
            [o.claim.recipient for o in gone],
            [o.provider for o in gone],
            [o.error for o in gone],
            [o.at for o in gone],
        )
    callbacks = [
        status_callback(o, o.callback) for o in live if isinstance(o, Sent | Dead) and o.callback
    ]
    if callbacks:  # in the same transaction: an outcome is never recorded without its callback
        await insert(conn, callbacks, now)
    return len(live)


async def sweep(conn: asyncpg.Connection, max_attempts: int, now: float) -> Swept:
    """Return expired leases to the queue (or bury them); several sweepers never collide."""
    expired = await conn.fetch(Q["expired"], now, SWEEP_BATCH)
    if not expired:
        return Swept(0)
    changes = []
    audit = []
    buried = []
    for notification_id, tenant_id, attempts, claimed_at, channel in expired:
        status, message, error = records.stalled(attempts, max_attempts)
        changes.append((notification_id, status, error))
        audit.append((notification_id, tenant_id, status, message, now, None, claimed_at,
                      attempts))  # fmt: skip
        if error is not None:
            buried.append(Channel(channel))
    ids, statuses, errors = _columns(changes, 3)
    await conn.execute(Q["unstall"], ids, statuses, now, errors)
    await conn.execute(Q["insert_audit"], *_columns(audit, 8))
    await conn.execute(Q["notify"], CHANNEL, "")
    log.warning("stalled", count=len(expired))
    return Swept(len(expired), tuple(buried))

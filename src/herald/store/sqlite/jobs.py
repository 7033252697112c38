"""The SQLite store's queue work: create, claim, complete, release and sweep.

Functions of a connection, run on the store's writer thread inside its
group-commit transaction (``SQLiteStore`` submits them), like
``store/postgres/jobs.py`` for PostgreSQL. What they write is the history model of
``history.py``: a new notification is its row alone, a claim stamps the row,
and the end of an attempt is one audit row that says when it started.

A completion applies only while the row still holds the claim's token, and
the statement that changes the row is the one that checks it: a stale
completion (the lease expired, the row was claimed again) changes nothing.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

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
    Status,
    Suppressed,
    new_ids,
)
from .. import records, sql
from ..base import Created, Swept
from ..rows import notification_from_row, status_callback

log = structlog.get_logger("herald.store.sqlite")
Q = sql.queries("sqlite")

#: Rows per INSERT statement when many are stored at once. A statement per row
#: releases and re-takes the GIL around every row's step, and each re-take waits
#: while the event loop thread runs: with a busy thread beside it, 1,000 rows one
#: by one took 4.1 times as long as with it idle; 50 at a time, 2.7 times.
INSERT_CHUNK = 50
_NOTIFICATION_WIDTH = 21  # values per row of insert_notification
_AUDIT_WIDTH = 8  # values per row of insert_audit
_CHANNELS = {c: (c.value, c.queue) for c in Channel}  # dict lookups beat enum properties


def _chunked(query: str, rows: int) -> str:
    """``query`` (``INSERT ... VALUES (?, ...)``) made to insert ``rows`` rows at once."""
    head, values, one = query.rpartition("VALUES")
    return head + values + " " + ", ".join([one.strip()] * rows)


_INSERT_MANY = {
    name: _chunked(Q[name], INSERT_CHUNK) for name in ("insert_notification", "insert_audit")
}


def _insert(conn: sqlite3.Connection, name: str, values: list[Any], width: int) -> None:
    """Insert rows given as one flat list of ``width`` values each, ``INSERT_CHUNK`` at a time."""
    step = INSERT_CHUNK * width
    whole = len(values) - len(values) % step
    for start in range(0, whole, step):
        conn.execute(_INSERT_MANY[name], values[start : start + step])
    if whole < len(values):
        rest = values[whole:]
        conn.executemany(Q[name], [rest[i : i + width] for i in range(0, len(rest), width)])


def _row(
    item: NewNotification, note_id: str, status: Status, due_at: float, now: float
) -> tuple[Any, ...]:
    """A new notification's insert_notification values: all it writes (its history is read
    from them)."""
    channel, queue = _CHANNELS[item.channel]
    return (
        note_id, item.tenant_id, channel, item.recipient, item.subject, item.body, item.html,
        orjson.dumps(item.metadata).decode(), int(item.priority), status.value, queue, due_at,
        item.idempotency_key, item.scheduled_at, now, now, item.callback_url, item.category,
        item.ignore_suppression, item.max_retries, item.request_id,
    )  # fmt: skip


def create(
    conn: sqlite3.Connection, items: Sequence[NewNotification], now: float
) -> list[Notification]:
    """Store new notifications; an item whose idempotency key is taken gets the stored row."""
    created: list[Notification] = []
    rows: list[Any] = []
    for item in items:
        if item.idempotency_key is not None:
            cursor = conn.cursor()
            cursor.row_factory = sqlite3.Row
            row = cursor.execute(
                Q["by_idempotency_key"], (item.tenant_id, item.idempotency_key)
            ).fetchone()
            if row is not None:
                created.append(notification_from_row(row))
                continue
        note = records.fresh(item, now)
        rows += _row(item, note.id, note.status, note.due_at, now)
        created.append(note)
    _insert(conn, "insert_notification", rows, _NOTIFICATION_WIDTH)
    return created


def create_many(
    conn: sqlite3.Connection, items: Sequence[NewNotification], now: float
) -> list[Created]:
    """``create`` without building a Notification per row (see ``Store.create_many``)."""
    if any(item.idempotency_key is not None for item in items):
        return [(n.id, n.status) for n in create(conn, items, now)]
    created: list[Created] = []
    rows: list[Any] = []
    for item, note_id in zip(items, new_ids(len(items), now), strict=True):
        status, due_at = records.placement(item, now)
        rows += _row(item, note_id, status, due_at, now)
        created.append((note_id, status))
    _insert(conn, "insert_notification", rows, _NOTIFICATION_WIDTH)
    return created


_CHANNEL_OF = {c.value: c for c in Channel}  # a dict lookup is much cheaper than Channel(x)
_PRIORITY_OF = {int(p): p for p in Priority}

# The writer thread is the SQLite store's bottleneck (the drain kept it busy about 80%
# of the time), so the claim and completion work done on it is the SQL alone: rows are
# turned into Claims, and outcomes into statement values, by the caller, on the event
# loop's thread (``claims`` and ``Completion``). With that and one step per statement,
# the drain's writer took 26 us of CPU per notification instead of 41 (instrumented).


def claim(
    conn: sqlite3.Connection, token: str, limit: int, lease_seconds: float,
    min_priority: Priority, now: float, queues: Sequence[str] | None = None,
) -> str:  # fmt: skip
    """Lease due rows under ``token``, stamping the claim's start on each (``claimed_at``).

    Returns the rows as claim_pick's JSON, for ``claims``. They are chosen, then
    updated by rowid, in the writer's transaction: nothing can take them in between.
    """
    lanes = None if queues is None else orjson.dumps(list(queues)).decode()
    params = {"now": now, "min_priority": int(min_priority), "limit": limit, "queues": lanes}
    rowids, picked = conn.execute(Q["claim_pick"], params).fetchone()
    if rowids != "[]":
        marked = {"token": token, "lease_until": now + lease_seconds, "now": now, "rowids": rowids}
        conn.execute(Q["claim_mark"], marked)
    return str(picked)


def claims(picked: str, token: str, now: float) -> list[Claim]:
    """The Claims of ``claim``'s rows, highest priority first."""
    found = [
        Claim(
            id=r[0],
            tenant_id=r[1],
            channel=_CHANNEL_OF[r[2]],
            recipient=r[3],
            subject=r[4],
            body=r[5],
            html=r[6],
            metadata=orjson.loads(r[7]),
            priority=_PRIORITY_OF[r[8]],
            attempts=r[9],
            token=token,
            claimed_at=now,
            callback_url=r[10],
            unregistered=bool(r[11]),
            category=r[12],
            suppressed=r[13],
            unsubscribable=bool(r[14]),
            max_retries=r[15],
            queue=r[16],
        )
        for r in orjson.loads(picked)
    ]
    found.sort(key=lambda c: -c.priority)
    return found


#: Outcomes per completion statement; a shorter batch is padded to a power of two with
#: rows that match nothing, so each statement is prepared once and stays cached.
COMPLETE_CHUNK = 128
_WIDTH = {
    "mark_sent": 6, "mark_retry": 8, "mark_dead": 5, "defer": 4, "mark_suppressed": 4,
    "insert_attempts": 6,
}  # fmt: skip
Statement = tuple[str, list[Any]]


_VALUES_ROW = re.compile(r"VALUES (\([?, ]+\))")


def _repeated(query: str, rows: int) -> str:
    """``query`` with its one ``VALUES (?, ...)`` row repeated ``rows`` times."""
    return _VALUES_ROW.sub(lambda m: "VALUES " + ", ".join([m.group(1)] * rows), query, count=1)


def _padded(query: str, rows: list[list[Any]]) -> list[Statement]:
    """``query`` over ``rows``, ``COMPLETE_CHUNK`` at a time, each padded with NULL rows."""
    width = _WIDTH[query]
    statements = []
    for start in range(0, len(rows), COMPLETE_CHUNK):
        chunk = rows[start : start + COMPLETE_CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()  # the next power of two
        values = [v for row in chunk for v in row] + [None] * ((size - len(chunk)) * width)
        statements.append((_repeated(Q[query], size), values))
    return statements


def _changes(o: Outcome) -> tuple[str, list[Any]]:
    """The completion statement for ``o`` and its values, claim id and token first."""
    c = o.claim
    if isinstance(o, Sent):
        return "mark_sent", [c.id, c.token, o.provider, o.message_id, o.processing_ms, o.at]
    if isinstance(o, Retry):
        return "mark_retry", [c.id, c.token, o.provider, o.error, o.due_at, o.stage, o.queue, o.at]
    if isinstance(o, Dead):
        return "mark_dead", [c.id, c.token, o.provider, o.error, o.at]
    if isinstance(o, Suppressed):
        return "mark_suppressed", [c.id, c.token, o.reason, o.at]
    assert isinstance(o, Deferred)
    return "defer", [c.id, c.token, o.due_at, o.at]


class Completion:
    """Outcomes made into statements: per kind, the attempt rows, then the rows' changes.

    Each attempt row is written only while its notification still holds the
    claim's token, and before the change that clears the token, so the rows
    written are the outcomes that apply (a stale one writes nothing) and no
    statement needs to answer rows (RETURNING answers one per step; see claim_pick).
    """

    def __init__(self, outcomes: Sequence[Outcome]) -> None:
        self.count = len(outcomes)
        kinds: dict[str, tuple[list[list[Any]], list[list[Any]]]] = {}
        #: Outcomes with more to record if they apply: a recipient gone, a status callback.
        self.extra: list[Outcome] = []
        for o in outcomes:
            query, values = _changes(o)
            c = o.claim
            status, text, meta = records.outcome(o)
            attempts, changes = kinds.setdefault(query, ([], []))
            attempts.append([c.id, c.token, status, text, o.at, orjson.dumps(meta).decode()])
            changes.append(values)
            if (isinstance(o, Dead) and o.unregistered) or (
                isinstance(o, Sent | Dead) and o.callback
            ):
                self.extra.append(o)
        #: (statement, values, whether it writes attempt rows), in the order they run.
        self.statements = [
            (statement, values, query == "insert_attempts")
            for kind, (attempts, changes) in kinds.items()
            for query, rows in (("insert_attempts", attempts), (kind, changes))
            for statement, values in _padded(query, rows)
        ]


def complete(conn: sqlite3.Connection, work: Completion) -> int:
    """Record outcomes whose claim token still matches, each with its one attempt row."""
    live: list[Outcome] = []
    if work.extra:  # rare: which of these apply, read before their tokens are cleared
        ids = orjson.dumps([o.claim.id for o in work.extra]).decode()
        holding = set(conn.execute(Q["claim_tokens"], (ids,)).fetchall())
        live = [o for o in work.extra if (o.claim.id, o.claim.token) in holding]
    written = 0  # attempt rows, one per outcome that applies
    for statement, values, attempts in work.statements:
        before = conn.total_changes  # (a statement that starts with WITH has no rowcount)
        conn.execute(statement, values)
        if attempts:
            written += conn.total_changes - before
    if written < work.count:
        log.info("stale_completions_ignored", count=work.count - written)
    gone = [
        (o.claim.channel.value, o.claim.recipient, o.provider, o.error, o.at)
        for o in live
        if isinstance(o, Dead) and o.unregistered
    ]
    if gone:
        conn.executemany(Q["remember_unregistered"], gone)
    callbacks = [
        status_callback(o, o.callback) for o in live if isinstance(o, Sent | Dead) and o.callback
    ]
    if callbacks:  # in the same transaction: an outcome is never recorded without its callback
        create(conn, callbacks, time.time())
    return written


def release(conn: sqlite3.Connection, claims: Sequence[Claim], now: float) -> int:
    """Give back claims never attempted; each one's end is an attempt row saying so."""
    audit: list[Any] = []
    for c in claims:
        row = conn.execute(Q["release"], (now, c.id, c.token)).fetchone()
        if row is not None:
            audit += (c.id, c.tenant_id, "QUEUED", records.RELEASED, now, None, row[0],
                      c.attempts)  # fmt: skip
    _insert(conn, "insert_audit", audit, _AUDIT_WIDTH)
    return len(audit) // _AUDIT_WIDTH


def sweep(conn: sqlite3.Connection, max_attempts: int, now: float) -> Swept:
    """Return expired leases to the queue (or bury them); each stall ends its attempt's row."""
    expired = conn.execute(Q["expired"], (now,)).fetchall()
    audit: list[Any] = []
    buried = []
    for notification_id, tenant_id, attempts, claimed_at, channel in expired:
        status, text, error = records.stalled(attempts, max_attempts)
        if error is not None:
            conn.execute(Q["bury_stalled"], (error, now, now, notification_id, now))
            buried.append(_CHANNEL_OF[channel])
        else:
            conn.execute(Q["requeue_stalled"], (now, now, notification_id, now))
        audit += (notification_id, tenant_id, status, text, now, None, claimed_at, attempts)
    _insert(conn, "insert_audit", audit, _AUDIT_WIDTH)
    if expired:
        log.warning("stalled", count=len(expired))
    return Swept(len(expired), tuple(buried))

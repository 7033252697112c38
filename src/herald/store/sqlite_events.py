"""The SQLite store's templates, event types and events (migration 002).

Functions of a connection, like the write transactions in ``sqlite.py``:
``SQLiteStore`` runs the writes on its group-commit writer thread and the
reads on its reader pool. Kept apart only so ``sqlite.py`` stays readable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ..events import (
    EventFilter,
    EventPage,
    EventRecord,
    EventStats,
    EventType,
    EventTypeExists,
    NewEvent,
    TokenExpired,
    TokenUnknown,
    TokenUsed,
    parse,
)
from ..models import Channel, Notification
from ..templates import Template, TemplateDraft, TemplateExists
from . import sql
from .rows import notification_from_row

Q = sql.queries("sqlite")


# -- templates -----------------------------------------------------------------


def save_template(
    conn: sqlite3.Connection, tenant_id: str, draft: TemplateDraft, create: bool, now: float
) -> Template:
    key = (tenant_id, draft.name, draft.channel.value, draft.locale)
    last = conn.execute(Q["template_last_version"], key).fetchone()[0]
    if create and last is not None:
        raise TemplateExists(
            f"template {draft.name!r} for {draft.channel.value} in {draft.locale!r} exists "
            f"(version {last}); PUT /api/templates/{draft.name} makes a new version"
        )
    version = (last or 0) + 1
    conn.execute(Q["template_insert"], (*key, version, draft.subject, draft.body, draft.html, now))
    return Template(
        draft.name, draft.channel, draft.locale, version, draft.body, draft.subject, draft.html, now
    )


def templates(
    conn: sqlite3.Connection, tenant_id: str, name: str | None, version: int | None
) -> list[Template]:
    if version is None:
        rows = conn.execute(Q["templates_latest"], {"tenant": tenant_id, "name": name})
    else:
        rows = conn.execute(Q["templates_at_version"], (tenant_id, name, version))
    return [Template(r[0], Channel(r[1]), *r[2:]) for r in rows.fetchall()]


def delete_templates(
    conn: sqlite3.Connection, tenant_id: str, name: str, channel: Channel | None,
    locale: str | None,
) -> int:  # fmt: skip
    params = {"tenant": tenant_id, "name": name, "locale": locale,
              "channel": channel.value if channel else None}  # fmt: skip
    return conn.execute(Q["templates_delete"], params).rowcount


# -- event types ---------------------------------------------------------------


def event_types(conn: sqlite3.Connection, tenant_id: str) -> list[EventType]:
    rows = conn.execute(Q["event_types_stored"], (tenant_id,)).fetchall()
    return [parse(orjson.loads(r[0]), source="api") for r in rows]


def save_event_type(
    conn: sqlite3.Connection, tenant_id: str, event_type: EventType, create: bool, now: float
) -> EventType:
    if create and conn.execute(Q["event_type_exists"], (tenant_id, event_type.name)).fetchone():
        raise EventTypeExists(
            f"event type {event_type.name!r} exists; PUT /api/event-types/{event_type.name} "
            "replaces it"
        )
    definition = {k: v for k, v in event_type.to_dict().items() if k != "source"}
    params = {"tenant": tenant_id, "name": event_type.name, "now": now,
              "definition": orjson.dumps(definition).decode()}  # fmt: skip
    conn.execute(Q["event_type_upsert"], params)
    return parse(definition, source="api")


def delete_event_type(conn: sqlite3.Connection, tenant_id: str, name: str) -> bool:
    return bool(conn.execute(Q["event_type_delete"], (tenant_id, name)).rowcount)


# -- events ----------------------------------------------------------------------


def insert_event(
    conn: sqlite3.Connection, event: NewEvent, notifications: Sequence[Notification]
) -> EventRecord:
    """Store the event and its links; runs in the transaction that stored the notifications."""
    conn.execute(
        Q["event_insert"],
        (
            event.id, event.tenant_id, event.type, event.recipient,
            orjson.dumps(event.data).decode(),
            orjson.dumps(event.hashed).decode() if event.hashed else None,
            event.verify_hash, event.created_at,
        ),
    )  # fmt: skip
    conn.executemany(Q["event_link"], [(event.id, i, n.id) for i, n in enumerate(notifications)])
    return EventRecord(
        id=event.id, tenant_id=event.tenant_id, type=event.type, recipient=event.recipient,
        data=event.data, notification_ids=tuple(n.id for n in notifications),
        verifiable=event.verify_hash is not None, verified_at=None, created_at=event.created_at,
    )  # fmt: skip


def get_event(conn: sqlite3.Connection, tenant_id: str, event_id: str) -> EventRecord | None:
    row = conn.execute(Q["event_get"], (tenant_id, event_id)).fetchone()
    return None if row is None else _with_links(conn, [tuple(row)])[0]


def find_events(
    conn: sqlite3.Connection, tenant_id: str, where: EventFilter, page: int, limit: int
) -> EventPage:
    params: dict[str, Any] = {
        "tenant": tenant_id,
        "type": where.type,
        "user_id": where.user_id,
        "primary_status": where.primary_status.value if where.primary_status else None,
    }
    total = conn.execute(Q["events_count"], params).fetchone()[0]
    params.update(limit=limit, offset=(page - 1) * limit)
    rows = [tuple(r) for r in conn.execute(Q["events_filtered"], params).fetchall()]
    return EventPage(_with_links(conn, rows), total, page, limit)


def event_notifications(
    conn: sqlite3.Connection, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, list[Notification]]:
    params = {"tenant": tenant_id, "ids": orjson.dumps(list(event_ids)).decode()}
    found: dict[str, list[Notification]] = {i: [] for i in event_ids}
    for row in conn.execute(Q["events_notifications"], params).fetchall():
        found[row["event_id"]].append(notification_from_row(row))
    return found


def verify(
    conn: sqlite3.Connection, tenant_id: str, token_hash: str, not_before: float, now: float
) -> EventRecord:
    """Spend a one-time token. The writer thread serialises this, so a token works once."""
    row = conn.execute(Q["event_by_verify_hash"], (tenant_id, token_hash)).fetchone()
    if row is None:
        raise TokenUnknown("unknown verification token")
    event_id, verified_at, created_at = row
    if verified_at is not None:
        raise TokenUsed("this verification token has been used")
    if created_at < not_before:
        raise TokenExpired("this verification token has expired")
    conn.execute(Q["event_verified"], (now, event_id))
    found = get_event(conn, tenant_id, event_id)
    assert found is not None
    return found


def event_stats(
    conn: sqlite3.Connection, tenant_id: str, event_type: str, since: float
) -> EventStats:
    params = {"tenant": tenant_id, "type": event_type, "since": since}
    total, verified, recent = conn.execute(Q["event_counts"], params).fetchone()
    rows = conn.execute(Q["event_primary_statuses"], params).fetchall()
    return EventStats(total, verified, recent, {r[0]: r[1] for r in rows})


def sensitive(conn: sqlite3.Connection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    rows = conn.execute(Q["notifications_sensitive"], (tenant_id, orjson.dumps(list(ids)).decode()))
    return {r[0] for r in rows.fetchall()}


def _with_links(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[EventRecord]:
    ids = orjson.dumps([r[0] for r in rows]).decode()
    links: dict[str, list[str]] = {}
    for event_id, notification_id in conn.execute(Q["event_links"], (ids,)).fetchall():
        links.setdefault(event_id, []).append(notification_id)
    return [
        EventRecord(
            id=r[0],
            tenant_id=r[1],
            type=r[2],
            recipient=r[3],
            data=orjson.loads(r[4]),
            notification_ids=tuple(links.get(r[0], ())),
            verifiable=bool(r[5]),
            verified_at=r[6],
            created_at=r[7],
        )
        for r in rows
    ]

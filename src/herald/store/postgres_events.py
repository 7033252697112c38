"""The PostgreSQL store's templates, event types and events (migration 002).

Functions of a connection, like ``sqlite_events.py``; ``PostgresStore`` runs
the writes in transactions. Where the SQLite store relies on its single writer
to serialise a read-then-write (the next template version, spending a token),
these take a row or advisory lock, because many processes write at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

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
from .postgres_pool import Q, affected
from .rows import notification_from_row

# -- templates -----------------------------------------------------------------


async def save_template(
    conn: asyncpg.Connection, tenant_id: str, draft: TemplateDraft, create: bool, now: float
) -> Template:
    key = (tenant_id, draft.name, draft.channel.value, draft.locale)
    await conn.execute(Q["template_lock"], *key)  # concurrent saves take turns per variant
    last = await conn.fetchval(Q["template_last_version"], *key)
    if create and last is not None:
        raise TemplateExists(
            f"template {draft.name!r} for {draft.channel.value} in {draft.locale!r} exists "
            f"(version {last}); PUT /api/templates/{draft.name} makes a new version"
        )
    version = (last or 0) + 1
    await conn.execute(
        Q["template_insert"], *key, version, draft.subject, draft.body, draft.html, now
    )
    return Template(
        draft.name, draft.channel, draft.locale, version, draft.body, draft.subject, draft.html, now
    )


async def templates(
    conn: asyncpg.Connection, tenant_id: str, name: str | None, version: int | None
) -> list[Template]:
    if version is None:
        rows = await conn.fetch(Q["templates_latest"], tenant_id, name)
    else:
        rows = await conn.fetch(Q["templates_at_version"], tenant_id, name, version)
    return [Template(r[0], Channel(r[1]), *r[2:]) for r in rows]


async def delete_templates(
    conn: asyncpg.Connection, tenant_id: str, name: str, channel: Channel | None,
    locale: str | None,
) -> int:  # fmt: skip
    status = await conn.execute(
        Q["templates_delete"], tenant_id, name, channel.value if channel else None, locale
    )
    return affected(status)


# -- event types ---------------------------------------------------------------


async def event_types(conn: asyncpg.Connection, tenant_id: str) -> list[EventType]:
    rows = await conn.fetch(Q["event_types_stored"], tenant_id)
    return [parse(r[0], source="api") for r in rows]


async def save_event_type(
    conn: asyncpg.Connection, tenant_id: str, event_type: EventType, create: bool, now: float
) -> EventType:
    definition = {k: v for k, v in event_type.to_dict().items() if k != "source"}
    args = (tenant_id, event_type.name, definition, now)
    if not create:
        await conn.execute(Q["event_type_upsert"], *args)
    elif await conn.fetchval(Q["event_type_insert"], *args) is None:
        raise EventTypeExists(
            f"event type {event_type.name!r} exists; PUT /api/event-types/{event_type.name} "
            "replaces it"
        )
    return parse(definition, source="api")


async def delete_event_type(conn: asyncpg.Connection, tenant_id: str, name: str) -> bool:
    return affected(await conn.execute(Q["event_type_delete"], tenant_id, name)) > 0


# -- events ----------------------------------------------------------------------


async def insert_event(
    conn: asyncpg.Connection, event: NewEvent, notifications: Sequence[Notification]
) -> EventRecord:
    """Store the event and its links; runs in the transaction that stored the notifications."""
    await conn.execute(
        Q["event_insert"],
        event.id, event.tenant_id, event.type, event.recipient, event.data,
        event.hashed or None, event.verify_hash, event.created_at,
        [n.id for n in notifications],
    )  # fmt: skip
    return EventRecord(
        id=event.id, tenant_id=event.tenant_id, type=event.type, recipient=event.recipient,
        data=event.data, notification_ids=tuple(n.id for n in notifications),
        verifiable=event.verify_hash is not None, verified_at=None, created_at=event.created_at,
    )  # fmt: skip


async def get_event(conn: asyncpg.Connection, tenant_id: str, event_id: str) -> EventRecord | None:
    row = await conn.fetchrow(Q["event_get"], tenant_id, event_id)
    return None if row is None else (await _with_links(conn, [row]))[0]


async def find_events(
    conn: asyncpg.Connection, tenant_id: str, where: EventFilter, page: int, limit: int
) -> EventPage:
    status = where.primary_status.value if where.primary_status else None
    args = (tenant_id, where.type, where.user_id, status)
    total = await conn.fetchval(Q["events_count"], *args)
    rows = await conn.fetch(Q["events_filtered"], *args, limit, (page - 1) * limit)
    return EventPage(await _with_links(conn, rows), total, page, limit)


async def event_notifications(
    conn: asyncpg.Connection, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, list[Notification]]:
    found: dict[str, list[Notification]] = {i: [] for i in event_ids}
    for row in await conn.fetch(Q["events_notifications"], tenant_id, list(event_ids)):
        found[row["event_id"]].append(notification_from_row(row))
    return found


async def verify(
    conn: asyncpg.Connection, tenant_id: str, token_hash: str, not_before: float, now: float
) -> EventRecord:
    """Spend a one-time token. The event row stays locked until COMMIT, so it works once."""
    row = await conn.fetchrow(Q["event_by_verify_hash"], tenant_id, token_hash)
    if row is None:
        raise TokenUnknown("unknown verification token")
    event_id, verified_at, created_at = row
    if verified_at is not None:
        raise TokenUsed("this verification token has been used")
    if created_at < not_before:
        raise TokenExpired("this verification token has expired")
    await conn.execute(Q["event_verified"], now, event_id)
    found = await get_event(conn, tenant_id, event_id)
    assert found is not None
    return found


async def event_stats(
    conn: asyncpg.Connection, tenant_id: str, event_type: str, since: float
) -> EventStats:
    total, verified, recent = await conn.fetchrow(Q["event_counts"], tenant_id, event_type, since)
    rows = await conn.fetch(Q["event_primary_statuses"], tenant_id, event_type)
    return EventStats(total, verified, recent, {r[0]: r[1] for r in rows})


async def sensitive(conn: asyncpg.Connection, tenant_id: str, ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(Q["notifications_sensitive"], tenant_id, list(ids))
    return {r[0] for r in rows}


async def _with_links(conn: asyncpg.Connection, rows: Sequence[Any]) -> list[EventRecord]:
    links: dict[str, list[str]] = {}
    for event_id, notification_id in await conn.fetch(Q["event_links"], [r[0] for r in rows]):
        links.setdefault(event_id, []).append(notification_id)
    return [
        EventRecord(
            id=r[0],
            tenant_id=r[1],
            type=r[2],
            recipient=r[3],
            data=r[4],
            notification_ids=tuple(links.get(r[0], ())),
            verifiable=bool(r[5]),
            verified_at=r[6],
            created_at=r[7],
        )
        for r in rows
    ]

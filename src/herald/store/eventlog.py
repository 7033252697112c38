"""The events port, once for every store: events, their notifications, one-time tokens.

The rules live here (an event and its notifications are one transaction; a
token works once, and not after it expired, with the words the API shows);
each store supplies only a ``Dialect`` that runs the named statements of its
``store/<dialect>/events.sql``. Spending a token reads the event then marks it:
PostgreSQL's ``event_by_verify_hash`` locks the row until COMMIT, SQLite's
single writer and the memory store run one rule at a time, so two spends of
one token never both succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..events import (
    EventFilter,
    EventPage,
    EventRecord,
    EventStats,
    NewEvent,
    TokenExpired,
    TokenUnknown,
    TokenUsed,
)
from ..models import NewNotification, Notification
from .catalog import json_value
from .dialect import Change, Dialect, Fetch, Insert, Rule
from .rows import notification_from_row


def create_event(
    event: NewEvent, items: Sequence[NewNotification], now: float
) -> Rule[tuple[EventRecord, list[Notification]]]:
    """The event row first: a clash (an event id stored already) then costs no other write."""
    yield Change(
        "event_insert",
        (
            event.id, event.tenant_id, event.type, event.recipient, event.data,
            event.hashed or None, event.verify_hash, event.created_at,
        ),
    )  # fmt: skip
    created: list[Notification] = (yield Insert(items, now)) if items else []
    yield Change("event_links_insert", (event.id, [n.id for n in created]))
    record = EventRecord(
        id=event.id, tenant_id=event.tenant_id, type=event.type, recipient=event.recipient,
        data=event.data, notification_ids=tuple(n.id for n in created),
        verifiable=event.verify_hash is not None, verified_at=None, created_at=event.created_at,
    )  # fmt: skip
    return record, created


def get_event(tenant_id: str, event_id: str) -> Rule[EventRecord | None]:
    rows = yield Fetch("event_get", (tenant_id, event_id))
    if not rows:
        return None
    [found] = yield from _with_links(rows)
    return found


def find_events(tenant_id: str, where: EventFilter, page: int, limit: int) -> Rule[EventPage]:
    status = where.primary_status.value if where.primary_status else None
    args = (tenant_id, where.type, where.user_id, status)
    [(total,)] = yield Fetch("events_count", args)
    rows = yield Fetch("events_filtered", (*args, limit, (page - 1) * limit))
    return EventPage((yield from _with_links(rows)), total, page, limit)


def event_notifications(
    tenant_id: str, event_ids: Sequence[str]
) -> Rule[dict[str, list[Notification]]]:
    found: dict[str, list[Notification]] = {i: [] for i in event_ids}
    for row in (yield Fetch("events_notifications", (tenant_id, list(event_ids)))):
        found[row["event_id"]].append(notification_from_row(row))
    return found


def verify(tenant_id: str, token_hash: str, not_before: float, now: float) -> Rule[EventRecord]:
    """Spend a one-time token (see the module's docstring for why it works once)."""
    rows = yield Fetch("event_by_verify_hash", (tenant_id, token_hash))
    if not rows:
        raise TokenUnknown("unknown verification token")
    event_id, verified_at, created_at = rows[0]
    if verified_at is not None:
        raise TokenUsed("this verification token has been used")
    if created_at < not_before:
        raise TokenExpired("this verification token has expired")
    yield Change("event_verified", (now, event_id))
    found = yield from get_event(tenant_id, event_id)
    assert found is not None, "the event was locked while it was marked"
    return found


def verification_tenant(token_hash: str) -> Rule[str | None]:
    rows = yield Fetch("event_tenant_by_verify_hash", (token_hash,))
    return str(rows[0][0]) if rows else None


def event_stats(tenant_id: str, event_type: str, since: float) -> Rule[EventStats]:
    [(total, verified, recent)] = yield Fetch("event_counts", (tenant_id, event_type, since))
    rows = yield Fetch("event_primary_statuses", (tenant_id, event_type))
    return EventStats(total, verified, recent, {r[0]: r[1] for r in rows})


def sensitive(tenant_id: str, notification_ids: Sequence[str]) -> Rule[set[str]]:
    rows = yield Fetch("notifications_sensitive", (tenant_id, list(notification_ids)))
    return {r[0] for r in rows}


def _with_links(rows: Sequence[Any]) -> Rule[list[EventRecord]]:
    links: dict[str, list[str]] = {}
    for event_id, notification_id in (yield Fetch("event_links", ([r[0] for r in rows],))):
        links.setdefault(event_id, []).append(notification_id)
    return [
        EventRecord(
            id=r[0],
            tenant_id=r[1],
            type=r[2],
            recipient=r[3],
            data=json_value(r[4]),
            notification_ids=tuple(links.get(r[0], ())),
            verifiable=bool(r[5]),
            verified_at=r[6],
            created_at=r[7],
        )
        for r in rows
    ]


class EventRules:
    """The ``Events`` port (and the sensitivity lookup presenters use) over a store's
    ``dialect``; stores inherit it."""

    dialect: Dialect
    clock: Callable[[], float]

    async def create_event(
        self, event: NewEvent, items: Sequence[NewNotification]
    ) -> tuple[EventRecord, list[Notification]]:
        now = self.clock()
        return await self.dialect.write(lambda: create_event(event, items, now), wakes=True)

    async def get_event(self, tenant_id: str, event_id: str) -> EventRecord | None:
        return await self.dialect.read(lambda: get_event(tenant_id, event_id))

    async def find_events(
        self, tenant_id: str, where: EventFilter, page: int, limit: int
    ) -> EventPage:
        return await self.dialect.read(lambda: find_events(tenant_id, where, page, limit))

    async def event_notifications(
        self, tenant_id: str, event_ids: Sequence[str]
    ) -> dict[str, list[Notification]]:
        return await self.dialect.read(lambda: event_notifications(tenant_id, event_ids))

    async def verify_event(self, tenant_id: str, token_hash: str, not_before: float) -> EventRecord:
        now = self.clock()
        return await self.dialect.write(lambda: verify(tenant_id, token_hash, not_before, now))

    async def verification_tenant(self, token_hash: str) -> str | None:
        return await self.dialect.read(lambda: verification_tenant(token_hash))

    async def event_stats(self, tenant_id: str, event_type: str, since: float) -> EventStats:
        return await self.dialect.read(lambda: event_stats(tenant_id, event_type, since))

    async def sensitive_notifications(
        self, tenant_id: str, notification_ids: Sequence[str]
    ) -> set[str]:
        if not notification_ids:
            return set()
        return await self.dialect.read(lambda: sensitive(tenant_id, notification_ids))

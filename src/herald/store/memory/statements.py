"""The memory dialect of the shared catalog and events rules: ``events.sql`` in Python.

Each method answers the statement of the same name in ``store/*/events.sql``,
with the same parameters and the same columns, over ``Tables``; the rules of
``catalog.py`` and ``eventlog.py`` run on it unchanged. A write rule is
all-or-nothing: the tables are restored if it raises. Rules run without
awaiting between their steps, so one runs whole before the next begins (what
the SQL stores get from their locks).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson

from ...models import NewNotification, Notification, Status
from ..dialect import Change, Fetch, Rule, Step, drive
from .receipts import ReceiptStatements
from .tables import Conflict, Event, Tables, Template

T = TypeVar("T")
Rows = list[tuple[Any, ...]]


class MemoryDialect(ReceiptStatements):
    """Runs rules over ``tables``; ``create`` is the memory store's create path."""

    def __init__(
        self,
        tables: Tables,
        create: Callable[[Sequence[NewNotification], float], list[Notification]],
        wake: Callable[[], None],
    ) -> None:
        self.t = tables
        self._create = create
        self._wake = wake

    async def read(self, rule: Callable[[], Rule[T]]) -> T:
        return drive(rule(), self._run)

    async def write(self, rule: Callable[[], Rule[T]], wakes: bool = False) -> T:
        saved = self.t.checkpoint()
        try:
            result = drive(rule(), self._run)
        except BaseException:
            self.t.restore(saved)
            raise
        if wakes:
            self._wake()
        return result

    def _run(self, step: Step) -> Any:
        if isinstance(step, Fetch | Change):
            statement: Callable[..., Any] = getattr(self, step.name)
            return statement(*step.args)
        return self._create(step.items, step.now)

    # -- templates -------------------------------------------------------------

    def template_lock(self, *key: str) -> Rows:
        return []  # rules run one at a time here

    def template_last_version(self, tenant: str, name: str, channel: str, locale: str) -> Rows:
        versions = [t.version for t in self._variants(tenant, name) if (t.channel, t.locale)
                    == (channel, locale)]  # fmt: skip
        return [(max(versions, default=None),)]

    def template_insert(self, *values: Any) -> int:
        new = Template(*values)
        key = (new.tenant_id, new.name, new.channel, new.locale, new.version)
        if any((t.tenant_id, t.name, t.channel, t.locale, t.version) == key
               for t in self.t.templates):  # fmt: skip
            raise Conflict(f"template version {key} exists")
        self.t.templates.append(new)
        return 1

    def templates_latest(self, tenant: str, name: str | None) -> Rows:
        latest: dict[tuple[str, str, str], Template] = {}
        for t in self.t.templates:
            if t.tenant_id == tenant and name in (None, t.name):
                key = (t.name, t.channel, t.locale)
                if key not in latest or latest[key].version < t.version:
                    latest[key] = t
        return [_template(latest[k]) for k in sorted(latest)]

    def templates_at_version(self, tenant: str, name: str, version: int) -> Rows:
        found = [t for t in self._variants(tenant, name) if t.version == version]
        return [_template(t) for t in sorted(found, key=lambda t: (t.channel, t.locale))]

    def templates_delete(
        self, tenant: str, name: str, channel: str | None, locale: str | None
    ) -> int:
        def doomed(t: Template) -> bool:
            return (
                (t.tenant_id, t.name) == (tenant, name)
                and channel in (None, t.channel)
                and (locale in (None, t.locale))
            )

        before = len(self.t.templates)
        self.t.templates = [t for t in self.t.templates if not doomed(t)]
        return before - len(self.t.templates)

    def _variants(self, tenant: str, name: str) -> list[Template]:
        return [t for t in self.t.templates if (t.tenant_id, t.name) == (tenant, name)]

    # -- event types -------------------------------------------------------------

    def event_types_stored(self, tenant: str) -> Rows:
        return [(v,) for (owner, _), v in sorted(self.t.event_types.items()) if owner == tenant]

    def event_type_insert(self, tenant: str, name: str, definition: Any, now: float) -> Rows:
        if (tenant, name) in self.t.event_types:
            return []
        self.t.event_types[(tenant, name)] = orjson.dumps(definition)
        return [(1,)]

    def event_type_upsert(self, tenant: str, name: str, definition: Any, now: float) -> int:
        self.t.event_types[(tenant, name)] = orjson.dumps(definition)
        return 1

    def event_type_delete(self, tenant: str, name: str) -> int:
        return 0 if self.t.event_types.pop((tenant, name), None) is None else 1

    # -- events ----------------------------------------------------------------------

    def event_insert(
        self, event_id: str, tenant: str, kind: str, recipient: str | None, data: Any,
        hashed: Any, verify_hash: str | None, created_at: float,
    ) -> int:  # fmt: skip
        if event_id in self.t.events:
            raise Conflict(f"event {event_id!r} exists")
        if verify_hash is not None and any(
            e.verify_hash == verify_hash for e in self.t.events.values()
        ):
            raise Conflict("an event with this verification token exists")
        self.t.events[event_id] = Event(
            event_id, tenant, kind, recipient, orjson.dumps(data),
            None if hashed is None else orjson.dumps(hashed), verify_hash, None, created_at,
        )  # fmt: skip
        return 1

    def event_links_insert(self, event_id: str, notification_ids: list[str]) -> int:
        self.t.links[event_id] = list(enumerate(notification_ids))
        return len(notification_ids)

    def event_get(self, tenant: str, event_id: str) -> Rows:
        event = self.t.events.get(event_id)
        return [] if event is None or event.tenant_id != tenant else [_event(event)]

    def event_links(self, event_ids: list[str]) -> Rows:
        return [
            (event_id, note_id)
            for event_id in sorted(set(event_ids))
            for _, note_id in sorted(self.t.links.get(event_id, []))
        ]

    def events_filtered(
        self, tenant: str, kind: str | None, user_id: str | None, status: str | None,
        limit: int, offset: int,
    ) -> Rows:  # fmt: skip
        found = self._matching(tenant, kind, user_id, status)
        found.sort(key=lambda e: e.id, reverse=True)
        return [_event(e) for e in found[offset : offset + limit]]

    def events_count(
        self, tenant: str, kind: str | None, user_id: str | None, status: str | None
    ) -> Rows:
        return [(len(self._matching(tenant, kind, user_id, status)),)]

    def events_notifications(self, tenant: str, event_ids: list[str]) -> list[dict[str, Any]]:
        rows = []
        for event_id, note_id in self.event_links(event_ids):
            row = self.t.notifications.get(note_id)
            if row is not None and row.tenant_id == tenant:
                rows.append({"event_id": event_id, **row.columns()})
        return rows

    def event_counts(self, tenant: str, kind: str, since: float) -> Rows:
        found = [e for e in self.t.events.values() if (e.tenant_id, e.type) == (tenant, kind)]
        verified = sum(1 for e in found if e.verified_at is not None)
        return [(len(found), verified, sum(1 for e in found if e.created_at >= since))]

    def event_primary_statuses(self, tenant: str, kind: str) -> Rows:
        counts: Counter[str] = Counter()
        for e in self.t.events.values():
            if (e.tenant_id, e.type) == (tenant, kind):
                status = self._primary_status(e.id)
                if status is not None:
                    counts[status] += 1
        return list(counts.items())

    def event_by_verify_hash(self, tenant: str, token_hash: str) -> Rows:
        return [
            (e.id, e.verified_at, e.created_at)
            for e in self.t.events.values()
            if e.tenant_id == tenant and e.verify_hash == token_hash
        ]

    def event_tenant_by_verify_hash(self, token_hash: str) -> Rows:
        return [(e.tenant_id,) for e in self.t.events.values() if e.verify_hash == token_hash]

    def event_verified(self, now: float, event_id: str) -> int:
        event = self.t.events.get(event_id)
        if event is None or event.verified_at is not None:
            return 0
        event.verified_at = now
        return 1

    def notifications_sensitive(self, tenant: str, notification_ids: list[str]) -> Rows:
        found = []
        for note_id in notification_ids:
            row = self.t.notifications.get(note_id)
            if row is not None and row.tenant_id == tenant:
                flag = orjson.loads(row.metadata).get("sensitive")
                if flag is True or (type(flag) in (int, float) and flag == 1):
                    found.append((note_id,))
        return found

    def _primary_status(self, event_id: str) -> str | None:
        for position, note_id in self.t.links.get(event_id, []):
            row = self.t.notifications.get(note_id)
            if position == 0 and row is not None:
                return row.status.value
        return None

    def _matching(
        self, tenant: str, kind: str | None, user_id: str | None, status: str | None
    ) -> list[Event]:
        return [
            e
            for e in self.t.events.values()
            if e.tenant_id == tenant
            and kind in (None, e.type)
            and (user_id is None or _as_text(orjson.loads(e.data).get("userId")) == user_id)
            and (status is None or self._primary_status(e.id) == Status(status).value)
        ]


def _template(t: Template) -> tuple[Any, ...]:
    return (t.name, t.channel, t.locale, t.version, t.body, t.subject, t.html, t.created_at)


def _event(e: Event) -> tuple[Any, ...]:
    verifiable = e.verify_hash is not None
    return (e.id, e.tenant_id, e.type, e.recipient, e.data, verifiable, e.verified_at,
            e.created_at)  # fmt: skip


def _as_text(value: Any) -> str | None:
    """A JSON value as text, as PostgreSQL's ``->>`` gives it (None for null or missing)."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()

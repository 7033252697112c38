"""The catalog port, once for every store: templates with versions, and event types.

The rules (a save makes the variant's next version; ``create`` refuses an
existing variant or type, with the words the API shows) live here; each store
supplies only a ``Dialect`` that runs the named statements of its
``store/<dialect>/events.sql``. Concurrent saves of one variant take turns in
the statement ``template_lock`` (an advisory lock on PostgreSQL; SQLite's
single writer and the memory store need none), so versions never collide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..events import EventType, EventTypeExists, parse
from ..models import Channel
from ..templates import Template, TemplateDraft, TemplateExists
from .dialect import Change, Dialect, Fetch, Rule


def json_value(value: Any) -> Any:
    """A JSON column's value: PostgreSQL decodes it already, SQLite and memory hand text."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


# -- templates -----------------------------------------------------------------


def save_template(tenant_id: str, draft: TemplateDraft, create: bool, now: float) -> Rule[Template]:
    key = (tenant_id, draft.name, draft.channel.value, draft.locale)
    yield Fetch("template_lock", key)  # concurrent saves of the variant take turns
    [(last,)] = yield Fetch("template_last_version", key)
    if create and last is not None:
        raise TemplateExists(
            f"template {draft.name!r} for {draft.channel.value} in {draft.locale!r} exists "
            f"(version {last}); PUT /api/templates/{draft.name} makes a new version"
        )
    version = (last or 0) + 1
    yield Change("template_insert", (*key, version, draft.subject, draft.body, draft.html, now))
    return Template(
        draft.name, draft.channel, draft.locale, version, draft.body, draft.subject, draft.html, now
    )


def templates(tenant_id: str, name: str | None, version: int | None) -> Rule[list[Template]]:
    if version is None:
        rows = yield Fetch("templates_latest", (tenant_id, name))
    else:
        rows = yield Fetch("templates_at_version", (tenant_id, name, version))
    return [Template(r[0], Channel(r[1]), *tuple(r)[2:]) for r in rows]


def delete_templates(
    tenant_id: str, name: str, channel: Channel | None, locale: str | None
) -> Rule[int]:
    args = (tenant_id, name, channel.value if channel else None, locale)
    deleted: int = yield Change("templates_delete", args)
    return deleted


# -- event types ---------------------------------------------------------------


def event_types(tenant_id: str) -> Rule[list[EventType]]:
    rows = yield Fetch("event_types_stored", (tenant_id,))
    return [parse(json_value(r[0]), source="api") for r in rows]


def save_event_type(
    tenant_id: str, event_type: EventType, create: bool, now: float
) -> Rule[EventType]:
    definition = {k: v for k, v in event_type.to_dict().items() if k != "source"}
    args = (tenant_id, event_type.name, definition, now)
    if not create:
        yield Change("event_type_upsert", args)
    elif not (yield Fetch("event_type_insert", args)):  # inserts unless the name is taken
        raise EventTypeExists(
            f"event type {event_type.name!r} exists; PUT /api/event-types/{event_type.name} "
            "replaces it"
        )
    return parse(definition, source="api")


def delete_event_type(tenant_id: str, name: str) -> Rule[bool]:
    deleted = yield Change("event_type_delete", (tenant_id, name))
    return bool(deleted)


class CatalogRules:
    """The ``Catalog`` port over a store's ``dialect``; stores inherit it."""

    dialect: Dialect
    #: The time as POSIX seconds (the memory store takes a test's fake clock).
    clock: Callable[[], float]

    async def templates(
        self, tenant_id: str, name: str | None = None, version: int | None = None
    ) -> list[Template]:
        return await self.dialect.read(lambda: templates(tenant_id, name, version))

    async def save_template(self, tenant_id: str, draft: TemplateDraft, create: bool) -> Template:
        now = self.clock()
        return await self.dialect.write(lambda: save_template(tenant_id, draft, create, now))

    async def delete_templates(
        self, tenant_id: str, name: str, channel: Channel | None = None, locale: str | None = None
    ) -> int:
        return await self.dialect.write(lambda: delete_templates(tenant_id, name, channel, locale))

    async def event_types(self, tenant_id: str) -> list[EventType]:
        return await self.dialect.read(lambda: event_types(tenant_id))

    async def save_event_type(
        self, tenant_id: str, event_type: EventType, create: bool
    ) -> EventType:
        now = self.clock()
        return await self.dialect.write(lambda: save_event_type(tenant_id, event_type, create, now))

    async def delete_event_type(self, tenant_id: str, name: str) -> bool:
        return await self.dialect.write(lambda: delete_event_type(tenant_id, name))

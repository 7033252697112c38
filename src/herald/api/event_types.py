"""``/api/event-types``: define what an event fans out to.

A stored definition replaces a built-in or file one of the same name (PUT);
deleting it uncovers that one again. Built-in and file types cannot be
deleted through the API: edit the file, or outrank them. The five routes
every kind of named definition has are ``catalog.py``'s; the rules here are
the event types' own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from .. import events as kinds
from ..events import BuiltinEventType, EventType, EventTypeExists
from . import eventviews as views
from .authz import record, tenant_of
from .catalog import Answer, Catalog
from .events import event_types
from .eventschemas import (
    EventTypeBody,
    EventTypeDeleted,
    EventTypeIn,
    EventTypeList,
    EventTypeOut,
)

router = APIRouter(prefix="/api/event-types", tags=["events"])


def _parse(name: str, body: EventTypeBody) -> EventType:
    return kinds.parse({**body.model_dump(), "name": name}, source="api")


class EventTypes(Catalog):
    singular, plural = "event_type", "event_types"
    create_in, replace_in = EventTypeIn, EventTypeBody
    listed, saved, detail, deleted = EventTypeList, EventTypeOut, EventTypeOut, EventTypeDeleted
    summaries = {
        "list_all": "Every event type in force, with where it comes from",
        "create": "Define an event type (409 if the name is taken, even by a built-in)",
        "read": "One event type",
        "replace": "Replace an event type (a built-in or file one is outranked, not changed)",
        "delete": "Delete a stored event type, uncovering a file or built-in one of that name",
    }

    async def list_all(self, request: Request) -> Answer:
        found = await event_types(request)
        return {"eventTypes": [views.event_type(t) for t in found.values()]}, None

    async def create(self, request: Request, body: EventTypeIn) -> Answer:
        event_type = _parse(body.name, body)
        existing = (await event_types(request)).get(event_type.name)
        if existing is not None:
            raise EventTypeExists(
                f"event type {event_type.name!r} exists ({existing.source}); "
                f"PUT /api/event-types/{event_type.name} replaces it"
            )
        saved = await request.app.state.engine.store.save_event_type(
            tenant_of(request), event_type, True
        )
        record(request, "event_type_created", event_type=saved.name, targets=len(saved.targets))
        return views.event_type(saved), "Event type created"

    async def read(self, request: Request, name: str, options: None) -> Answer:
        found = (await event_types(request)).get(name)
        if found is None:
            raise HTTPException(404, f"No event type {name!r}")
        return views.event_type(found), None

    async def replace(self, request: Request, name: str, body: EventTypeBody) -> Answer:
        if name not in await event_types(request):
            raise HTTPException(404, f"No event type {name!r}; POST /api/event-types creates one")
        saved = await request.app.state.engine.store.save_event_type(
            tenant_of(request), _parse(name, body), False
        )
        record(request, "event_type_replaced", event_type=saved.name, targets=len(saved.targets))
        return views.event_type(saved), f"Event type {name!r} replaced"

    async def delete(self, request: Request, name: str, options: None) -> Answer:
        deleted = await request.app.state.engine.store.delete_event_type(tenant_of(request), name)
        record(request, "event_type_deleted", event_type=name, deleted=deleted)
        now = (await event_types(request)).get(name)
        if not deleted:
            if now is not None:
                raise BuiltinEventType(f"event type {name!r} is {now.source}; it cannot be deleted")
            raise HTTPException(404, f"No event type {name!r}")
        data: dict[str, Any] = {"name": name, "now": views.event_type(now) if now else None}
        return data, f"Event type {name!r} deleted"


EventTypes().declare(router)

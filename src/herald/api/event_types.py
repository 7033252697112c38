"""``/api/event-types``: define what an event fans out to.

A stored definition replaces a built-in or file one of the same name (PUT);
deleting it uncovers that one again. Built-in and file types cannot be
deleted through the API: edit the file, or outrank them.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request
from starlette.exceptions import HTTPException

from .. import events as kinds
from ..access import Scope
from ..events import BuiltinEventType, EventType, EventTypeExists
from . import eventviews as views
from .authz import record, requires, tenant_of
from .events import event_types
from .eventschemas import (
    EventTypeBody,
    EventTypeDeleted,
    EventTypeIn,
    EventTypeList,
    EventTypeOut,
)
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope
from .templates import ok

log = structlog.get_logger("herald.api.event_types")
router = APIRouter(prefix="/api/event-types", tags=["events"])
TypeName = Annotated[str, Path(min_length=1, max_length=200)]


def _parse(name: str, body: EventTypeBody) -> EventType:
    return kinds.parse({**body.model_dump(), "name": name}, source="api")


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[EventTypeList],
    responses=documented(503),
    summary="Every event type in force, with where it comes from",
)
async def list_event_types(request: Request) -> JSONBody:
    found = await event_types(request)
    return ok({"eventTypes": [views.event_type(t) for t in found.values()]})


@router.post(
    "",
    dependencies=[requires(Scope.MANAGE)],
    status_code=201,
    response_model=Envelope[EventTypeOut],
    responses=documented(409, 422, 503),
    summary="Define an event type (409 if the name is taken, even by a built-in)",
)
async def create_event_type(body: EventTypeIn, request: Request) -> JSONBody:
    try:
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
    except REFUSED as exc:
        return refusal(exc)
    record(request, "event_type_created", event_type=saved.name, targets=len(saved.targets))
    return ok(views.event_type(saved), "Event type created", status=201)


@router.get(
    "/{name}",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[EventTypeOut],
    responses=documented(404, 422, 503),
    summary="One event type",
)
async def get_event_type(name: TypeName, request: Request) -> JSONBody:
    found = (await event_types(request)).get(name)
    if found is None:
        raise HTTPException(404, f"No event type {name!r}")
    return ok(views.event_type(found))


@router.put(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[EventTypeOut],
    responses=documented(404, 422, 503),
    summary="Replace an event type (a built-in or file one is outranked, not changed)",
)
async def put_event_type(name: TypeName, body: EventTypeBody, request: Request) -> JSONBody:
    if name not in await event_types(request):
        raise HTTPException(404, f"No event type {name!r}; POST /api/event-types creates one")
    try:
        saved = await request.app.state.engine.store.save_event_type(
            tenant_of(request), _parse(name, body), False
        )
    except REFUSED as exc:
        return refusal(exc)
    record(request, "event_type_replaced", event_type=saved.name, targets=len(saved.targets))
    return ok(views.event_type(saved), f"Event type {name!r} replaced")


@router.delete(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[EventTypeDeleted],
    responses=documented(404, 409, 422, 503),
    summary="Delete a stored event type, uncovering a file or built-in one of that name",
)
async def delete_event_type(name: TypeName, request: Request) -> JSONBody:
    deleted = await request.app.state.engine.store.delete_event_type(tenant_of(request), name)
    record(request, "event_type_deleted", event_type=name, deleted=deleted)
    now = (await event_types(request)).get(name)
    if not deleted:
        if now is not None:
            return refusal(
                BuiltinEventType(f"event type {name!r} is {now.source}; it cannot be deleted")
            )
        raise HTTPException(404, f"No event type {name!r}")
    data: dict[str, Any] = {"name": name, "now": views.event_type(now) if now else None}
    return ok(data, f"Event type {name!r} deleted")

"""``/api/events``: a domain event in, its rendered notifications out, in one transaction.

``submit`` is the one way an event enters Herald; ``POST /api/events`` and the
seeds' routes (``seeds.py``, ``signups.py``) are doors to it. Everything that
can be wrong is found before the store is touched (``fanout.py``), so a 201
means the event, every notification and the links between them are durable.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
from starlette.exceptions import HTTPException

from .. import events as kinds
from .. import metrics
from ..access import Scope
from ..events import EventFilter, EventRecord, EventType, UnknownEventType
from ..fanout import plan_event, render_plan
from ..models import Notification, Page
from ..sandbox import Budget
from ..templates import merged, normalize_locale
from . import accesslog, present
from . import eventviews as views
from .authz import requires, tenant_of
from .envelope import ok
from .eventschemas import EventAccepted, EventDetail, EventIn, EventList
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope

log = structlog.get_logger("herald.api.events")
router = APIRouter(prefix="/api/events", tags=["events"])


async def event_types(request: Request) -> dict[str, EventType]:
    """Every event type in force: built-in, then the file's, then stored ones."""
    engine = request.app.state.engine
    path = engine.settings.event_types_file
    from_file = kinds.load_file(path) if path else ()
    return kinds.merged(from_file, await engine.store.event_types(tenant_of(request)))


async def submit(
    request: Request,
    type_name: str,
    data: dict[str, Any],
    recipient: str | None = None,
    locale: str | None = None,
) -> tuple[EventRecord, list[Notification]]:
    """Fan the event out and store it; raises the typed errors ``REFUSED`` lists."""
    engine = request.app.state.engine
    event_type = kinds.named(await event_types(request), type_name)
    if event_type is None:
        raise UnknownEventType(f"unknown event type {type_name!r}", [("type", "is not defined")])
    wanted = data.get("locale") if locale is None else locale
    chosen_locale = normalize_locale(wanted if isinstance(wanted, str) and wanted else "en")
    names = sorted({t.template for t in event_type.targets})
    stored = await asyncio.gather(*(engine.store.templates(tenant_of(request), n) for n in names))
    templates = {name: merged(found, name) for name, found in zip(names, stored, strict=True)}
    budget = Budget.of(engine.settings)
    plan = await asyncio.to_thread(
        lambda: plan_event(
            event_type,
            tenant_id=tenant_of(request),
            data=data,
            recipient=recipient,
            locale=chosen_locale,
            templates=templates,
            links_base=engine.settings.public_url or str(request.base_url),
            request_id=accesslog.of(request),
        ).render_builtins(budget)
    )
    # Stored templates render in the render processes; waiting for them holds no thread.
    prepared = await render_plan(plan, budget)
    engine.admission.check([item.priority for item in prepared.items])
    event, notes = await engine.store.create_event(prepared.event, prepared.items)
    metrics.created_many(n.channel for n in notes)
    log.info("event_accepted", event_id=event.id, type=event.type, notifications=len(notes))
    return event, notes


@router.post(
    "",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[EventAccepted],
    responses=documented(422, 503),
    summary="Trigger an event: render its targets, store it and them; 201 after commit",
)
async def create_event(body: EventIn, request: Request) -> JSONBody:
    try:
        event, notes = await submit(request, body.type, body.data, body.recipient, body.locale)
    except REFUSED as exc:
        return refusal(exc)
    data = {"event": views.event(event), "notificationIds": [n.id for n in notes]}
    return ok(data, f"Event accepted; {len(notes)} notification(s) queued", status=201)


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[EventList],
    responses=documented(422, 503),
    summary="Events, newest first, optionally of one type",
)
async def list_events(
    request: Request,
    type: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JSONBody:
    if type is not None:  # seed 001's ``reset_password`` is ``reset-password``
        known = kinds.named(await event_types(request), type)
        type = known.name if known is not None else type
    found = await request.app.state.engine.store.find_events(
        tenant_of(request), EventFilter(type=type), page, limit
    )
    return ok({"events": [views.event(e) for e in found.items],
               "pagination": pagination(found.total, page, limit)})  # fmt: skip


@router.get(
    "/{event_id}",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[EventDetail],
    responses=documented(404, 503),
    summary="An event with the notifications it produced",
)
async def get_event(event_id: str, request: Request) -> JSONBody:
    store = request.app.state.engine.store
    event = await store.get_event(tenant_of(request), event_id)
    if event is None:
        raise HTTPException(404, f"Event {event_id!r} not found")
    notes = (await store.event_notifications(tenant_of(request), [event.id]))[event.id]
    return ok({"event": views.event(event), "notifications": [views.brief(n) for n in notes]})


def pagination(total: int, page: int, limit: int) -> dict[str, int]:
    """Seed 004's pagination block, for pages that are not of notifications."""
    return present.pagination(Page([], total, page, limit))

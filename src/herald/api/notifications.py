"""``/api/notifications``: create, read, list and system statistics (seed 004)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.exceptions import HTTPException

from ..access import Scope
from ..models import Channel, Page, Priority, Stats, Status
from ..store.base import ListFilter
from . import accesslog, present
from .authz import actor_of, record, require_for, requires, tenant_of
from .errors import error_response
from .ingest import accept
from .json import JSONBody
from .paging import PageLimit, PageNumber, notification_page
from .schemas import (
    Envelope,
    ErrorBody,
    NotificationDetail,
    NotificationIn,
    NotificationList,
    NotificationOut,
    PriorityName,
    StatusFilter,
    SystemStats,
)

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "A field is missing or invalid; `errors` names it."},
    503: {"model": ErrorBody, "description": "The store is unavailable; retry after a moment."},
}


def _engine(request: Request) -> Any:
    return request.app.state.engine


@router.post(
    "",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[NotificationOut],
    responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, **ERRORS},
    summary="Create a notification; answered after it is durably stored",
)
async def create_notification(
    body: NotificationIn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> JSONBody:
    if body.ignoreSuppression:
        require_for(request, Scope.MANAGE, "ignoreSuppression")
    if (refused := body.retries_error(_engine(request).policy)) is not None:
        return error_response(422, "Validation failed", [refused])
    envelope = await accept(
        _engine(request), body, tenant_of(request), idempotency_key, accesslog.of(request)
    )
    return JSONBody(envelope, status_code=201)


@router.get(
    "/stats/system",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SystemStats],
    responses={503: ERRORS[503]},
    summary="Counts by status, type and priority; queue depth; success rate",
)
async def system_stats(request: Request) -> JSONBody:
    store, tenant = _engine(request).store, tenant_of(request)
    stats = await store.stats(tenant)
    data = present.stats(stats)
    data["queueDepth"] = {**data["queueDepth"], **await seed_depth(store, tenant, stats)}
    return JSONBody({"success": True, "data": data})


#: Seed 004's two work queues, by the priorities it routed to each.
SEED_QUEUES = {
    "notifications": (Priority.LOW, Priority.MEDIUM),
    "high_priority": (Priority.HIGH, Priority.CRITICAL),
}


async def seed_depth(store: Any, tenant: str, stats: Stats) -> dict[str, int]:
    """Seed 004's ``queueDepth``: the work waiting (due or delayed) that its queues held.

    ``retry`` is every notification waiting to be tried again after a failed attempt
    (RETRYING, in its channel's lane or in retry-1/retry-2); ``notifications`` and
    ``high_priority`` are the others waiting (QUEUED or SCHEDULED), split by priority.
    The store counts by status and priority, not by lane as well: a QUEUED row that a
    rate limit deferred inside retry-1 or retry-2 is counted by its priority here.
    """

    async def count(status: Status, priority: Priority) -> int:
        where = ListFilter(status=status, priority=priority)
        found: Page = await store.find(tenant, where, 1, 1)
        return found.total

    waiting = (Status.QUEUED, Status.SCHEDULED)
    depth = {}
    for name, priorities in SEED_QUEUES.items():
        counts = [count(s, p) for s in waiting for p in priorities]
        depth[name] = sum(await asyncio.gather(*counts))
    depth["retry"] = stats.by_status[Status.RETRYING.value]
    return depth


@router.get(
    "/{notification_id}",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[NotificationDetail],
    responses={404: {"model": ErrorBody}, 503: ERRORS[503]},
    summary="A notification with its audit log",
)
async def get_notification(notification_id: str, request: Request) -> JSONBody:
    engine = _engine(request)
    found = await engine.store.get(tenant_of(request), notification_id)
    if found is None:
        raise HTTPException(404, f"Notification {notification_id!r} not found")
    logs = await engine.store.audit(tenant_of(request), notification_id)
    data = {
        "notification": present.notification(found, engine.policy),
        "logs": [present.log_entry(e) for e in logs],
    }
    return JSONBody({"success": True, "data": data})


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[NotificationList],
    responses=ERRORS,
    summary="List notifications, newest first, with filters and pagination",
)
async def list_notifications(
    request: Request,
    page: PageNumber = 1,
    limit: PageLimit = 20,
    status: StatusFilter | None = None,
    type: Channel | None = None,
    priority: PriorityName | None = None,
) -> JSONBody:
    where = ListFilter(
        status=Status(status) if status else None,
        channel=type,
        priority=Priority[priority] if priority else None,
    )
    found = await _engine(request).store.find(tenant_of(request), where, page, limit)
    return notification_page(request, found)


@router.post(
    "/{notification_id}/cancel",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[NotificationOut],
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: ERRORS[503]},
    summary="Cancel a notification that is not yet sent (queued, scheduled or retrying)",
)
async def cancel_notification(notification_id: str, request: Request) -> JSONBody:
    engine = _engine(request)
    cancelled = await engine.store.cancel(tenant_of(request), notification_id, actor_of(request))
    found = await engine.store.get(tenant_of(request), notification_id)
    if found is None:
        raise HTTPException(404, f"Notification {notification_id!r} not found")
    if not cancelled:
        why = "is being delivered right now" if found.status is Status.PROCESSING else "is final"
        raise HTTPException(
            409,
            f"Notification {notification_id!r} is {found.status.value} and {why}; not cancelled",
        )
    data = present.notification(found, engine.policy)
    return JSONBody({"success": True, "data": data, "message": "Notification cancelled"})


@router.delete(
    "/{notification_id}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[None],
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}, 503: ERRORS[503]},
    summary="Delete a sent, failed or cancelled notification and its history",
)
async def delete_notification(notification_id: str, request: Request) -> JSONBody:
    store = _engine(request).store
    tenant = tenant_of(request)
    if not await store.delete_final(tenant, notification_id):
        found = await store.get(tenant, notification_id)
        if found is None:
            raise HTTPException(404, f"Notification {notification_id!r} not found")
        raise HTTPException(
            409,
            f"Notification {notification_id!r} is {found.status.value}; only SENT, FAILED and "
            "CANCELLED notifications can be deleted (cancel it first)",
        )
    record(request, "notification_deleted", notification_id=notification_id)
    return JSONBody({"success": True, "data": None, "message": "Notification deleted"})

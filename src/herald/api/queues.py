"""Seed 000's operations: queue health, notification stats, pause and resume."""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from ..access import Scope
from ..models import (
    ALL_QUEUES,
    DONE,
    NOT_LANES,
    QUEUE_ALIASES,
    QUEUE_GROUPS,
    Status,
    lanes_of,
)
from . import present
from .authz import record, requires, tenant_of
from .json import JSONBody
from .notifications import system_stats
from .schemas import Envelope, ErrorBody, SystemStats

router = APIRouter(prefix="/api", tags=["queues"])


class QueueOut(BaseModel):
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int
    paused: bool


class QueueHealth(BaseModel):
    status: str
    timestamp: str
    queues: dict[str, QueueOut]


class PauseOut(BaseModel):
    queue: str
    paused: bool
    lanes: list[str]  # the lanes the name means: seed 004's ``notifications`` is five


@router.get(
    "/queue-health",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[QueueHealth],
    responses={503: {"model": ErrorBody}},
    summary="Per lane: waiting, active, delayed, completed, failed, paused",
)
async def queue_health(request: Request) -> JSONBody:
    queues = await request.app.state.engine.store.queues(tenant_of(request))
    lanes = {q.name: present.queue(q) for q in queues}
    lanes["mail"] = lanes["email"]  # seed 000's name for the email lane, its counts
    data = {
        "status": "degraded" if any(q.paused for q in queues) else "healthy",
        "timestamp": present.iso(time.time()),
        "queues": lanes,
    }
    return JSONBody({"success": True, "data": data})


@router.get(
    "/notification-stats",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SystemStats],
    responses={503: {"model": ErrorBody}},
    summary="Counts by status, type and priority (as /api/notifications/stats/system)",
)
async def notification_stats(request: Request) -> JSONBody:
    return await system_stats(request)


async def _set_paused(request: Request, name: str, paused: bool) -> JSONBody:
    if name.lower() in NOT_LANES:
        raise HTTPException(422, NOT_LANES[name.lower()])
    lanes = lanes_of(name)
    if not lanes:
        known = ", ".join((*ALL_QUEUES, *QUEUE_ALIASES, *QUEUE_GROUPS))
        raise HTTPException(404, f"Unknown queue {name!r}; known queues: {known}")
    store = request.app.state.engine.store
    for lane in lanes:
        await store.set_paused(lane, paused)
        record(request, "queue_paused" if paused else "queue_resumed", queue=lane)
    queue = lanes[0] if len(lanes) == 1 else name.lower()
    word = "paused" if paused else "resumed"
    body: dict[str, Any] = {"queue": queue, "paused": paused, "lanes": list(lanes)}
    shown = queue if len(lanes) == 1 else f"{queue} ({', '.join(lanes)})"
    return JSONBody({"success": True, "data": body, "message": f"Queue {shown} {word}"})


@router.post(
    "/queue/{name}/pause",
    dependencies=[requires(Scope.ADMIN)],
    response_model=Envelope[PauseOut],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Stop claiming from a queue (seeds' names too: `mail`, `retry1`, `notifications`…)",
)
async def pause(name: str, request: Request) -> JSONBody:
    return await _set_paused(request, name, True)


@router.post(
    "/queue/{name}/resume",
    dependencies=[requires(Scope.ADMIN)],
    response_model=Envelope[PauseOut],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Claim from a paused queue again",
)
async def resume(name: str, request: Request) -> JSONBody:
    return await _set_paused(request, name, False)


#: What each word ``status`` takes removes: the rows queue-health counts as ``completed``
#: (every status a provider accepted, and SUPPRESSED), ``failed`` or cancelled. Seed 002's
#: job states and Herald's status names are both accepted.
CLEANABLE: dict[str, tuple[Status, ...]] = {
    "completed": DONE, "sent": DONE, "failed": (Status.FAILED,),
    "cancelled": (Status.CANCELLED,),
}  # fmt: skip


class CleanIn(BaseModel):
    """Seed 002's ``queue.clean(grace, limit, type)``, over HTTP."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"status": "completed", "olderThan": 3600}]},
    )

    status: Literal["completed", "failed", "cancelled", "SENT", "FAILED", "CANCELLED"]
    olderThan: int = Field(ge=0, le=10**10, description="Whole seconds since creation")
    limit: int = Field(1000, ge=1, le=10_000, description="At most this many go per call")


class CleanOut(BaseModel):
    queue: str
    status: str
    olderThan: int
    removed: int


@router.post(
    "/queue/{name}/clean",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[CleanOut],
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Delete the caller's completed, failed or cancelled notifications of a lane",
)
async def clean(name: str, body: CleanIn, request: Request) -> JSONBody:
    """Oldest first, with their history, as deleting one does. FAILED ones sit in ``dlq``."""
    if name.lower() in NOT_LANES:
        raise HTTPException(422, NOT_LANES[name.lower()])
    lanes = lanes_of(name)
    if not lanes:
        known = ", ".join((*ALL_QUEUES, *QUEUE_ALIASES, *QUEUE_GROUPS))
        raise HTTPException(404, f"Unknown queue {name!r}; known queues: {known}")
    queue = lanes[0] if len(lanes) == 1 else name.lower()
    statuses = CLEANABLE[body.status.lower()]
    before = time.time() - body.olderThan
    removed = 0
    for lane in lanes:  # the limit holds for the whole request
        if removed < body.limit:
            removed += await request.app.state.engine.store.clean_queue(
                tenant_of(request), lane, statuses, before, body.limit - removed
            )
    record(request, "queue_cleaned", queue=queue, status=body.status, removed=removed)
    data = {"queue": queue, "status": body.status, "olderThan": body.olderThan, "removed": removed}
    return JSONBody({"success": True, "data": data, "message": f"{removed} removed from {queue}"})

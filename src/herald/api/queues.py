"""Seed 000's operations: queue health, notification stats, pause and resume."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from ..access import Scope
from ..models import ALL_QUEUES, canonical_queue
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


@router.get(
    "/queue-health",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[QueueHealth],
    responses={503: {"model": ErrorBody}},
    summary="Per lane: waiting, active, delayed, completed, failed, paused",
)
async def queue_health(request: Request) -> JSONBody:
    queues = await request.app.state.engine.store.queues(tenant_of(request))
    data = {
        "status": "degraded" if any(q.paused for q in queues) else "healthy",
        "timestamp": present.iso(time.time()),
        "queues": {q.name: present.queue(q) for q in queues},
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
    queue = canonical_queue(name)
    if queue is None:
        known = ", ".join(("mail", *ALL_QUEUES))
        raise HTTPException(404, f"Unknown queue {name!r}; known queues: {known}")
    await request.app.state.engine.store.set_paused(queue, paused)
    record(request, "queue_paused" if paused else "queue_resumed", queue=queue)
    word = "paused" if paused else "resumed"
    body: dict[str, Any] = {"queue": queue, "paused": paused}
    return JSONBody({"success": True, "data": body, "message": f"Queue {queue} {word}"})


@router.post(
    "/queue/{name}/pause",
    dependencies=[requires(Scope.ADMIN)],
    response_model=Envelope[PauseOut],
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Stop claiming from a queue (`mail` is `email`)",
)
async def pause(name: str, request: Request) -> JSONBody:
    return await _set_paused(request, name, True)


@router.post(
    "/queue/{name}/resume",
    dependencies=[requires(Scope.ADMIN)],
    response_model=Envelope[PauseOut],
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Claim from a paused queue again",
)
async def resume(name: str, request: Request) -> JSONBody:
    return await _set_paused(request, name, False)

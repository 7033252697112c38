"""Health and the capture mailbox.

Health covers the store (answers, commits), the worker, open breakers, and
each background loop's liveness (``supervise.py``): a loop that is dead or
crash-looping makes the process unhealthy, so a balancer stops sending to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from ..access import Scope
from ..errors import StoreUnavailable
from ..metrics import exposition
from ..models import Channel
from ..supervise import LoopState
from . import present
from .authz import requires, tenant_of
from .json import JSONBody
from .schemas import Envelope, ErrorBody, Health, Mailbox

router = APIRouter(prefix="/api", tags=["system"])


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The store cannot be reached or cannot commit."}
    },
    summary="Liveness, and whether the store answers and commits (503 when it cannot)",
)
async def health(request: Request) -> JSONBody:
    engine: Any = request.app.state.engine
    services = {"database": "connected"}
    try:
        await engine.store.ping()
    except StoreUnavailable:
        services["database"] = "disconnected"
    else:
        services["database"] = await engine.commit_problem() or "connected"
    if engine.deliver:
        services["worker"] = "running" if engine.worker_running else "stopped"
    loops = engine.liveness()
    for live in loops:  # ``loops`` has every loop; ``services`` names the ones in trouble
        if not live.healthy or live.state is LoopState.RESTARTING:
            services[f"loop:{live.name}"] = live.describe()
    breakers = []
    with contextlib.suppress(StoreUnavailable):  # the database line already says so
        breakers = await engine.breakers()
    for b in breakers:
        if b.state == "closed":
            continue
        services[f"provider:{b.provider}@{b.instance}"] = f"breaker {b.state}"
    healthy = (
        services["database"] == "connected"
        and services.get("worker") != "stopped"
        and all(live.healthy for live in loops)
    )
    status = "healthy" if healthy else "unhealthy"
    if healthy and engine.admission.shedding:
        status = "degraded"  # still serving: HIGH and CRITICAL are taken
        services["admission"] = engine.admission.reason()
    body = {
        "status": status,
        "timestamp": present.iso(time.time()),
        "services": services,
        "uptime": round(time.time() - engine.started_at, 3),
        "instance": engine.settings.instance,
        "loops": {live.name: live.as_dict() for live in loops},
    }
    return JSONBody(body, status_code=200 if healthy else 503)


@router.get(
    "/mailbox",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[Mailbox],
    responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Messages the capture provider kept instead of sending, newest first",
)
async def mailbox(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    type: Channel | None = None,
) -> JSONBody:
    store = request.app.state.engine.store
    messages = await store.mailbox(tenant_of(request), limit, type)
    secret = await store.sensitive_notifications(
        tenant_of(request), [m.notification_id for m in messages]
    )
    items = [present.mailbox_item(m, m.notification_id in secret) for m in messages]
    return JSONBody({"success": True, "data": {"messages": items}})


@router.get(
    "/metrics",
    dependencies=[requires(Scope.ADMIN)],
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        503: {"model": ErrorBody},
    },
    summary="Prometheus metrics of every tenant: event counters, store gauges, histograms",
    description=(
        "Counters of notifications created, sent, failed, retried and deferred and of the "
        "status moves receipts made, counted as they happen and never stepping back; gauges "
        "read from the store at each scrape (queue depth and waiting, the oldest wait, the DLQ, "
        "breakers, live workers); processing and HTTP histograms. Under `herald up` with "
        "several processes, every process's. Each sample appears once."
    ),
)
async def metrics(request: Request) -> PlainTextResponse:
    """A worker counts as alive while its heartbeat (each ``HERALD_SWEEP_INTERVAL``) is
    younger than three intervals."""
    engine = request.app.state.engine
    now = time.time()
    alive_after = now - 3 * engine.settings.sweep_interval
    gauges, breakers = await asyncio.gather(
        engine.store.gauges(now, alive_after), engine.breakers()
    )
    return PlainTextResponse(exposition(gauges, breakers, now), media_type=CONTENT_TYPE_LATEST)

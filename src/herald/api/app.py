"""The ASGI app factory. The engine (store, providers, maybe a worker) lives in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..config import Settings
from ..dashboard import routes as dashboard
from ..engine import Engine
from . import (
    bulk,
    dlq,
    errors,
    idempotency,
    ingest,
    notifications,
    notify,
    providers,
    queues,
    system,
)
from .event_types import router as event_types_router
from .events import router as events_router
from .json import JSONBody
from .seeds import router as seeds_router
from .signups import router as signups_router
from .templates import router as templates_router


def create_app(settings: Settings | None = None, *, deliver: bool = True) -> FastAPI:
    """Herald's HTTP app; ``deliver`` runs the delivery worker in the same process."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = Engine(settings, deliver=deliver)
        await engine.start()
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="Herald",
        version=__version__,
        description="Self-hosted notification delivery: durable, retried, observable.",
        lifespan=lifespan,
        default_response_class=JSONBody,
    )
    errors.install(app)
    app.include_router(bulk.router)  # before /{notification_id} routes of the same prefix
    app.include_router(notifications.router)
    app.include_router(system.router)
    app.include_router(notify.router)
    app.include_router(queues.router)
    app.include_router(dlq.router)
    app.include_router(providers.router)
    app.include_router(templates_router)
    app.include_router(events_router)
    app.include_router(event_types_router)
    app.include_router(signups_router)
    app.include_router(seeds_router)
    app.include_router(dashboard.router)  # HTML for operators, outside the OpenAPI document
    app.mount("/dashboard/static", dashboard.static, name="dashboard-static")
    app.add_api_route("/", dashboard.home, include_in_schema=False)
    max_bytes, instance = settings.max_body_bytes, settings.instance
    app.add_middleware(
        idempotency.IdempotencyKeys, state_holder=app, ttl_hours=settings.idempotency_ttl_hours
    )
    app.add_middleware(errors.BodyLimitAndIdentity, max_bytes=max_bytes, instance=instance)
    # Added last, so it is outermost: the ingest hot path skips every layer below.
    app.add_middleware(
        ingest.IngestFastPath, state_holder=app, max_bytes=max_bytes, instance=instance
    )
    return app

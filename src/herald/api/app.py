"""The ASGI app factory. The engine (store, providers, maybe a worker) lives in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..config import Settings
from ..dashboard import create as dashboard_create
from ..dashboard import live as dashboard_live
from ..dashboard import routes as dashboard
from ..dashboard import suppressions as dashboard_suppressions
from ..dashboard.sessions import Sessions
from ..engine import Engine
from . import (
    accesslog,
    authz,
    bulk,
    dlq,
    docs,
    errors,
    etag,
    guard,
    idempotency,
    ingest,
    keys,
    notifications,
    notify,
    providers,
    queues,
    suppressions,
    system,
    unsubscribe,
    validation,
    verification,
)
from .credentials import Budgets, KeyRing, first_start
from .event_types import router as event_types_router
from .events import router as events_router
from .json import JSONBody
from .receipts import router as receipts_router
from .seeds import router as seeds_router
from .signups import router as signups_router
from .templates import router as templates_router


class HeraldAPI(FastAPI):
    """FastAPI with one ASGI layer in front of its whole stack, its own middleware included.

    ``add_middleware`` puts a layer inside Starlette's error handler and
    FastAPI's telemetry, which every request then pays for. The ingest hot path
    answers everything itself (its own 413, 422, 503 and 500), so it goes in
    front of them: ``put_in_front`` wraps the rest of the app, which the layer
    calls for whatever it does not serve.
    """

    _front: ASGIApp | None = None

    def put_in_front(self, layer: Callable[[ASGIApp], ASGIApp]) -> None:
        self._front = layer(super().__call__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is None:
            await super().__call__(scope, receive, send)
        else:
            await self._front(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, deliver: bool = True, fast_path: bool = True
) -> FastAPI:
    """Herald's HTTP app; ``deliver`` runs the delivery worker in the same process.

    ``fast_path=False`` leaves the ingest fast path out, so the framework's route
    serves ``POST /api/notifications``: the tests compare the two doors that way.
    """
    settings = settings or Settings()
    validation.schedule_days = settings.max_schedule_days
    validation.allow_mixed_script = settings.allow_mixed_script
    validation.chat_schemes = frozenset(s.lower() for s in settings.chat_schemes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        engine = Engine(settings, deliver=deliver)
        await engine.start()
        app.state.engine = engine
        app.state.keys = KeyRing(engine.store, settings)
        app.state.budgets = Budgets(engine.store)
        app.state.sessions = Sessions(engine.store, settings)
        await first_start(engine.store, settings)
        engine.admission.start()
        live = dashboard_live.open_hub(app, engine)
        try:
            # The server calls this first when it stops: open event streams end then.
            yield {dashboard_live.CLOSING: live.close}
        finally:
            live.close()
            await live.wait_closed()
            await engine.admission.stop()
            await engine.stop()

    app = HeraldAPI(
        title="Herald",
        version=__version__,
        description="Self-hosted notification delivery: durable, retried, observable.",
        lifespan=lifespan,
        default_response_class=JSONBody,
        docs_url=None,
        openapi_url=None,
    )
    errors.install(app)
    app.include_router(bulk.router)  # before /{notification_id} routes of the same prefix
    app.include_router(notifications.router)
    app.include_router(system.router)
    app.include_router(notify.router)
    app.include_router(queues.router)
    app.include_router(dlq.router)
    app.include_router(providers.router)
    app.include_router(keys.router)
    app.include_router(templates_router)
    app.include_router(events_router)
    app.include_router(event_types_router)
    app.include_router(signups_router)
    app.include_router(seeds_router)
    app.include_router(receipts_router)  # public: each checked by its provider's signature
    app.include_router(unsubscribe.router)  # public: a signed link, no credential
    app.include_router(verification.router)  # public: a one-time token, no credential
    app.include_router(suppressions.router)
    app.include_router(suppressions.categories)
    app.include_router(dashboard.router)  # HTML for operators, outside the OpenAPI document
    app.include_router(dashboard_suppressions.router)
    app.include_router(dashboard_create.router)
    app.include_router(dashboard_live.router)
    app.mount("/dashboard/static", dashboard.static, name="dashboard-static")
    app.add_api_route("/", dashboard.home, include_in_schema=False)
    docs.install(app)
    authz.verify(app)
    max_bytes, instance = settings.max_body_bytes, settings.instance
    app.add_middleware(etag.ETags)  # innermost: it tags what the routes answer
    app.add_middleware(
        idempotency.IdempotencyKeys, state_holder=app, ttl_hours=settings.idempotency_ttl_hours
    )
    app.add_middleware(errors.BodyLimitAndIdentity, max_bytes=max_bytes, instance=instance)
    # Outermost: the request id and access log, the guard, then the ingest hot path,
    # which skips every other layer.
    app.put_in_front(
        lambda rest: accesslog.AccessLog(
            guard.Guard(
                ingest.IngestFastPath(
                    rest, state_holder=app, max_bytes=max_bytes, instance=instance
                )
                if fast_path
                else rest,
                settings,
                state_holder=app,
            ),
            settings,
            app.router.routes,
        )
    )
    return app

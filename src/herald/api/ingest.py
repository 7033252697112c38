"""Accepting one notification: validate, store durably, answer 201.

``accept`` is the one implementation; two doors lead to it. The framework's
route documents it in OpenAPI and serves it when the fast path is off, and
``IngestFastPath`` serves ``POST /api/notifications`` as a bare ASGI
endpoint, skipping the framework's per-request machinery (dependency
resolution, exception middleware, request objects), which measured at about
half the CPU time of a request. Both produce byte-identical answers: the
fast path answers only what it stores (and a body too large to read); a body
that fails validation goes on to the framework's route, which words every
refusal, since FastAPI parses JSON and words errors its own way
(``tests/integration/test_two_doors.py`` holds the doors to this).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as ASGIScope

from .. import metrics
from ..access import Scope
from ..errors import Overloaded, StoreUnavailable, Unstorable
from ..models import NewNotification, Priority, Status
from . import present
from .errors import INTERNAL, UNAVAILABLE, UNSTORABLE, log, overloaded_body
from .errors import too_large_body as _too_large
from .schemas import NotificationIn

PATH = "/api/notifications"


def to_new(
    body: NotificationIn, tenant_id: str, idempotency_key: str | None = None
) -> NewNotification:
    return NewNotification(
        channel=body.type,
        recipient=body.recipient,
        body=body.message,
        subject=body.subject,
        html=body.html,
        priority=Priority[body.priority],
        metadata=body.metadata,
        scheduled_at=body.due_at(time.time()),
        idempotency_key=idempotency_key,
        tenant_id=tenant_id,
        callback_url=body.callbackUrl,
    )


async def accept(
    engine: Any, body: NotificationIn, tenant_id: str, idempotency_key: str | None
) -> dict[str, Any]:
    """Store ``body``; the answer's envelope once the commit holding it is done."""
    engine.admission.check((Priority[body.priority],))
    [stored] = await engine.store.create([to_new(body, tenant_id, idempotency_key)])
    message = (
        "Notification scheduled successfully"
        if stored.status is Status.SCHEDULED
        else "Notification created and queued successfully"
    )
    data = present.notification(stored, engine.max_attempts)
    return {"success": True, "data": data, "message": message}


class IngestFastPath:
    """Serve ``POST /api/notifications`` directly; pass everything else on."""

    def __init__(self, app: ASGIApp, state_holder: Any, max_bytes: int, instance: str) -> None:
        self.app = app
        self.state_holder = state_holder
        self.max_bytes = max_bytes
        self.identity = (b"x-herald-instance", instance.encode())

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"idempotency-key" or (
                name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes)
            ):
                # Idempotent requests and oversized bodies take the full stack.
                await self.app(scope, receive, send)
                return
        caller = scope["state"]["principal"]
        if not caller.allows(Scope.SEND):
            # The framework's route refuses it in these words (authz.requires).
            await self.app(scope, receive, send)
            return
        clock = time.perf_counter()
        chunks = []
        size = 0
        more = True
        headers: list[tuple[bytes, bytes]]
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                status, body, headers = 413, orjson.dumps(_too_large(self.max_bytes)), []
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        else:
            raw = b"".join(chunks)
            try:
                payload = NotificationIn.model_validate_json(raw)
            except ValidationError:
                await self.app(scope, _replayed(raw, receive), send)  # the framework refuses it
                return
            status, body, headers = await self._handle(payload, caller.tenant_id)
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            self.identity,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        metrics.observe_http("POST", PATH, status, clock)

    async def _handle(
        self, payload: NotificationIn, tenant_id: str
    ) -> tuple[int, bytes, list[Any]]:
        headers: list[tuple[bytes, bytes]] = []
        try:
            envelope = await accept(self.state_holder.state.engine, payload, tenant_id, None)
        except StoreUnavailable as exc:
            log.warning("store_unavailable", path=PATH, error=str(exc))
            headers.append((b"retry-after", b"1"))
            return 503, orjson.dumps(UNAVAILABLE), headers
        except Unstorable:
            return 422, orjson.dumps(UNSTORABLE), headers
        except Overloaded as exc:
            headers.append((b"retry-after", str(exc.retry_after).encode()))
            return 503, orjson.dumps(overloaded_body(exc)), headers
        except Exception:
            log.exception("request_failed", path=PATH)
            return 500, orjson.dumps(INTERNAL), headers
        return 201, orjson.dumps(envelope), headers


def _replayed(raw: bytes, receive: Receive) -> Receive:
    """``receive`` for an app called after the body was read: the body, then the client's."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replayed

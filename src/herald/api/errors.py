"""Every failure leaves as a JSON envelope naming the problem; none as a bare 500.

Validation errors name the field (``recipient``, ``query.limit``); a body that
is not JSON is a 400; a store that cannot commit is a 503 with Retry-After,
so a client retries instead of believing an unsaved notification was taken.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import metrics
from ..errors import Overloaded, StoreUnavailable, Unstorable
from .json import JSONBody

log = structlog.get_logger("herald.api")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ")


def error_response(status: int, message: str, errors: list[dict[str, str]] | None = None,
                   headers: Mapping[str, str] | None = None) -> JSONBody:  # fmt: skip
    body = {"success": False, "message": message, "errors": errors or []}
    return JSONBody(body, status_code=status, headers=headers)


UNAVAILABLE = {
    "success": False,
    "message": "The store is unavailable; retry shortly.",
    "errors": [],
}


INTERNAL = {"success": False, "message": "Internal error; it has been logged.", "errors": []}

UNSTORABLE = {
    "success": False,
    "message": "The request holds a NUL character, which the store cannot keep.",
    "errors": [{"field": "body", "message": "must not contain NUL characters"}],
}


def overloaded_body(exc: Overloaded) -> dict[str, Any]:
    return {"success": False, "message": str(exc), "errors": []}


def too_large_body(max_bytes: int) -> dict[str, Any]:
    return {"success": False, "message": f"Request body exceeds {max_bytes} bytes.", "errors": []}


def validation_body(errors: Sequence[Any]) -> tuple[int, dict[str, Any]]:
    """Status and envelope for pydantic errors: 400 for broken JSON, else 422 per field."""
    for e in errors:
        if e.get("type") == "json_invalid":
            detail = e.get("ctx", {}).get("error", "invalid JSON")
            field = [{"field": "body", "message": "must be a JSON object"}]
            return 400, {"success": False, "message": f"Request body is not valid JSON: {detail}",
                         "errors": field}  # fmt: skip
    fields = [{"field": _field(e["loc"]), "message": _clean(e["msg"])} for e in errors]
    return 422, {"success": False, "message": "Validation failed", "errors": fields}


async def _validation(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, RequestValidationError)
    status, body = validation_body(exc.errors())
    return JSONBody(body, status_code=status)


async def _http(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unavailable(request: Request, exc: Exception) -> JSONBody:
    log.warning("store_unavailable", path=request.url.path, error=str(exc))
    return JSONBody(UNAVAILABLE, status_code=503, headers={"Retry-After": "1"})


async def _unstorable(request: Request, exc: Exception) -> JSONBody:
    return JSONBody(UNSTORABLE, status_code=422)


async def _overloaded(request: Request, exc: Exception) -> JSONBody:
    assert isinstance(exc, Overloaded)
    headers = {"Retry-After": str(exc.retry_after)}
    return JSONBody(overloaded_body(exc), status_code=503, headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONBody:
    log.exception("request_failed", path=request.url.path)
    return JSONBody(INTERNAL, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(Unstorable, _unstorable)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimitAndIdentity:
    """Refuse bodies over ``max_bytes`` with 413 and stamp ``X-Herald-Instance`` on replies.

    Pure ASGI (no per-request objects) because it sits on the ingest hot path.
    The limit holds for chunked bodies too, whatever Content-Length claims.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, instance: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.identity = (b"x-herald-instance", instance.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sized = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._too_large(send)
                    return
                sized = True
        if not sized and scope["method"] in ("POST", "PUT", "PATCH"):
            # A streamed body's size shows only as it arrives: read it (up to the limit)
            # before the app, whose body parser would turn a refusal mid-read into a 400.
            buffered = await self._buffer(receive)
            if buffered is None:
                await self._too_large(send)
                return
            receive = _replay(buffered, receive)
        seen = 0
        started = False
        clock = time.perf_counter()
        status = 500

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def stamped(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), self.identity]
            await send(message)

        try:
            await self.app(scope, limited, stamped)
        except _TooLarge:
            status = 413
            if not started:
                await self._too_large(send)
        finally:
            route = getattr(scope.get("route"), "path_format", None) or "unmatched"
            metrics.observe_http(scope["method"], route, status, clock)

    async def _buffer(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or None once they pass ``max_bytes``."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, send: Send) -> None:
        response = JSONBody(too_large_body(self.max_bytes), status_code=413)
        await send({"type": "http.response.start", "status": 413,
                    "headers": [*response.raw_headers, self.identity]})  # fmt: skip
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed

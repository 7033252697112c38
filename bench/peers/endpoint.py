"""A bare ASGI ``POST /api/notifications`` that validates a body and enqueues one job.

This is the peers' counterpart of Herald's ingest fast path: no framework, the
body read by hand, validated with pydantic against a model with the same
fields and limits as Herald's ``NotificationIn``, then handed to the peer's
``enqueue`` (one job per request); the answer is 201 with the job id, or 422
with pydantic's errors. ``GET /api/health`` answers 200 so the driver can wait
for the server. Each peer module builds its app with ``build_app`` and is
served by uvicorn with ``--loop uvloop --http httptools``, as Herald is.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

PATH = "/api/notifications"
MAX_BODY_BYTES = 1_048_576
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

Enqueue = Callable[[dict[str, Any]], Awaitable[str]]
Hook = Callable[[], Awaitable[None]]


class NotificationIn(BaseModel):
    """The fields and limits of Herald's body; EMAIL recipients are checked as addresses."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["EMAIL", "SMS", "PUSH", "WEBHOOK", "CHAT"]
    recipient: str = Field(min_length=1, max_length=4096)
    subject: str | None = Field(None, max_length=998)
    message: str = Field(min_length=1, max_length=5000)
    html: str | None = Field(None, max_length=200_000)
    priority: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = "MEDIUM"
    metadata: dict[str, Any] = Field(default_factory=dict)
    scheduledAt: datetime | None = None
    callbackUrl: str | None = Field(None, max_length=2048)
    delaySeconds: int | None = Field(None, ge=0, le=31_536_000)

    @field_validator("recipient")
    @classmethod
    def _recipient(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError("must not contain line breaks or NUL")
        return value.strip()

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\0"):
            raise ValueError("must not contain line breaks (CR/LF) or NUL")
        return value

    def checked(self) -> dict[str, Any]:
        """The body as a job payload, after the checks that need several fields."""
        if self.type == "EMAIL":
            if not EMAIL.match(self.recipient):
                raise ValueError("recipient: not an email address")
            if not (self.subject and self.subject.strip()):
                raise ValueError("subject: is required for EMAIL")
        return self.model_dump(mode="json", exclude_none=True)


async def _read_body(receive: Callable[[], Awaitable[dict[str, Any]]]) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b""
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Callable[[dict[str, Any]], Awaitable[None]], status: int, body: Any
) -> None:
    raw = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def build_app(enqueue: Enqueue, startup: Hook | None = None, shutdown: Hook | None = None) -> Any:
    """An ASGI app: ``POST /api/notifications`` enqueues through ``enqueue``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if startup is not None:
                        await startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if shutdown is not None:
                        await shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == "/api/health":
            await _answer(send, 200, {"status": "ok"})
            return
        if scope["method"] != "POST" or scope["path"] != PATH:
            await _answer(send, 404, {"success": False, "error": "not found"})
            return
        raw = await _read_body(receive)
        if raw is None:
            return
        try:
            payload = NotificationIn.model_validate_json(raw).checked()
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            await _answer(send, 422, {"success": False, "errors": errors})
            return
        except ValueError as exc:
            await _answer(send, 422, {"success": False, "errors": [str(exc)]})
            return
        job_id = await enqueue(payload)
        await _answer(send, 201, {"success": True, "data": {"id": job_id, "status": "QUEUED"}})

    return app

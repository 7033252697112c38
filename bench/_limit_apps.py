"""The two bare ASGI servers bench/limits.py loads with wrk; nothing here measures anything.

``python bench/_limit_apps.py echo|validate --port PORT`` serves, until SIGTERM:

* ``echo``: every POST is answered 201 with its own body, as
  ``application/json``. No framework, no parsing: the floor under any HTTP
  service written in Python on this machine.
* ``validate``: every POST is what Herald's ``POST /api/notifications`` fast
  path does (``herald.api.ingest.IngestFastPath``) without the store: the
  body is read as the fast path reads it (``herald.api.intake``, and where that
  does not accept, Herald's own ``NotificationIn`` model: 400 or 422 with
  Herald's error envelope when it fails), and the 201 answer is built by
  Herald's own ``accept_new`` from the row a store would have written
  (``records.fresh``: a new id, QUEUED, timestamps), so it has Herald's exact
  shape and size. Left out: the credential check (``api.guard``), the commit,
  the request-duration histogram and the instance header.

Both answer ``GET /api/health`` with 200 so the benchmark can wait for them.
They are served the way ``herald api`` serves (``herald.cli._serve``): uvicorn
with uvloop and httptools, Herald's log configuration and level, no access log.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from pydantic import ValidationError

from herald.admission import Admission
from herald.api import intake
from herald.api.errors import validation_body
from herald.api.ingest import accept_new, to_new
from herald.api.schemas import NotificationIn
from herald.config import Settings
from herald.logs import configure
from herald.models import DEFAULT_TENANT, NewNotification, Notification
from herald.store import records

HEALTH_PATH = "/api/health"
HEALTHY = orjson.dumps({"status": "ok"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[bytes], Awaitable[tuple[int, bytes]]]


class NothingStored:
    """A store that writes nothing: ``create`` returns the rows Herald's stores would write."""

    async def create(self, items: Sequence[NewNotification]) -> list[Notification]:
        now = time.time()
        return [records.fresh(item, now) for item in items]


@dataclass
class StorelessEngine:
    """What ``accept`` reads from Herald's engine: store, load shedding, the ladder's length.

    Nothing counts a backlog here, so shedding never starts; its check still runs.
    """

    max_attempts: int
    shed_backlog: int
    store: NothingStored = field(default_factory=NothingStored)
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.store, self.shed_backlog)


async def echo(raw: bytes) -> tuple[int, bytes]:
    return 201, raw


def validator(engine: StorelessEngine) -> Handler:
    """Herald's ingest handler (``IngestFastPath._handle``) with ``engine`` in place of its own."""

    async def validate(raw: bytes) -> tuple[int, bytes]:
        try:
            new = intake.one(raw, DEFAULT_TENANT)  # the fast path's reading
        except intake.Unplain:  # and where it does not accept, the model's
            try:
                new = to_new(NotificationIn.model_validate_json(raw), DEFAULT_TENANT)
            except ValidationError as exc:
                status, envelope = validation_body(exc.errors())
                return status, orjson.dumps(envelope)
        return 201, orjson.dumps(await accept_new(engine, new))

    return validate


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop; uvicorn only needs to hear so."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def bare_app(handler: Handler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A raw ASGI callable: health on GET, ``handler`` on every POST, 405 otherwise."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and scope["path"] == HEALTH_PATH:
            await respond(send, 200, HEALTHY)
            return
        if scope["method"] != "POST":
            await respond(send, 405, b'{"success":false,"message":"Method not allowed"}')
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        status, body = await handler(b"".join(chunks))
        await respond(send, status, body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="A bare ASGI server for bench/limits.py.")
    parser.add_argument("app", choices=("echo", "validate"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    configure(settings.log_level)
    handler: Handler = echo
    if args.app == "validate":
        handler = validator(StorelessEngine(settings.ladder().max_attempts, settings.shed_backlog))
    gc.collect()  # as herald.cli._serve does before serving
    gc.freeze()
    uvicorn.run(
        bare_app(handler),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace) + 5,
    )


if __name__ == "__main__":
    main()

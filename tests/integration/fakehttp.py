"""A local HTTP/1.1 server for provider tests: it records each request and answers as told.

uvicorn serves a plain ASGI callable on a socket bound to a free port of
127.0.0.1, in the test's own event loop. A provider that blocked the loop
would therefore never get its answer, which is itself a check.

Usage::

    async with fake_server(lambda seen: Reply.json(201, {"sid": "SM1"})) as server:
        ...post to server.url...
        [seen] = server.seen
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn


@dataclass
class Seen:
    """One request as it arrived: header names lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0

    def form(self) -> dict[str, str]:
        assert self.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True, strict_parsing=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, data: Any, **headers: str) -> Reply:
        names = {key.replace("_", "-"): value for key, value in headers.items()}
        return cls(status, json.dumps(data).encode(), {"content-type": "application/json", **names})


Handler = Callable[[Seen], "Reply | Awaitable[Reply]"]


class FakeServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self.url = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = bytearray()
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        client = scope.get("client") or ("", 0)
        seen = Seen(
            scope["method"],
            scope["path"],
            scope["query_string"].decode(),
            headers,
            bytes(body),
            client[1],
        )
        self.seen.append(seen)
        reply = self.handler(seen)
        if inspect.isawaitable(reply):
            reply = await reply
        assert isinstance(reply, Reply)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[FakeServer]:
    fake = FakeServer(handler)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        fake,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield fake
    finally:
        server.should_exit = True
        await task
        sock.close()

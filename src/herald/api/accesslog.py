"""The outermost layer: a request id for every request, and one access log line for each.

``X-Request-Id`` is taken from the caller when it is 1 to 128 characters of
``A-Z a-z 0-9 - _ . : ; = + / @``; anything else (too long, control
characters, spaces) is replaced by a generated one rather than refused. The
id goes back on every answer as ``X-Request-Id``, into every log line written
while the request is handled (``logs.REQUEST_ID``), and onto the
notifications the request creates (``request_id``, read with ``of``).

The access line (``HERALD_ACCESS_LOG``, on by default, at ``info``) names the
route's template (``/api/notifications/{notification_id}``), never the path
itself, which may hold ids, signed tokens or a query string; the key by its
public prefix, never its secret. Health checks and metrics scrapes are
logged at ``debug`` only: they come every few seconds and say nothing.

The line is built as a dict and rendered with orjson, skipping structlog's
processors, as ingest serves tens of thousands of requests a second.
Measured with ``timeit`` (CPU time, best of 7 runs of 200,000, on a busy
2-core machine): the line took 3.6 us written to /dev/null, 4.1 to a file and
6 to a pipe (the write itself 0.3 to 2); the same line through structlog's
processors 7 to 10 us (15 before ``logs.py`` gave them orjson and its timestamps).
The request id, its header and the log context cost 2.5 us more, written or not.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
from collections.abc import Collection, Sequence
from typing import Any

import orjson
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import logs
from ..config import Settings

HEADER = b"x-request-id"
MAX_LENGTH = 128
_ACCEPTED = re.compile(rb"[A-Za-z0-9._:;=+/@-]{1,%d}" % MAX_LENGTH)
#: Routes logged at ``debug`` only.
SCRAPED = frozenset({"/api/health", "/api/metrics"})
#: Templates found for paths the router never saw (refused at the guard, or served by the
#: ingest fast path), by method and path: only for templates without parameters, so the
#: paths are the app's own, and bounded all the same (methods are the client's words).
MAX_KNOWN = 1024
UNMATCHED = "unmatched"
_bits = random.getrandbits
_PARAMETER = "{"


def new_id() -> str:
    """128 random bits in hex, as many as a UUID4 holds: 0.3 us, where ``uuid.uuid4().hex``
    took 2.7 and ``os.urandom`` 0.6 (a system call). A request id is no secret: a caller
    may choose its own."""
    return f"{_bits(128):032x}"


def given(headers: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The caller's ``X-Request-Id`` if it is one Herald keeps (the last one sent); else None."""
    found = None
    for name, value in headers:
        if name == HEADER:
            found = value
    if found is None or _ACCEPTED.fullmatch(found) is None:
        return None
    return found.decode("ascii")


def of(request: Request) -> str | None:
    """The id of the request being handled (None only outside ``AccessLog``)."""
    found: str | None = request.scope.get("state", {}).get("request_id")
    return found


class AccessLog:
    def __init__(self, app: ASGIApp, settings: Settings, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes
        level = logs.level_number(settings.log_level)
        self.info = settings.access_log and level <= logging.INFO
        self.debug = settings.access_log and level <= logging.DEBUG
        self.instance = settings.instance
        self._known: dict[tuple[str, str], str] = {}
        self._table: list[tuple[Any, str, Collection[str] | None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = given(scope["headers"]) or new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode())
        status = 0

        async def identified(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = logs.REQUEST_ID.set(request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, identified)
        except BaseException:
            status = status or 500
            raise
        finally:
            logs.REQUEST_ID.reset(token)
            if self.info:
                # No answer and no error: the client went away first (nginx's 499).
                self._write(scope, status or 499, started, request_id)

    def _write(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        route = self.template(scope)
        level = "info"
        if route in SCRAPED:
            if not self.debug:
                return
            level = "debug"
        caller = scope["state"].get("principal")
        line = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "key": None if caller is None else caller.prefix,
            "instance": self.instance,
            "request_id": request_id,
            "event": "http_request",
            "level": level,
            "timestamp": logs.timestamp(time.time()),
        }
        _emit(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def template(self, scope: Scope) -> str:
        """The template of the route that served the request, or would have: the router
        never saw a request the guard refused or the ingest fast path served, and leaves
        no route behind for a mount (the dashboard's files)."""
        route = scope.get("route")
        template = getattr(route, "path_format", None)
        if template is not None:
            return str(template)
        method, path = scope["method"], scope["path"]
        known = self._known.get((method, path))
        if known is not None:
            return known
        if self._table is None:  # built once every route is in (the app's last step)
            self._table = [(c.path_regex, c.path_format, c.methods)
                           for c in iter_route_contexts(self.routes) if c.path_format]  # fmt: skip
        found = None
        for regex, candidate, methods in self._table:  # as the router matches: method first
            if regex.match(path):
                if methods is None or method in methods:
                    found = candidate
                    break
                found = found or candidate
        if found is None:
            return UNMATCHED
        if _PARAMETER not in found and len(self._known) < MAX_KNOWN:
            self._known[method, path] = found
        return found


def _emit(line: bytes) -> None:
    """One whole line to stderr, in one write where it is a file descriptor."""
    stream: Any = sys.stderr
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stand-in without a descriptor (tests)
        stream.write(line.decode())
        return
    try:
        written = os.write(fd, line)
        while written < len(line):  # a pipe took part of it (rare: a line is ~300 bytes)
            written += os.write(fd, line[written:])
    except OSError:  # stderr closed or full: the request is answered all the same
        pass

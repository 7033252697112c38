"""``GET /metrics`` of a worker run on its own: ``herald worker`` with ``HERALD_METRICS_PORT``.

A worker on a host of its own has no API process beside it to add its
numbers up, so it answers scrapes itself: its counters, histograms and
in-flight gauge (``metrics.processes``). The store's gauges are the API's to
show, once for all. Under ``herald up`` with several processes the API's
scrape shows every process already, and this door stays shut.

It asks what ``GET /api/metrics`` asks: an API key with the ``admin`` scope,
as ``Authorization: Bearer`` (Prometheus's ``authorization`` setting) or
``X-API-Key``; and it listens on ``HERALD_METRICS_HOST``, loopback unless
told otherwise. With ``HERALD_AUTH=off`` it asks for nothing, and so will
listen on a loopback address only. What a caller sends is bounded: the head
of one request (8 KiB, read within 5 s), no body, one request per connection,
and 32 connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from prometheus_client import CONTENT_TYPE_LATEST

from . import metrics
from .access import Scope
from .api.credentials import KeyRing
from .config import Settings
from .errors import ConfigError, StoreUnavailable
from .store import Store

log = structlog.get_logger("herald.scrape")

PATH = b"/metrics"
HEAD_LIMIT = 8192
HEAD_SECONDS = 5.0
MAX_CONNECTIONS = 32
LOOPBACK = ("127.0.0.1", "::1", "localhost")

Headers = tuple[tuple[str, str], ...]
Answer = tuple[int, str, bytes, Headers]


async def open_door(settings: Settings, store: Store) -> MetricsDoor | None:
    """The worker's door when ``HERALD_METRICS_PORT`` asks for one, listening; else None."""
    if settings.metrics_port is None:
        return None
    if metrics.MULTIPROCESS_DIR is not None:
        log.warning("metrics_port_ignored", port=settings.metrics_port,
                    why="an API process on this host shows every process's metrics")  # fmt: skip
        return None
    door = MetricsDoor(settings, store)
    await door.open()
    return door


class MetricsDoor:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.host = settings.metrics_host
        self.port = settings.metrics_port
        self.anyone = settings.auth == "off"
        if self.anyone and self.host not in LOOPBACK:
            raise ConfigError(
                "HERALD_AUTH=off opens the worker's metrics to anyone who reaches them: "
                f"HERALD_METRICS_HOST must be a loopback address, not {self.host!r}"
            )
        self.keys = KeyRing(store, settings)
        self._server: asyncio.Server | None = None
        self._connections = 0

    async def open(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=HEAD_LIMIT
        )
        log.info("metrics_listening", host=self.host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._connections >= MAX_CONNECTIONS:
            writer.close()
            return
        self._connections += 1
        try:
            answer = await self._answer(reader)
            if answer is not None:
                status, reason, body, headers = answer
                head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
                        "Connection: close", "Cache-Control: no-store",
                        "X-Content-Type-Options: nosniff",
                        *(f"{name}: {value}" for name, value in headers)]  # fmt: skip
                writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)
                async with asyncio.timeout(HEAD_SECONDS):
                    await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> Answer | None:
        """The answer to one request; None when the caller went away or dawdled."""
        try:
            async with asyncio.timeout(HEAD_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return _text(431, "Request Header Fields Too Large", "the request head is too large")
        except (asyncio.IncompleteReadError, TimeoutError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return _text(400, "Bad Request", "not an HTTP/1.1 request")
        method, target, _ = parts
        if target.partition("?")[0].encode() != PATH:
            return _text(404, "Not Found", "only /metrics is here")
        if method != "GET":
            return _text(405, "Method Not Allowed", "GET only", (("Allow", "GET"),))
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        refusal = await self._refusal(headers)
        if refusal is not None:
            return refusal
        return 200, "OK", metrics.processes(), (("Content-Type", CONTENT_TYPE_LATEST),)

    async def _refusal(self, headers: dict[str, str]) -> Answer | None:
        """Why the caller may not read the metrics; None when it may."""
        if self.anyone:
            return None
        scheme, _, token = headers.get("authorization", "").partition(" ")
        secret = token.strip() if scheme.lower() == "bearer" else headers.get("x-api-key", "")
        challenge = (("WWW-Authenticate", "Bearer"),)
        if not secret:
            return _text(
                401, "Unauthorized", "an API key with the admin scope is needed", challenge
            )
        try:
            caller = await self.keys.principal(secret)
        except StoreUnavailable:
            return _text(503, "Service Unavailable", "the store cannot say who this key is")
        if caller is None:
            return _text(401, "Unauthorized", "unknown, revoked or expired API key", challenge)
        if not caller.allows(Scope.ADMIN):
            return _text(403, "Forbidden", "the metrics need the admin scope")
        return None


def _text(status: int, reason: str, text: str, headers: Headers = ()) -> Answer:
    return status, reason, text.encode() + b"\n", (("Content-Type", "text/plain"), *headers)

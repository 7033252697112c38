"""Limits uvicorn does not set by itself: head size, head and body read times, connections.

uvicorn's httptools protocol reads a request head of any size (a 50 MB header
block was read and answered 200) and never closes a client that sends one
header byte a second. ``bounded_protocol`` subclasses it:

- a request line and headers above ``HERALD_MAX_HEADER_BYTES`` (64 KiB) get
  ``431`` and the connection is closed; what is buffered meanwhile is bounded
  by one socket read, so memory goes back to its level when the attack ends;
- a head not complete within ``HERALD_HEADER_TIMEOUT`` (10 s) after the
  connection opened or the previous request ended, or a body not received
  within ``HERALD_BODY_TIMEOUT`` (30 s) after its head, closes the connection;
- ``HERALD_MAX_CONNECTIONS`` is uvicorn's own ``limit_concurrency``: past it, new
  requests get ``503``;
- at shutdown, answers that never end by themselves (the dashboard's event
  streams) are told to end first: uvicorn would wait for them up to its grace.

Behind HAProxy the same limits belong at the proxy as well
(``timeout http-request``, ``tune.bufsize``, ``maxconn``; see deploy/haproxy.cfg).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Settings


class _Bounded(HttpToolsProtocol):
    max_head = 65_536
    head_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # raw bytes of a head not yet complete
        self._head_size = 0  # the parsed head: request line and headers
        self._refused = False
        self._heads = 0  # heads parsed on this connection
        self._ended = 0  # messages ended on this connection
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head and self._timer is None:
            self._arm(self.head_timeout)  # a new request's head starts now
        if self._refused:
            return
        heads, ended = self._heads, self._ended
        super().data_received(data)
        if self._heads != heads or self._ended != ended:
            # A head or a whole message ended in this read: what this read holds
            # is a body or the start of the next head, bounded by the read itself.
            self._head_bytes = 0
        elif self._in_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head:
                self._too_large()

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._heads += 1
        self._in_head = False
        self._head_bytes = 0
        if self._head_size > self.max_head:  # a whole head that came in one read
            self._too_large()
            return
        self._arm(self.body_timeout)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_head = True
        self._ended += 1
        self._disarm()
        if not self._refused:
            super().on_message_complete()

    def shutdown(self) -> None:
        # uvicorn waits for every open response before it stops: those that never end
        # on their own (the dashboard's event streams) are told to end first. The app's
        # lifespan hands the means over in its state (``dashboard.live.CLOSING``).
        closing = self.app_state.get("herald.closing")
        if callable(closing):
            closing()
        super().shutdown()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection that sent too slowly")
            self.transport.close()

    def _too_large(self) -> None:
        self._refused = True
        self._disarm()
        message = f"Request line and headers exceed {self.max_head} bytes."
        body = orjson.dumps({"success": False, "message": message, "errors": []})
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


def bounded_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """The httptools protocol with ``settings``' limits."""
    return type(
        "BoundedHttpToolsProtocol",
        (_Bounded,),
        {
            "max_head": settings.max_header_bytes,
            "head_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
        },
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for Herald's API (``herald api``/``up``, and the tests' servers)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": bounded_protocol(settings),
        "log_level": settings.log_level.lower(),
        # Herald's own: its JSON lines (logs.configure) and its access log (api/accesslog.py).
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_grace) + 5,
        "limit_concurrency": settings.max_connections,
        # The client address (per-address budgets, login lockouts) and scheme
        # (the Secure cookie) come from X-Forwarded-* only from these proxies.
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }

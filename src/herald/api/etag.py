"""Entity tags on the API's JSON reads, and 304 for a client that already has the answer.

Seed 004 asks for conditional requests. Rather than each route working out a
version of what it shows, this layer hashes what it is about to send: a GET
under ``/api/`` answered 200 with JSON gets a strong ``ETag`` naming those
bytes, so the tag changes exactly when the answer does (a notification's
status, a page of a list, a template). ``If-None-Match`` naming that tag
(weak comparison, as RFC 9110 13.1.2 says for GET; ``*``; a list of tags)
turns the answer into a ``304 Not Modified`` without a body.

The answer is still computed in full, so a 304 saves the transfer, not the
query. ``Cache-Control: private, no-cache`` (unless the route set its own)
lets a browser keep tenant data and ask again each time, and keeps it out of
shared caches. The guard makes the tag weak when it gzips the answer.
"""

from __future__ import annotations

import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/api/"
CACHE_CONTROL = (b"cache-control", b"private, no-cache")
#: Headers a 304 leaves out: they describe a body it does not have (RFC 9110 15.4.5).
BODY_HEADERS = frozenset({b"content-type", b"content-length"})
_TAG = re.compile(rb'(?:W/)?"([^"]*)"')


def tag_of(body: bytes) -> bytes:
    """A strong entity tag for ``body``, quotes included."""
    return b'"' + hashlib.blake2b(body, digest_size=16).hexdigest().encode() + b'"'


def matches(condition: bytes, tag: bytes) -> bool:
    """Whether an ``If-None-Match`` value names ``tag`` (weak comparison) or is ``*``."""
    if condition.strip() == b"*":
        return True
    opaque = tag.removeprefix(b"W/")[1:-1]
    return any(found == opaque for found in _TAG.findall(condition))


class ETags:
    """Tag the framework's GET 200 JSON answers under ``/api/``; answer 304 when asked."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        held: Message | None = None
        chunks: list[bytes] = []

        async def tagged(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                if message["status"] == 200 and _is_json(message.get("headers", [])):
                    held = message  # sent once the whole body is known
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await _finish(scope, held, b"".join(chunks), send)
                return
            await send(message)

        await self.app(scope, receive, tagged)


async def _finish(scope: Scope, start: Message, body: bytes, send: Send) -> None:
    tag = tag_of(body)
    headers = [(name, value) for name, value in start.get("headers", []) if name != b"etag"]
    headers.append((b"etag", tag))
    if not any(name == CACHE_CONTROL[0] for name, _ in headers):
        headers.append(CACHE_CONTROL)
    condition = _if_none_match(scope)
    if condition is not None and matches(condition, tag):
        headers = [(name, value) for name, value in headers if name not in BODY_HEADERS]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"application/json")
    return False


def _if_none_match(scope: Scope) -> bytes | None:
    """Every ``If-None-Match`` line, joined: the header may be sent more than once."""
    found = [value for name, value in scope["headers"] if name == b"if-none-match"]
    return b", ".join(found) if found else None

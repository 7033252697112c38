"""``Idempotency-Key`` on every POST that creates something.

The first request with a key claims it in the store, runs, and its answer
(status and body) is kept; a repeat with the same body gets that answer again,
byte for byte, with ``Idempotent-Replayed: true``. A repeat that arrives while
the first is still running waits for its answer. The same key with a different
body is a 422; "the same body" is the same JSON document, whatever the order
of its keys or its whitespace (``fingerprint``). Keys are scoped per tenant
and kept ``HERALD_IDEMPOTENCY_TTL_HOURS`` (at least 24). A first request that
fails (5xx) gives its key back, so a retry runs afresh; notifications also
carry the key in a unique column, so even then a key never stores two rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import msgspec
import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StoreUnavailable
from ..models import DEFAULT_TENANT
from .errors import UNAVAILABLE, log

WAIT_FOR_FIRST = 10.0  # seconds a repeat waits for the first request's answer
ABANDONED_AFTER = 60.0  # an unanswered first request older than this has died


class IdempotencyKeys:
    def __init__(self, app: ASGIApp, state_holder: Any, ttl_hours: float) -> None:
        self.app = app
        self.state_holder = state_holder
        self.ttl = ttl_hours * 3600

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if scope["type"] == "http" and scope["method"] == "POST":
            for name, value in scope["headers"]:
                if name == b"idempotency-key":
                    key = value.decode("latin-1")
        if key is None or not 0 < len(key) <= 255:
            await self.app(scope, receive, send)  # the route validates odd keys itself
            return
        body, more = await _read_body(receive)
        if more is None:
            return  # the client went away
        digest = fingerprint(scope, body)
        store = self.state_holder.state.engine.store
        deadline = time.monotonic() + WAIT_FOR_FIRST
        while True:
            try:
                found = await store.idempotency_begin(
                    _tenant(scope), key, digest, time.time() - self.ttl
                )
            except StoreUnavailable:
                await _answer(send, 503, orjson.dumps(UNAVAILABLE), retry_after=True)
                return
            if found is None:
                break  # ours to run
            if found.request_hash != digest:
                await _answer(send, 422, _refusal(key))
                return
            if found.status_code is not None:
                await _answer(send, found.status_code, found.response or b"", replayed=True)
                return
            if found.created_at < time.time() - ABANDONED_AFTER:
                # Its first request died without an answer: let this one run.
                await store.idempotency_abandon(_tenant(scope), key)
                continue
            if time.monotonic() > deadline:
                await _answer(send, 409, _busy(key))
                return
            await asyncio.sleep(0.02)
        await self._first(scope, body, key, send, store)

    async def _first(self, scope: Scope, body: bytes, key: str, send: Send, store: Any) -> None:
        status = 500
        chunks: list[bytes] = []
        delivered = False

        async def replay_body() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            try:
                if status >= 500:
                    await store.idempotency_abandon(_tenant(scope), key)
                else:
                    await store.idempotency_finish(_tenant(scope), key, status, b"".join(chunks))
            except StoreUnavailable:
                # The key stays claimed until it expires; the unique idempotency
                # column still keeps a retry from storing a second notification.
                log.warning("idempotency_key_unrecorded", status=status)


def fingerprint(scope: Scope, body: bytes) -> str:
    """What a key was used with: the path, the query and the body's JSON document.

    The document is decoded and written again with its keys sorted, so a client
    whose JSON library orders keys differently on a retry is not refused; numbers
    keep their value (integers of any size), so two documents that Herald would
    read differently never match. A body that is not JSON counts byte for byte.
    Only requests that carry a key pay for this.
    """
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted")
    except msgspec.DecodeError:
        canonical = body
    path = scope["path"].encode()
    return hashlib.sha256(b"\n".join([path, scope.get("query_string", b""), canonical])).hexdigest()


async def _read_body(receive: Receive) -> tuple[bytes, bool | None]:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


async def _answer(
    send: Send, status: int, body: bytes, replayed: bool = False, retry_after: bool = False
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    if retry_after:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refusal(key: str) -> bytes:
    message = f"Idempotency-Key {key!r} was already used with a different request body"
    field = {"field": "header.idempotency-key", "message": "reused with a different body"}
    return orjson.dumps({"success": False, "message": message, "errors": [field]})


def _busy(key: str) -> bytes:
    message = f"A request with Idempotency-Key {key!r} is still being answered; retry shortly"
    return orjson.dumps({"success": False, "message": message, "errors": []})


def _tenant(scope: Scope) -> str:
    """The caller's tenant: keys are scoped per tenant, as everything else is."""
    caller = scope.get("state", {}).get("principal")
    return caller.tenant_id if caller is not None else DEFAULT_TENANT

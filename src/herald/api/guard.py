"""The door every request passes first: host, credential, budget, and the headers of every answer.

One pure ASGI layer in front of both doors (the ingest fast path and the
framework's routes), so they cannot differ in what they let through:

1. ``Host`` must be one Herald answers to (``HERALD_ALLOWED_HOSTS``), or 400:
   DNS rebinding cannot reach a loopback-bound Herald through a browser.
2. CORS, when ``HERALD_CORS_ORIGINS`` names origins: Starlette's middleware
   answers preflights and marks allowed answers; off by default.
3. A credential, unless the route is public (``authz.PUBLIC_ROUTES``): an API
   key as ``Authorization: Bearer`` or ``X-API-Key`` on any route, or a
   dashboard session cookie on the dashboard's pages and the API docs (never
   on the JSON API, where an ambient cookie would invite cross-site requests).
   None or a wrong one: 401 with ``WWW-Authenticate: Bearer`` (the dashboard
   redirects a browser to its login page instead).
4. The key's request budget (``credentials.Budgets``), or 429 with
   ``Retry-After`` and the IETF draft's ``RateLimit-Policy``/``RateLimit``;
   callers without a valid credential spend a budget per client address.
5. A body sent to the JSON API (POST, PUT, PATCH under ``/api/``) must say it
   is JSON (``application/json`` or ``application/<x>+json``), or 415; a
   request with neither body nor Content-Type passes (``curl -X POST``), and so
   do the receipt routes, which take a provider's own body (``PROVIDER_BODIES``),
   and the verification page's form (``FORM_ROUTES``). Size
   is judged before type: an oversized body is a 413 whatever it claims to be,
   as it is on both doors.
6. ``HEAD`` is answered as ``GET`` is, without the body (``head.py``), on
   every route that serves ``GET``.
7. Every answer gets ``nosniff``, a referrer policy and anti-framing headers;
   JSON above 1 KiB is gzip-compressed for clients that accept it (an ETag on
   a compressed answer is made weak: a strong one names one byte sequence).

Written as one class rather than a stack of middleware because it sits on the
ingest hot path: each extra layer is a few microseconds on every request.
"""

from __future__ import annotations

import math
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote

import orjson
import structlog
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access import Principal, check_tenant, parse_rate
from ..access import Scope as Permission
from ..config import Settings
from ..dashboard.sessions import COOKIE
from ..errors import StoreUnavailable
from ..models import DEFAULT_TENANT
from .authz import FORM_ROUTES, PROVIDER_BODIES, is_public
from .errors import UNAVAILABLE, too_large_body
from .head import as_get
from .headers import Header, secured, tail
from .ingest import PATH as INGEST
from .ingest import IngestFastPath

log = structlog.get_logger("herald.api")

TENANT_HEADER = b"x-herald-tenant"
DASHBOARD = "/dashboard"
LOGIN = "/dashboard/login"
#: Routes a dashboard session may call besides the dashboard's own pages.
SESSION_PATHS = ("/docs", "/redoc", "/openapi.json")
#: Methods whose body the JSON API reads, and the media type it must have.
WRITES = frozenset({"POST", "PUT", "PATCH"})
JSON = b"application/json"
MAX_HOSTS_SEEN = 64
#: The caller when HERALD_AUTH=off (local experiments only, loopback only).
NOBODY = Principal(DEFAULT_TENANT, frozenset({Permission.ADMIN}), "anonymous")

Refusal = tuple[int, str, list[tuple[bytes, bytes]]]


def _body(message: str, errors: list[dict[str, str]] | None = None) -> bytes:
    return orjson.dumps({"success": False, "message": message, "errors": errors or []})


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings, state_holder: Any) -> None:
        self.app = app
        self.state_holder = state_holder
        self.auth = settings.auth == "on"
        self.hosts = settings.hosts()
        self.any_host = "*" in self.hosts
        #: Host headers already found allowed, as sent (a few: name and port); parsing
        #: one was 1.5 us a request. Bounded: ports make endless allowed spellings.
        self.hosts_seen: set[bytes] = set()
        identity = (b"x-herald-instance", settings.instance.encode())
        #: What each answer gets added (``headers.tail``), without and with Vary: Origin.
        self.tails = (tail(identity, False), tail(identity, True))
        #: The ingest fast path, when it is what the guard guards: called with the raw
        #: ``send`` and the headers to add, it builds its answer's head whole.
        self.fast = app if isinstance(app, IngestFastPath) else None
        self.max_bytes = settings.max_body_bytes
        self.anonymous_rate = parse_rate(settings.anonymous_rate_limit)
        # Level 1, not Starlette's 9: a bulk answer (116 KB) took 0.43 ms and 17.4 KB
        # so, and 3.4 ms and 15.7 KB at 9, a sixth of bulk ingest's CPU (measured).
        self.gzip = GZipMiddleware(app, minimum_size=1024, compresslevel=1)
        self.cors: ASGIApp | None = None
        if settings.cors_origins:
            self.cors = CORSMiddleware(
                self._protected, allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key",
                               "X-Herald-Tenant"],
                expose_headers=["Retry-After", "RateLimit", "RateLimit-Policy", "ETag",
                                "X-Herald-Instance"],
                max_age=600,
            )  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            scope, send = as_get(scope, send)
        # One look at the headers for all that follows (a repeated header's last value
        # counts, as it did in the loops this replaces, one here and one per layer).
        headers = dict(scope["headers"])
        host = headers.get(b"host")
        origin = headers.get(b"origin")
        # No Host at all is an HTTP/1.0 client such as a health checker: browsers always
        # send one, so its absence cannot be a DNS-rebinding page.
        foreign = False
        if host is not None and not self.any_host and host not in self.hosts_seen:
            foreign = _hostname(host) not in self.hosts
            if not foreign and len(self.hosts_seen) < MAX_HOSTS_SEEN:
                self.hosts_seen.add(host)
        # With CORS on every answer varies by Origin; Starlette's middleware says so on
        # those it sees, this on the rest (no Origin, or refused before it).
        added = self.tails[self.cors is not None and (origin is None or foreign)]
        if foreign:
            shown = (host or b"").decode("latin-1")[:100]
            await _answer(secured(send, added), 400,
                          f"Host {shown!r} is not one this server answers to.")  # fmt: skip
            return
        if origin is not None and self.cors is not None:
            await self.cors(scope, receive, secured(send, added))
        else:
            await self._admit(scope, receive, send, headers, added)

    async def _protected(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Behind the CORS middleware, whose ``send`` is already ``secured``."""
        await self._admit(scope, receive, send, dict(scope["headers"]), None)

    async def _admit(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes],
                     added: tuple[Header, ...] | None) -> None:  # fmt: skip
        """Credential, budget and media type; then the app. ``added``: the headers every
        answer still needs (None when ``send`` adds them already)."""
        method, path = scope["method"], scope["path"]
        if not is_public(method, path):
            try:
                # The usual case decided without awaiting: a known key with budget left.
                if not self._known(scope, headers):
                    refusal = await self._authenticate(scope, headers)
                    if refusal is not None:
                        await self._refuse(scope, _wrapped(send, added), refusal)
                        return
            except StoreUnavailable as exc:
                log.warning("store_unavailable", path=path, error=str(exc))
                await _raw(
                    _wrapped(send, added),
                    503,
                    orjson.dumps(UNAVAILABLE),
                    [(b"content-type", b"application/json"), (b"retry-after", b"1")],
                )
                return
        kind = headers.get(b"content-type")
        length = headers.get(b"content-length")
        if (
            kind != JSON
            and (kind is not None or b"transfer-encoding" in headers
                 or (length is not None and length.strip(b"0")))
            and method in WRITES
            and path.startswith("/api/")
            and not path.startswith(PROVIDER_BODIES)
            and path not in FORM_ROUTES
            and not _is_json(kind)
        ):  # fmt: skip
            await self._not_json(receive, _wrapped(send, added), kind, length)
        elif b"gzip" in headers.get(b"accept-encoding", b""):
            send = _wrapped(send, added)
            await self.gzip(scope, receive, _weakened(send) if method == "GET" else send)
        elif self.fast is not None and method == "POST" and path == INGEST:
            await self.fast.serve(scope, receive, send, added)
        else:
            await self.app(scope, receive, _wrapped(send, added))

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal) -> None:
        status, message, headers = refusal
        if status == 401 and _is_page(scope["path"]) and scope["method"] in ("GET", "HEAD"):
            target = LOGIN + "?next=" + quote(_path_and_query(scope), safe="/")
            await _raw(send, 303, b"", [(b"location", target.encode())])
            return
        await _answer(send, status, message, headers)

    async def _not_json(self, receive: Receive, send: Send, kind: bytes | None,
                        length: bytes | None) -> None:  # fmt: skip
        """415 for a body that is not JSON; 413 first if it is too large for any type."""
        large = length is not None and (not length.isdigit() or int(length) > self.max_bytes)
        if length is None:  # chunked: only reading it tells its size
            size, more = 0, True
            while more and not large:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                size += len(message.get("body", b""))
                large = size > self.max_bytes
                more = message.get("more_body", False)
        if large:
            body = orjson.dumps(too_large_body(self.max_bytes))
            await _raw(send, 413, body, [(b"content-type", b"application/json")])
            return
        shown = "is missing" if kind is None else (
            f"{kind.decode('latin-1')[:100]!r} is not application/json or application/*+json"
        )  # fmt: skip
        await _answer(send, 415, "The request body must be JSON (Content-Type: application/json).",
                      errors=[{"field": "headers.content-type", "message": shown}])  # fmt: skip

    def _known(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        """Admit the usual caller without an await: a key found in the cache with budget
        left in this process (or anyone, with HERALD_AUTH=off), acting in its own tenant.

        False leaves the decision to ``_authenticate``, having spent nothing. With
        this, the fast path's answer sent unwrapped and the host cache, the ASGI
        stack's CPU per stored-key ingest request fell from 53 to 40 us
        (in-process, 30,000 requests, best of three).
        """
        if TENANT_HEADER in headers:
            return False
        caller: Principal | None = NOBODY
        if self.auth:
            presented = _presented(headers)
            secret = presented.strip().decode("latin-1") if presented is not None else None
            if not secret:
                return False
            engine = self.state_holder.state
            caller = engine.keys.cached(secret)
            if caller is None:
                return False
            rate = caller.rate
            spends = caller.key_id is not None and rate is not None
            if spends and not engine.budgets.take(f"key:{caller.key_id}", rate):
                return False
        scope.setdefault("state", {})["principal"] = caller
        return True

    async def _authenticate(self, scope: Scope, headers: dict[bytes, bytes]) -> Refusal | None:
        """Put the caller in ``scope["state"]``; or say why not.

        The key sent is the Bearer token, else X-API-Key; the tenant acted for,
        X-Herald-Tenant.
        """
        presented = _presented(headers)
        cookie = headers.get(b"cookie")
        acting = headers.get(TENANT_HEADER)
        secret = presented.strip().decode("latin-1") if presented is not None else None
        tenant = acting.decode("latin-1") if acting is not None else None
        engine = self.state_holder.state
        caller: Principal | None = None
        csrf = None
        if not self.auth:
            caller = NOBODY
        elif secret:
            caller = await engine.keys.principal(secret)
        elif cookie is not None and (_is_page(scope["path"]) or scope["path"] in SESSION_PATHS):
            session = _cookie(cookie)
            found = await engine.sessions.resolve(session) if session else None
            if found is not None:
                caller, csrf = found
        if caller is None:
            wait = await engine.budgets.spend(f"anon:{_client(scope)}", self.anonymous_rate)
            if wait:
                return _too_many(wait, self.anonymous_rate.count, self.anonymous_rate.period)
            what = (
                "The API key is unknown, revoked or expired."
                if secret
                else (
                    "A credential is required: send an API key as 'Authorization: Bearer <key>' "
                    "or 'X-API-Key: <key>'."
                )
            )
            return 401, what, [(b"www-authenticate", b'Bearer realm="herald"')]
        if tenant is not None and tenant != caller.tenant_id:
            if not caller.allows(Permission.ADMIN):
                return 403, "X-Herald-Tenant needs a credential with the 'admin' scope.", []
            try:
                check_tenant(tenant)
            except ValueError as exc:
                return 400, f"X-Herald-Tenant: {exc}.", []
            caller = caller.acting_for(tenant)
        if caller.key_id is not None and caller.rate is not None:
            wait = await engine.budgets.spend(f"key:{caller.key_id}", caller.rate)
            if wait:
                return _too_many(wait, caller.rate.count, caller.rate.period)
        state = scope.setdefault("state", {})
        state["principal"] = caller
        if csrf is not None:
            state["csrf"] = csrf
        return None


def _too_many(wait: float, limit: int, period: float) -> Refusal:
    seconds = max(1, math.ceil(wait))
    return (
        429,
        f"Too many requests; retry in {seconds} s.",
        [
            (b"retry-after", str(seconds).encode()),
            (b"ratelimit-policy", f'"default";q={limit};w={period:g}'.encode()),
            (b"ratelimit", f'"default";r=0;t={seconds}'.encode()),
        ],
    )


def _wrapped(send: Send, added: tuple[Header, ...] | None) -> Send:
    return send if added is None else secured(send, added)


def _presented(headers: dict[bytes, bytes]) -> bytes | None:
    """The key sent: the Bearer token (Authorization wins when a client sends both, as a
    generated client may), else X-API-Key."""
    authorization = headers.get(b"authorization")
    if authorization is not None:
        scheme, _, rest = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and rest:
            return rest
    return headers.get(b"x-api-key")


def _weakened(send: Send) -> Send:
    """Make a compressed answer's ETag weak (RFC 9110 8.8.3.3): ``"abc"`` → ``W/"abc"``."""

    async def weakened(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            if any(name == b"content-encoding" for name, _ in headers):
                message["headers"] = [
                    (name, b"W/" + value if name == b"etag" and value[:1] == b'"' else value)
                    for name, value in headers
                ]
        await send(message)

    return weakened


def _is_json(kind: bytes | None) -> bool:
    """``application/json`` or ``application/<x>+json``, any parameters, any case."""
    if kind is None:
        return False
    media = kind.partition(b";")[0].strip().lower()
    return media == JSON or (
        media.startswith(b"application/")
        and media.endswith(b"+json")
        and len(media) > len(b"application/+json")
    )


def _hostname(host: bytes | None) -> str | None:
    """The name part of a Host header, lowercased: ``[::1]:8000`` → ``[::1]``."""
    if not host:
        return None
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else None
    return text.rpartition(":")[0] if ":" in text else text


def _is_page(path: str) -> bool:
    return path == DASHBOARD or path.startswith(DASHBOARD + "/")


def _cookie(raw: bytes) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # a malformed Cookie header is no session
        return None
    morsel = jar.get(COOKIE)
    return str(morsel.value) if morsel else None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _path_and_query(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    path: str = scope["path"]
    return path + (f"?{query}" if query else "")


async def _answer(send: Send, status: int, message: str,
                  headers: list[tuple[bytes, bytes]] | None = None,
                  errors: list[dict[str, str]] | None = None) -> None:  # fmt: skip
    await _raw(send, status, _body(message, errors), [(b"content-type", b"application/json"),
                                                        *(headers or [])])  # fmt: skip


async def _raw(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

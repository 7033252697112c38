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
5. Every answer gets ``nosniff``, a referrer policy and anti-framing headers;
   JSON above 1 KiB is gzip-compressed for clients that accept it.

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

from ..access import Principal, parse_rate
from ..access import Scope as Permission
from ..config import Settings
from ..errors import StoreUnavailable
from ..models import DEFAULT_TENANT
from .authz import is_public
from .errors import UNAVAILABLE

log = structlog.get_logger("herald.api")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
FRAME_POLICY = (b"content-security-policy", b"frame-ancestors 'none'")
TENANT_HEADER = b"x-herald-tenant"
DASHBOARD = "/dashboard"
LOGIN = "/dashboard/login"
#: Routes a dashboard session may call besides the dashboard's own pages.
SESSION_PATHS = ("/docs", "/openapi.json")
#: The caller when HERALD_AUTH=off (local experiments only, loopback only).
NOBODY = Principal(DEFAULT_TENANT, frozenset({Permission.ADMIN}), "anonymous")

Refusal = tuple[int, str, list[tuple[bytes, bytes]]]


def _body(message: str) -> bytes:
    return orjson.dumps({"success": False, "message": message, "errors": []})


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings, state_holder: Any) -> None:
        self.app = app
        self.state_holder = state_holder
        self.auth = settings.auth == "on"
        self.hosts = settings.hosts()
        self.any_host = "*" in self.hosts
        self.identity = (b"x-herald-instance", settings.instance.encode())
        self.anonymous_rate = parse_rate(settings.anonymous_rate_limit)
        self.gzip = GZipMiddleware(app, minimum_size=1024)
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
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
        send = _secured(send, self.identity)
        if not self.any_host and _hostname(host) not in self.hosts:
            shown = (host or b"").decode("latin-1")[:100]
            await _answer(send, 400, f"Host {shown!r} is not one this server answers to.")
            return
        if origin is not None and self.cors is not None:
            await self.cors(scope, receive, send)
        else:
            await self._protected(scope, receive, send)

    async def _protected(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        if not is_public(method, path):
            try:
                refusal = await self._authenticate(scope)
            except StoreUnavailable as exc:
                log.warning("store_unavailable", path=path, error=str(exc))
                await _raw(
                    send,
                    503,
                    orjson.dumps(UNAVAILABLE),
                    [(b"content-type", b"application/json"), (b"retry-after", b"1")],
                )
                return
            if refusal is not None:
                status, message, headers = refusal
                if status == 401 and _is_page(path) and method in ("GET", "HEAD"):
                    target = LOGIN + "?next=" + quote(_path_and_query(scope), safe="/")
                    await _raw(send, 303, b"", [(b"location", target.encode())])
                    return
                await _answer(send, status, message, headers)
                return
        for name, value in scope["headers"]:
            if name == b"accept-encoding":
                if b"gzip" in value:
                    await self.gzip(scope, receive, send)
                    return
                break
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Refusal | None:
        """Put the caller in ``scope["state"]``; or say why not."""
        secret = cookie = tenant = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                kind, _, rest = value.partition(b" ")
                if kind.lower() == b"bearer":
                    secret = rest.strip().decode("latin-1")
            elif name == b"x-api-key":
                secret = value.strip().decode("latin-1")
            elif name == b"cookie":
                cookie = value
            elif name == TENANT_HEADER:
                tenant = value.decode("latin-1")
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
            if not (0 < len(tenant) <= 100):
                return 400, "X-Herald-Tenant must be 1 to 100 characters.", []
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


def _secured(send: Send, identity: tuple[bytes, bytes]) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [h for h in SECURITY_HEADERS if h[0] not in present]
            if FRAME_POLICY[0] not in present:
                headers.append(FRAME_POLICY)
            if identity[0] not in present:
                headers.append(identity)
            message["headers"] = headers
        await send(message)

    return secured


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
    from ..dashboard.sessions import COOKIE

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
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:  # fmt: skip
    await _raw(send, status, _body(message), [(b"content-type", b"application/json"),
                                                *(headers or [])])  # fmt: skip


async def _raw(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

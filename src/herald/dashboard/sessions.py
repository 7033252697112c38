"""Dashboard sessions: a random token in a signed cookie, its state kept in the store.

The cookie carries ``token.signature``: the HMAC (with a secret every process
shares through the store) lets a forged or tampered cookie be refused without
a query, and the server-side row lets logout, a disabled account or a new
password end a session at once, in every process. A session ends after
``HERALD_SESSION_IDLE_MINUTES`` without a request and
``HERALD_SESSION_MAX_HOURS`` after login, whichever comes first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from ..access import Principal, User
from ..config import Settings
from ..models import DEFAULT_TENANT
from ..store import Store

COOKIE = "herald_session"
#: The login form's own CSRF cookie (there is no session to hold a token yet).
LOGIN_COOKIE = "herald_login"
#: ``seen_at`` is written at most this often per session.
SEEN_EVERY = 60.0
MAX_COOKIE = 200


class Sessions:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.idle = settings.session_idle_minutes * 60
        self.lifetime = settings.session_max_hours * 3600
        self._key: bytes | None = None

    async def _signing_key(self) -> bytes:
        if self._key is None:
            self._key = (await self.store.access.server_secret("session-signing")).encode()
        return self._key

    async def _sign(self, token: str) -> str:
        mac = hmac.new(await self._signing_key(), token.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    async def open(self, user: User) -> tuple[str, str]:
        """Log ``user`` in: the cookie value and the session's CSRF token."""
        token, csrf = await self.store.access.open_session(user)
        await self.store.access.logged_in(user.id)
        return f"{token}.{await self._sign(token)}", csrf

    async def _token(self, cookie: str) -> str | None:
        if len(cookie) > MAX_COOKIE or "." not in cookie:
            return None
        token, _, signature = cookie.partition(".")
        if not hmac.compare_digest(signature, await self._sign(token)):
            return None
        return token

    async def resolve(self, cookie: str) -> tuple[Principal, str] | None:
        """The signed-in user as a caller, and the session's CSRF token; None if it ended."""
        token = await self._token(cookie)
        if token is None:
            return None
        found = await self.store.access.session(token)
        if found is None:
            return None
        user, csrf, created, seen = found
        now = time.time()
        if user.disabled or now - created > self.lifetime or now - seen > self.idle:
            await self.store.access.close_session(token)
            return None
        if now - seen > SEEN_EVERY:
            await self.store.access.session_seen(token, now)
        scopes = user.role.scopes_in(user.tenant_id, DEFAULT_TENANT)
        return Principal(user.tenant_id, scopes, user.email), csrf

    async def login_challenge(self, nonce: str | None = None) -> tuple[str, str]:
        """A login form's token pair: a nonce for a cookie, and the token the form echoes.

        Double submit, signed: the token is the nonce's HMAC, so a site that
        manages to plant a cookie still cannot make up the matching form field.
        A well-formed ``nonce`` from an earlier visit is kept, so two open login
        tabs both work.
        """
        if nonce is None or not (20 <= len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
            nonce = secrets.token_hex(16)
        return nonce, await self._sign("login:" + nonce)

    async def login_answered(self, nonce: str | None, token: str) -> bool:
        """Whether a posted login form's token matches the nonce its cookie carries."""
        if not nonce or len(nonce) > 64 or len(token) > 100:
            return False
        expected = await self._sign("login:" + nonce)
        return hmac.compare_digest(token.encode(), expected.encode())

    async def close(self, cookie: str) -> None:
        token = await self._token(cookie)
        if token is not None:
            await self.store.access.close_session(token)

"""The access port: API keys, dashboard users, sessions, login lockouts, server secrets.

Its rules live here once; each store supplies only a ``Runner`` that executes
the named statements of ``sql/access.sql`` (portable SQL, written once for
both dialects). Usage::

    access = Access(runner)
    secret, key = await access.create_key("acme", {Scope.SEND}, name="checkout")
    assert (await access.key_by_secret(secret)) == key
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, Protocol

from ..access import (
    ApiKey,
    Role,
    Scope,
    User,
    key_hash,
    key_prefix,
    new_key,
    parse_scopes,
    scopes_text,
)
from ..errors import StoreError
from ..models import new_id
from . import sql

Row = Sequence[Any]


class Runner(Protocol):
    """Runs one named statement of ``access.sql``."""

    async def rows(self, name: str, *args: Any) -> list[Row]:
        """A read: every row."""

    async def write(self, name: str, *args: Any) -> list[Row]:
        """A write, committed before it returns: the rows it RETURNs (or none)."""


def statements(dialect: str) -> dict[str, str]:
    """``access.sql`` for a dialect: SQLite reads ``$1`` as ``?1`` and has no casts."""
    text = resources.files(sql.__name__).joinpath("access.sql").read_text()
    named = sql.parse(text)
    if dialect == "sqlite":
        return {k: re.sub(r"\$(\d+)", r"?\1", re.sub(r"::\w+", "", v)) for k, v in named.items()}
    return named


class UserExists(StoreError):
    pass


#: Failed logins that lock an account or an address, and for how long.
LOCK_AFTER = 5
LOCK_SECONDS = 15 * 60


class Access:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    # -- API keys --------------------------------------------------------------

    async def create_key(
        self, tenant_id: str, scopes: Iterable[Scope], name: str = "",
        expires_at: float | None = None, rate_limit: str | None = None,
    ) -> tuple[str, ApiKey]:  # fmt: skip
        """A new key: the secret (shown once, never stored) and its record."""
        secret = new_key()
        now = time.time()
        key = ApiKey(
            id=new_id(now), tenant_id=tenant_id, name=name or "key", prefix=key_prefix(secret),
            scopes=frozenset(scopes), rate_limit=rate_limit, created_at=now,
            expires_at=expires_at, last_used_at=None, revoked_at=None,
        )  # fmt: skip
        await self._run.write(
            "key_insert", key.id, tenant_id, key.name, key.prefix, key_hash(secret),
            scopes_text(key.scopes), rate_limit, now, expires_at,
        )  # fmt: skip
        return secret, key

    async def key_by_secret(self, secret: str) -> ApiKey | None:
        return await self.key_by_hash(key_hash(secret))

    async def key_by_hash(self, digest: str) -> ApiKey | None:
        rows = await self._run.rows("key_by_hash", digest)
        return _key(rows[0]) if rows else None

    async def keys(self, tenant_id: str | None, revoked: bool = False) -> list[ApiKey]:
        """Keys of one tenant (or every tenant's for None), oldest first."""
        return [_key(r) for r in await self._run.rows("keys", tenant_id, revoked)]

    async def revoke_key(self, id_or_prefix: str, tenant_id: str | None) -> list[str]:
        """Revoke by id or visible prefix, within ``tenant_id`` unless None; the ids revoked."""
        rows = await self._run.write("key_revoke", id_or_prefix, tenant_id, time.time())
        return [r[0] for r in rows]

    async def touch_key(self, key_id: str, at: float) -> None:
        await self._run.write("key_touch", key_id, at)

    async def usable_keys(self) -> int:
        """Keys not revoked (expired ones included): none at all means a first start."""
        rows = await self._run.rows("keys_usable")
        return int(rows[0][0])

    # -- dashboard users ---------------------------------------------------------

    async def create_user(self, tenant_id: str, email: str, role: Role, password_hash: str) -> User:
        email = email.strip().lower()
        if await self.user(email) is not None:
            raise UserExists(f"a user {email!r} exists already")
        now = time.time()
        user = User(new_id(now), tenant_id, email, role, password_hash, False, now, None)
        await self._run.write("user_insert", user.id, tenant_id, email, role.value,
                              password_hash, now)  # fmt: skip
        return user

    async def user(self, email: str) -> User | None:
        rows = await self._run.rows("user_by_email", email.strip().lower())
        return _user(rows[0]) if rows else None

    async def users(self, tenant_id: str | None = None) -> list[User]:
        return [_user(r) for r in await self._run.rows("users", tenant_id)]

    async def set_disabled(self, email: str, disabled: bool) -> bool:
        """Disable (ending every session) or enable a user; False if there is none."""
        email = email.strip().lower()
        done = await self._run.write("user_disable", email, disabled)
        if done and disabled:
            await self._run.write("sessions_of_user_delete", email)
        return bool(done)

    async def set_password(self, email: str, password_hash: str) -> bool:
        """A new password ends every session of the user."""
        email = email.strip().lower()
        done = await self._run.write("user_password", email, password_hash)
        if done:
            await self._run.write("sessions_of_user_delete", email)
        return bool(done)

    async def logged_in(self, user_id: str) -> None:
        await self._run.write("user_logged_in", user_id, time.time())

    # -- sessions ------------------------------------------------------------------

    async def open_session(self, user: User) -> tuple[str, str]:
        """A new session: its token (the cookie carries it) and its CSRF token."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        await self._run.write("session_insert", _digest(token), user.id, csrf, time.time())
        return token, csrf

    async def session(self, token: str) -> tuple[User, str, float, float] | None:
        """The session's user, CSRF token, creation and last-seen times."""
        rows = await self._run.rows("session_get", _digest(token))
        if not rows:
            return None
        csrf, created, seen, *user = rows[0]
        return _user(user), csrf, created, seen

    async def session_seen(self, token: str, at: float) -> None:
        await self._run.write("session_seen", _digest(token), at)

    async def close_session(self, token: str) -> None:
        await self._run.write("session_delete", _digest(token))

    async def expire_sessions(self, created_before: float, seen_before: float) -> None:
        await self._run.write("sessions_expire", created_before, seen_before)

    # -- login lockouts -----------------------------------------------------------

    async def locked_until(self, subject: str) -> float:
        rows = await self._run.rows("failure_locked_until", subject)
        return float(rows[0][0]) if rows else 0.0

    async def login_attempt(self, subject: str, now: float) -> int:
        """Count an attempt before its password is checked; its number in the window.

        Counting first makes the lock hold against parallel guesses: the sixth of
        ten attempts sent at once is number six, and is refused unchecked.
        """
        rows = await self._run.write("failure_record", subject, now, now - LOCK_SECONDS)
        return int(rows[0][0])

    async def lock(self, subject: str, until: float) -> None:
        await self._run.write("failure_lock", subject, until)

    async def login_forgive(self, subject: str) -> None:
        """Take back an attempt that succeeded (an office address's good logins never lock)."""
        await self._run.write("failure_forgive", subject)

    async def login_failed(self, subject: str, now: float) -> float | None:
        """Count a failure; the time the subject is locked until when this one locks it."""
        if await self.login_attempt(subject, now) >= LOCK_AFTER:
            until = now + LOCK_SECONDS
            await self.lock(subject, until)
            return until
        return None

    async def login_succeeded(self, subject: str) -> None:
        await self._run.write("failure_clear", subject)

    # -- retention -----------------------------------------------------------------

    async def expire(self, now: float, idle: float, lifetime: float) -> None:
        """Forget ended sessions, old login failures and request budgets of past windows."""
        await self._run.write("sessions_expire", now - lifetime, now - idle)
        await self._run.write("failures_expire", now - LOCK_SECONDS, now)
        await self._run.write("budgets_expire", now - 2 * 3600)

    # -- server secrets --------------------------------------------------------------

    async def server_secret(self, name: str) -> str:
        """A secret every process shares, made by whichever asks first."""
        await self._run.write("secret_offer", name, secrets.token_urlsafe(32))
        rows = await self._run.rows("secret_get", name)
        return str(rows[0][0])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _key(r: Row) -> ApiKey:
    return ApiKey(
        id=r[0], tenant_id=r[1], name=r[2], prefix=r[3], scopes=parse_scopes(r[4]),
        rate_limit=r[5], created_at=r[6], expires_at=r[7], last_used_at=r[8], revoked_at=r[9],
    )  # fmt: skip


def _user(r: Row) -> User:
    return User(r[0], r[1], r[2], Role(r[3]), r[4], bool(r[5]), r[6], r[7])

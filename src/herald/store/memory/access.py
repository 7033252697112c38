"""The memory store's access ``Runner``: the statements of ``sql/access.sql`` in Python.

``Access`` (``store/access.py``) holds every rule about keys, users, sessions
and lockouts; this answers each of its named statements with the same
parameters and columns, over ``Tables``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..access import Row
from .tables import Failures, Key, Session, Tables, User

Rows = list[Row]


class MemoryRunner:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    async def rows(self, name: str, *args: Any) -> Rows:
        statement: Callable[..., Rows] = getattr(self, name)
        return statement(*args)

    async def write(self, name: str, *args: Any) -> Rows:
        return await self.rows(name, *args)

    # -- API keys ----------------------------------------------------------------------

    def key_insert(self, *values: Any) -> Rows:
        key = Key(*values)
        self.t.api_keys[key.id] = key
        return []

    def key_by_hash(self, digest: str) -> Rows:
        return [_key(k) for k in self.t.api_keys.values() if k.key_hash == digest]

    def keys(self, tenant: str | None, revoked: bool) -> Rows:
        found = [k for k in self.t.api_keys.values() if tenant in (None, k.tenant_id)
                 and (revoked or k.revoked_at is None)]  # fmt: skip
        return [_key(k) for k in sorted(found, key=lambda k: (k.created_at, k.id))]

    def key_revoke(self, id_or_prefix: str, tenant: str | None, now: float) -> Rows:
        revoked: Rows = []
        for k in self.t.api_keys.values():
            if (
                id_or_prefix in (k.id, k.prefix)
                and k.revoked_at is None
                and (tenant in (None, k.tenant_id))
            ):
                k.revoked_at = now
                revoked.append((k.id,))
        return revoked

    def key_touch(self, key_id: str, at: float) -> Rows:
        if key_id in self.t.api_keys:
            self.t.api_keys[key_id].last_used_at = at
        return []

    def keys_usable(self) -> Rows:
        return [(sum(1 for k in self.t.api_keys.values() if k.revoked_at is None),)]

    # -- users -------------------------------------------------------------------------

    def user_insert(self, user_id: str, tenant: str, email: str, role: str, hashed: str,
                    now: float) -> Rows:  # fmt: skip
        self.t.users[user_id] = User(user_id, tenant, email, role, hashed, False, now)
        return []

    def user_by_email(self, email: str) -> Rows:
        return [_user(u) for u in self.t.users.values() if u.email == email]

    def users(self, tenant: str | None) -> Rows:
        found = [u for u in self.t.users.values() if tenant in (None, u.tenant_id)]
        return [_user(u) for u in sorted(found, key=lambda u: u.email)]

    def user_disable(self, email: str, disabled: bool) -> Rows:
        return self._users_set(email, disabled=disabled)

    def user_password(self, email: str, hashed: str) -> Rows:
        return self._users_set(email, password_hash=hashed)

    def user_logged_in(self, user_id: str, at: float) -> Rows:
        if user_id in self.t.users:
            self.t.users[user_id].last_login_at = at
        return []

    def _users_set(self, email: str, **changes: Any) -> Rows:
        changed: Rows = []
        for u in self.t.users.values():
            if u.email == email:
                for name, value in changes.items():
                    setattr(u, name, value)
                changed.append((u.id,))
        return changed

    # -- sessions ------------------------------------------------------------------------

    def session_insert(self, token_hash: str, user_id: str, csrf: str, now: float) -> Rows:
        self.t.sessions[token_hash] = Session(user_id, csrf, now, now)
        return []

    def session_get(self, token_hash: str) -> Rows:
        s = self.t.sessions.get(token_hash)
        user = None if s is None else self.t.users.get(s.user_id)
        if s is None or user is None:
            return []
        return [(s.csrf, s.created_at, s.seen_at, *_user(user))]

    def session_seen(self, token_hash: str, at: float) -> Rows:
        if token_hash in self.t.sessions:
            self.t.sessions[token_hash].seen_at = at
        return []

    def session_delete(self, token_hash: str) -> Rows:
        self.t.sessions.pop(token_hash, None)
        return []

    def sessions_of_user_delete(self, email: str) -> Rows:
        ids = {u.id for u in self.t.users.values() if u.email == email}
        self.t.sessions = {h: s for h, s in self.t.sessions.items() if s.user_id not in ids}
        return []

    def sessions_expire(self, created_before: float, seen_before: float) -> Rows:
        self.t.sessions = {
            h: s
            for h, s in self.t.sessions.items()
            if not (s.created_at < created_before or s.seen_at < seen_before)
        }
        return []

    # -- login lockouts -------------------------------------------------------------------

    def failure_record(self, subject: str, now: float, window_start: float) -> Rows:
        f = self.t.login_failures.get(subject)
        if f is None:
            f = self.t.login_failures[subject] = Failures(1, now, 0)
        elif f.first_at < window_start:
            f.failures, f.first_at = 1, now
        else:
            f.failures += 1
        return [(f.failures,)]

    def failure_forgive(self, subject: str) -> Rows:
        f = self.t.login_failures.get(subject)
        if f is not None and f.failures > 0:
            f.failures -= 1
        return []

    def failure_lock(self, subject: str, until: float) -> Rows:
        f = self.t.login_failures.get(subject)
        if f is not None:
            f.locked_until, f.failures = until, 0
        return []

    def failure_locked_until(self, subject: str) -> Rows:
        f = self.t.login_failures.get(subject)
        return [] if f is None else [(f.locked_until,)]

    def failure_clear(self, subject: str) -> Rows:
        self.t.login_failures.pop(subject, None)
        return []

    def failures_expire(self, first_before: float, locked_before: float) -> Rows:
        self.t.login_failures = {
            s: f
            for s, f in self.t.login_failures.items()
            if not (f.first_at < first_before and f.locked_until < locked_before)
        }
        return []

    def budgets_expire(self, before: float) -> Rows:
        """Request budgets are buckets named 'who@window'; provider buckets have no '@'."""
        self.t.buckets = {
            name: b
            for name, b in self.t.buckets.items()
            if not ("@" in name and b.updated_at < before)
        }
        return []

    # -- server secrets ---------------------------------------------------------------------

    def secret_offer(self, name: str, value: str) -> Rows:
        self.t.secrets.setdefault(name, value)
        return []

    def secret_get(self, name: str) -> Rows:
        return [(self.t.secrets[name],)] if name in self.t.secrets else []


def _key(k: Key) -> Row:
    return (k.id, k.tenant_id, k.name, k.prefix, k.scopes, k.rate_limit, k.created_at,
            k.expires_at, k.last_used_at, k.revoked_at)  # fmt: skip


def _user(u: User) -> Row:
    return (u.id, u.tenant_id, u.email, u.role, u.password_hash, u.disabled, u.created_at,
            u.last_login_at)  # fmt: skip

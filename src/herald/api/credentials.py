"""Keys and request budgets as the guard needs them: fast, and shared through the store.

``KeyRing`` answers "which key is this secret?" from memory, asking the store
again after ``HERALD_KEY_CACHE_SECONDS`` (2 s by default, 5 s at most), so a
key revoked in any process stops working everywhere within that time while
the ingest hot path pays a dictionary lookup, not a query.

``Budgets`` is the request rate limit: a token bucket per key (or per client
address for callers without a valid credential) kept in the store, so every
process on one store shares it. Each process takes tokens from the shared
bucket in small batches (a tenth of a second's worth, at most a tenth of the
burst) and spends them locally, so a fast key costs one store write per
batch instead of one per request.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import os
import time
from dataclasses import dataclass, field

import structlog

from ..access import ApiKey, Principal, Rate, Scope, key_hash, parse_rate
from ..config import Settings
from ..models import DEFAULT_TENANT
from ..store import Store

log = structlog.get_logger("herald.api")

#: Last-used times are written at most this often per key.
TOUCH_EVERY = 60.0
#: Remembered unknown secrets; past this the oldest are forgotten.
MAX_CACHED = 10_000


class KeyRing:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.ttl = settings.key_cache_seconds
        self.default_rate = parse_rate(settings.api_rate_limit)
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        self._admin_hash = key_hash(admin) if admin else None
        self._cache: dict[str, tuple[ApiKey | None, float]] = {}
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def principal(self, secret: str) -> Principal | None:
        """The caller a presented key acts as; None for an unknown, revoked or expired key.

        Raises ``StoreUnavailable`` when the store must be asked and cannot answer.
        """
        digest = key_hash(secret)
        now = time.time()
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return Principal(DEFAULT_TENANT, frozenset({Scope.ADMIN}), "admin-key",
                             rate=self.default_rate)  # fmt: skip
        cached = self._cache.get(digest)
        if cached is None or now - cached[1] > self.ttl:
            key = await self.store.access.key_by_hash(digest)
            if len(self._cache) >= MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = (key, now)
        else:
            key = cached[0]
        if key is None or not key.usable(now):
            return None
        self._touch(key, now)
        rate = parse_rate(key.rate_limit) if key.rate_limit else self.default_rate
        return Principal(key.tenant_id, key.scopes, f"key:{key.name}", key.id, rate)

    def forget(self) -> None:
        self._cache.clear()

    def _touch(self, key: ApiKey, now: float) -> None:
        if now - self._touched.get(key.id, 0.0) < TOUCH_EVERY:
            return
        self._touched[key.id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key.id, now))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_touch(self, key_id: str, now: float) -> None:
        try:
            await self.store.access.touch_key(key_id, now)
        except Exception as exc:  # last-used is informative; never fail a request for it
            log.info("key_touch_failed", key_id=key_id, error=str(exc))


@dataclass(slots=True)
class _Local:
    tokens: int = 0
    blocked_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Budgets:
    """Shared token buckets, spent locally in batches."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._local: dict[str, _Local] = {}

    async def spend(self, bucket: str, rate: Rate) -> float:
        """Take one request from ``bucket``: 0.0 when allowed, else seconds to wait."""
        local = self._local.get(bucket)
        if local is None:
            if len(self._local) >= MAX_CACHED:
                self._local.pop(next(iter(self._local)))
            local = self._local[bucket] = _Local()
        if local.tokens > 0:
            local.tokens -= 1
            return 0.0
        now = time.time()
        if local.blocked_until > now:
            return local.blocked_until - now
        async with local.lock:
            if local.tokens > 0:
                local.tokens -= 1
                return 0.0
            batch = max(1, min(1000, rate.count // 10, math.ceil(rate.per_second / 10)))
            granted, wait = await self.store.take_tokens(
                bucket, rate.per_second, float(rate.count), batch
            )
            if granted:
                local.tokens = granted - 1
                return 0.0
            wait = max(wait, 0.001)
            local.blocked_until = time.time() + wait
            return wait


async def first_start(store: Store, settings: Settings) -> None:
    """Make sure someone can get in: an ``admin`` key in a file when the store has none.

    Skipped when ``HERALD_ADMIN_KEY`` provides one, and with ``HERALD_AUTH=off``
    (which says so at every start). The key itself is never logged.
    """
    if settings.auth == "off":
        detail = "HERALD_AUTH=off: every caller is an admin; for local use only"
        log.warning("auth_off", host=settings.host, detail=detail)
        return
    if settings.admin_key is not None or await store.access.usable_keys() > 0:
        return
    access = store.access
    secret, key = await access.create_key(DEFAULT_TENANT, {Scope.ADMIN}, name="first-admin")
    path = await asyncio.to_thread(_write_secret, settings.admin_key_file, secret)
    log.warning("admin_key_created", path=path, prefix=key.prefix, tenant=DEFAULT_TENANT)


def _write_secret(path: str, secret: str) -> str:
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    os.chmod(path, 0o600)  # an existing file keeps its mode through O_CREAT
    return path

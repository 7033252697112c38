"""Keys and request budgets as the guard needs them: fast, and shared through the store.

``KeyRing`` answers "which key is this secret?" from memory, asking the store
again after ``HERALD_KEY_CACHE_SECONDS`` (2 s by default, 5 s at most), so a
key revoked in any process stops working everywhere within that time while
the ingest hot path pays a dictionary lookup, not a query.

``Budgets`` is the request rate limit: a fixed window per key (or per client
address for callers without a valid credential) kept in the store, so every
process on one store shares it. Each process takes requests from the shared
window in small batches (1 % of the window's allowance, at most 1,000) and
spends them locally, so a fast key costs one store write per batch instead of
one per request.
"""

from __future__ import annotations

import asyncio
import hmac
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


@dataclass(frozen=True, slots=True)
class _Known:
    """A cached answer for one secret: the key (None: unknown) and its caller, built once."""

    key: ApiKey | None
    caller: Principal | None
    fetched: float


class KeyRing:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.ttl = settings.key_cache_seconds
        self.default_rate = parse_rate(settings.api_rate_limit)
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        self._admin_hash = key_hash(admin) if admin else None
        self._admin = Principal(DEFAULT_TENANT, frozenset({Scope.ADMIN}), "admin-key",
                                rate=self.default_rate, prefix="HERALD_ADMIN_KEY")  # fmt: skip
        self._cache: dict[str, _Known] = {}
        self._fetching: dict[str, asyncio.Future[_Known]] = {}
        self._touched: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    def cached(self, secret: str) -> Principal | None:
        """The caller a presented key acts as, when memory alone can say so; else None.

        The guard's path for nearly every request: a SHA-256 and a dictionary
        lookup, no await. None is no verdict (an unknown or unusable key, an
        entry older than the cache's time, a last-used time due to be written):
        ``principal`` then decides.
        """
        digest = key_hash(secret)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return self._admin
        known = self._cache.get(digest)
        now = time.time()
        if known is None or known.key is None or now - known.fetched > self.ttl:
            return None
        key = known.key
        if not key.usable(now) or now - self._touched.get(key.id, 0.0) >= TOUCH_EVERY:
            return None
        return known.caller

    async def principal(self, secret: str) -> Principal | None:
        """The caller a presented key acts as; None for an unknown, revoked or expired key.

        The hot path is a SHA-256 and a dictionary lookup: the caller is built
        once per refresh. Raises ``StoreUnavailable`` when the store must be
        asked and cannot answer.
        """
        digest = key_hash(secret)
        now = time.time()
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return self._admin
        known = self._cache.get(digest)
        if known is None or now - known.fetched > self.ttl:
            known = await self._refresh(digest)
        key = known.key
        if key is None or not key.usable(now):
            return None
        if now - self._touched.get(key.id, 0.0) >= TOUCH_EVERY:
            self._touch(key.id, now)
        return known.caller

    async def _refresh(self, digest: str) -> _Known:
        """Ask the store once, however many requests wait for the same key."""
        pending = self._fetching.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Known] = asyncio.get_running_loop().create_future()
        self._fetching[digest] = future
        try:
            key = await self.store.access.key_by_hash(digest)
            caller = None
            if key is not None and key.revoked_at is None:
                rate = parse_rate(key.rate_limit) if key.rate_limit else self.default_rate
                caller = Principal(key.tenant_id, key.scopes, f"key:{key.name}", key.id, rate,
                                   key.prefix)  # fmt: skip
            known = _Known(key if caller is not None else None, caller, time.time())
            if len(self._cache) >= MAX_CACHED:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = known
            future.set_result(known)
            return known
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: a lone request needs no other reader
            raise
        finally:
            del self._fetching[digest]

    def forget(self) -> None:
        self._cache.clear()

    def _touch(self, key_id: str, now: float) -> None:
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._write_touch(key_id, now))
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
    empty: bool = False  # the shared window had nothing left at the last ask
    refill: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


#: Buckets of finished windows never refill; this small rate only keeps the store's
#: token-bucket arithmetic defined.
_NO_REFILL = 1e-9


def _batch(rate: Rate) -> int:
    """Requests taken from the shared window at once: 1 % of it, 1,000 at most, so a
    process strands no more than that, and the store sees ~100 writes per window per key."""
    return max(1, min(1000, rate.count // 100))


class Budgets:
    """Fixed windows of ``rate.count`` requests per ``rate.period``, shared through the store.

    A fixed window, as seed 004's limiter counts ("100 requests a minute": the
    101st in the minute is refused), rather than a refilling bucket that would
    let the 101st through a second later. Each window is a bucket of its own in
    the store's ``rate_buckets`` (named with the window's number), filled once
    and never refilled; retention removes old ones. A process takes a batch
    from the window and spends it locally, and fetches the next batch in the
    background when half is spent, so a busy key's requests do not queue
    behind the store write (measured: ~10 % of them did, before).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._local: dict[str, _Local] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def spend(self, bucket: str, rate: Rate) -> float:
        """Take one request from ``bucket``: 0.0 when allowed, else seconds until it may be."""
        now = time.time()
        window = int(now // rate.period)
        name = f"{bucket}@{window}"
        local = self._local.get(name)
        if local is None:
            if len(self._local) >= MAX_CACHED:
                self._local.pop(next(iter(self._local)))
            local = self._local[name] = _Local()
        batch = _batch(rate)
        if local.tokens > 0:
            self._take_local(name, local, rate, batch)
            return 0.0
        if local.blocked_until > now:
            return local.blocked_until - now
        async with local.lock:
            if local.refill is not None:
                await asyncio.shield(local.refill)
            if local.tokens > 0:
                local.tokens -= 1
                return 0.0
            granted, _ = await self.store.take_tokens(name, _NO_REFILL, float(rate.count), batch)
            if granted:
                local.tokens = granted - 1
                return 0.0
            local.empty = True
            local.blocked_until = (window + 1) * rate.period
            return max(local.blocked_until - time.time(), 0.001)

    def take(self, bucket: str, rate: Rate) -> bool:
        """Take one request from this process's share of ``bucket`` if it holds one.

        The guard's path for nearly every request, without an await. False
        takes nothing: ``spend`` then decides (and asks the store if need be).
        """
        name = f"{bucket}@{int(time.time() // rate.period)}"
        local = self._local.get(name)
        if local is None or local.tokens <= 0:
            return False
        self._take_local(name, local, rate, _batch(rate))
        return True

    def _take_local(self, name: str, local: _Local, rate: Rate, batch: int) -> None:
        """Spend a local token; fetch the next batch in the background once half is gone."""
        local.tokens -= 1
        if local.tokens <= batch // 2 and local.refill is None and not local.empty:
            local.refill = asyncio.get_running_loop().create_task(
                self._prefetch(name, local, rate, batch)
            )
            self._background.add(local.refill)
            local.refill.add_done_callback(self._background.discard)

    async def _prefetch(self, name: str, local: _Local, rate: Rate, batch: int) -> None:
        try:
            granted, _ = await self.store.take_tokens(name, _NO_REFILL, float(rate.count), batch)
            local.tokens += granted
            local.empty = granted == 0
        except Exception as exc:  # the next request that finds no tokens asks, and sees it
            log.info("budget_prefetch_failed", bucket=name, error=str(exc))
        finally:
            local.refill = None


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

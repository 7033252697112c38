"""PostgreSQL connections for the store: a pool that outlives outages, errors made typed.

Every way the database can be out of reach (connection refused, a server that
restarts, a backend killed with ``pg_terminate_backend``, a database that
refuses connections, a network that stops answering) leaves here as
``StoreUnavailable``: the API answers it with 503 and Retry-After, the worker
backs off on it. A connection that died is never handed out again: asyncpg
marks it closed when its socket goes, the pool drops it, and the next
``acquire`` connects afresh, so nothing needs a restart when the server is back.

Every connection runs with ``synchronous_commit = on`` (DESIGN 3: durable
before acknowledged), whatever the server's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson
import structlog
from asyncpg import exceptions as pgerrors

from ...errors import StoreUnavailable, Unstorable
from .. import sql

log = structlog.get_logger("herald.store.postgres")
T = TypeVar("T")
Q = sql.queries("postgres")

#: Errors that mean "the database cannot answer now", not "this request is wrong".
OUTAGE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,  # no answer within the timeout
    asyncpg.InterfaceError,  # the connection is closed or being closed
    pgerrors.PostgresConnectionError,  # class 08: the connection does not exist or failed
    pgerrors.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now
    pgerrors.InsufficientResourcesError,  # class 53: too many connections, disk full
    pgerrors.InternalClientError,  # the protocol lost its footing (a backend killed mid-COMMIT)
)
#: Values PostgreSQL cannot hold: NUL in text (22021) or in JSON (22P05), lone surrogates.
UNSTORABLE = (
    pgerrors.CharacterNotInRepertoireError,
    pgerrors.UntranslatableCharacterError,
    UnicodeEncodeError,
)
#: Errors that say a transaction lost a race and may simply run again.
CONFLICT = (pgerrors.DeadlockDetectedError, pgerrors.SerializationError)

SESSION = {"synchronous_commit": "on", "application_name": "herald", "jit": "off"}


def dsn_of(url: str) -> str:
    """The libpq URL asyncpg takes (a SQLAlchemy-style ``postgresql+asyncpg://`` works too)."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


async def _setup(conn: asyncpg.Connection) -> None:
    """JSON columns arrive as Python values and are sent from them.

    In jsonb's binary form (a version byte, 1, then the text), which COPY needs
    (``jobs.insert_many``).
    """
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
        format="binary",
    )


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release reset query: pooled connections keep no session state.

    (asyncpg still rolls back an open transaction; LISTEN runs on a connection of its own.)
    """


class Pool:
    """A pool of connections; ``transaction`` and ``connection`` translate outages."""

    def __init__(
        self,
        url: str,
        size: int,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.dsn = dsn_of(url)
        self.size = size
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self, patience: float) -> None:
        """Create the pool, retrying for ``patience`` seconds while the server is away."""
        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                self._pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.size,
                    init=_setup,
                    reset=_no_reset,
                    timeout=self.connect_timeout,
                    command_timeout=self.command_timeout,
                    statement_cache_size=256,
                    max_inactive_connection_lifetime=60.0,
                    server_settings=SESSION,
                )
                return
            except (*OUTAGE, pgerrors.PostgresError) as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
                log.warning("store_connect_retry", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (*OUTAGE, pgerrors.PostgresError):
                pool.terminate()

    async def connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool (for LISTEN)."""
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                self.dsn, timeout=self.connect_timeout, server_settings=SESSION
            )
        except (*OUTAGE, pgerrors.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise StoreUnavailable("store is not open")
        try:
            conn = await self._pool.acquire(timeout=self.connect_timeout + 5)
        except (*OUTAGE, pgerrors.PostgresError) as exc:
            # Any refusal while connecting (a database that does not accept
            # connections now, too many clients) is an outage to the caller.
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        try:
            yield conn
        except OUTAGE as exc:
            with contextlib.suppress(asyncpg.InterfaceError):  # unless the pool dropped it
                conn.terminate()  # whatever state it is in, it is not handed out again
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        except UNSTORABLE as exc:
            raise Unstorable(str(exc)) from exc
        finally:
            try:
                await self._pool.release(conn)
            except (*OUTAGE, pgerrors.PostgresError) as exc:  # the pool has dropped it
                log.info("store_connection_dropped", error=str(exc))

    async def transaction(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, single: bool = False
    ) -> T:
        """Run ``work`` in one transaction; it returns only after COMMIT.

        ``single`` says ``work`` writes with ONE statement: it then runs as its
        own implicit transaction, which saves the BEGIN and COMMIT round trips
        (asyncpg returns a statement's result only at ReadyForQuery, which the
        server sends after the implicit COMMIT, flushed to disk). Reads after
        that statement see what it committed.

        A transaction that lost a deadlock or serialization race runs again
        (it changed nothing); after three losses the store reports itself busy.
        """
        for attempt in range(3):
            try:
                async with self.connection() as conn:
                    if single:
                        return await work(conn)
                    async with conn.transaction():
                        return await work(conn)
            except CONFLICT as exc:
                log.info("store_conflict_retry", error=str(exc), attempt=attempt + 1)
                await asyncio.sleep(0.005 * (attempt + 1))
        raise StoreUnavailable("the database kept reporting conflicts; retry shortly")

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            rows: list[asyncpg.Record] = await conn.fetch(Q[query], *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(Q[query], *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(Q[query], *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self.connection() as conn:
            status: str = await conn.execute(Q[query], *args)
            return status


def affected(status: str) -> int:
    """Rows a command touched, from its status tag (``UPDATE 3``, ``DELETE 0``)."""
    return int(status.rsplit(" ", 1)[-1])

"""The PostgreSQL dialect of the shared catalog and events rules (``catalog.py``, ``eventlog.py``).

It only runs the named statements of ``store/postgres/events.sql``: a write rule
in one transaction (rolled back if the rule raises), a read on a pooled
connection. Where the other stores rely on one writer to serialise a
read-then-write (the next template version, spending a token), these
statements take an advisory or row lock, because many processes write at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from ...models import NewNotification, Notification
from .. import sql
from ..dialect import Change, Fetch, Rule, Step, drive_async
from .pool import Pool, affected

T = TypeVar("T")
S = {**sql.queries("postgres", "events.sql"), **sql.queries("postgres", "receipts.sql")}

Create = Callable[
    [asyncpg.Connection, Sequence[NewNotification], float], Awaitable[list[Notification]]
]


class PostgresDialect:
    """Runs rules on the store's pool; ``create`` is its notification insert, ``wake`` tells
    this process's idle workers that a rule stored work."""

    def __init__(self, pool: Pool, create: Create, wake: Callable[[], None]) -> None:
        self._pool = pool
        self._create = create
        self._wake = wake

    async def read(self, rule: Callable[[], Rule[T]]) -> T:
        async with self._pool.connection() as conn:
            return await drive_async(rule(), _runner(conn, self._create))

    async def write(self, rule: Callable[[], Rule[T]], wakes: bool = False) -> T:
        result = await self._pool.transaction(  # a fresh rule for each try
            lambda conn: drive_async(rule(), _runner(conn, self._create))
        )
        if wakes:
            self._wake()
        return result


def _runner(conn: asyncpg.Connection, create: Create) -> Callable[[Step], Awaitable[Any]]:
    async def run(step: Step) -> Any:
        if isinstance(step, Fetch):
            return await conn.fetch(S[step.name], *step.args)
        if isinstance(step, Change):
            return affected(await conn.execute(S[step.name], *step.args))
        return await create(conn, step.items, step.now)

    return run

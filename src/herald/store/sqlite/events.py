"""The SQLite dialect of the shared catalog and events rules (``catalog.py``, ``eventlog.py``).

It only runs the named statements of ``store/sqlite/events.sql``: writes on the
store's group-commit writer thread (one rule is one write, in its own
savepoint, so a rule that raises leaves nothing behind), reads on its reader
pool. Lists and JSON values travel as JSON text, which ``json_each`` and
``json_extract`` read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from ...models import NewNotification, Notification
from .. import sql
from ..dialect import Change, Fetch, Rule, Step, drive

T = TypeVar("T")
S = {**sql.queries("sqlite", "events.sql"), **sql.queries("sqlite", "receipts.sql")}

Work = Callable[[sqlite3.Connection], Any]
Read = Callable[[Work], Awaitable[Any]]
Write = Callable[[Work, bool], Awaitable[Any]]
Create = Callable[[sqlite3.Connection, Sequence[NewNotification], float], list[Notification]]


class SQLiteDialect:
    """Runs rules with the store's ``read`` and ``write`` plumbing and its create path."""

    def __init__(self, read: Read, write: Write, create: Create) -> None:
        self._read = read
        self._write = write
        self._create = create

    async def read(self, rule: Callable[[], Rule[T]]) -> T:
        result: T = await self._read(lambda conn: drive(rule(), self._runner(conn)))
        return result

    async def write(self, rule: Callable[[], Rule[T]], wakes: bool = False) -> T:
        result: T = await self._write(lambda conn: drive(rule(), self._runner(conn)), wakes)
        return result

    def _runner(self, conn: sqlite3.Connection) -> Callable[[Step], Any]:
        def run(step: Step) -> Any:
            if isinstance(step, Fetch):
                cursor = conn.cursor()
                cursor.row_factory = sqlite3.Row  # by position, and by name for notifications
                return cursor.execute(S[step.name], _encoded(step.args)).fetchall()
            if isinstance(step, Change):
                return conn.execute(S[step.name], _encoded(step.args)).rowcount
            return self._create(conn, step.items, step.now)

        return run


def _encoded(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Lists and dicts as the JSON text SQLite's JSON functions read."""
    return tuple(
        orjson.dumps(a).decode() if isinstance(a, list | tuple | dict) else a for a in args
    )

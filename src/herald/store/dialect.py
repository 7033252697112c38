"""Domain rules written once, run by a thin layer per database that only executes named SQL.

A rule is a generator: it yields the steps it needs (run this named
statement, store these notifications) and receives each step's answer, so
the same rule runs on SQLite's writer thread, on an asyncpg connection and
over the memory store's tables. Each dialect keeps its differences in SQL
(``store/<dialect>/events.sql``) under the same names and parameters::

    def next_version(tenant: str, name: str) -> Rule[int]:
        rows = yield Fetch("template_last_version", (tenant, name))
        return (rows[0][0] or 0) + 1

    version = await dialect.write(lambda: next_version("acme", "welcome"))

``write`` runs a rule in one transaction: if the rule raises, nothing it
wrote is kept. ``read`` runs one that only reads. Both take a function that
makes the rule, because a transaction that lost a race runs again from the
start, with a fresh rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..models import NewNotification

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Run a named statement; the answer is its rows (each indexable by position)."""

    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    """Run a named statement that writes; the answer is how many rows it changed."""

    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Insert:
    """Store notifications through the store's own create path, in the rule's transaction;
    the answer is what ``create`` answers."""

    items: Sequence[NewNotification]
    now: float


Step = Fetch | Change | Insert

#: A domain rule: yields steps, receives each one's answer, returns its result.
Rule = Generator[Step, Any, T]


class Dialect(Protocol):
    """What a store gives the shared rules: a way to run them."""

    async def read(self, rule: Callable[[], Rule[T]]) -> T:
        """Run a rule that only reads."""

    async def write(self, rule: Callable[[], Rule[T]], wakes: bool = False) -> T:
        """Run a rule in one transaction, committed before this returns.

        ``wakes`` says it makes work due (it stored notifications), so idle
        workers are woken.
        """


def drive(rule: Rule[T], run: Callable[[Step], Any]) -> T:
    """Run ``rule`` to its end, answering each step with ``run`` (a dialect's executor)."""
    answer: Any = None
    while True:
        try:
            step = rule.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result
        answer = run(step)


async def drive_async(rule: Rule[T], run: Callable[[Step], Awaitable[Any]]) -> T:
    """``drive`` for a dialect whose executor awaits the database."""
    answer: Any = None
    while True:
        try:
            step = rule.send(answer)
        except StopIteration as done:
            result: T = done.value
            return result
        answer = await run(step)

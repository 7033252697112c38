"""The store contract: every port of ``ports.py`` in one object, with its lifecycle.

One object owns all database access. Writes that arrive together share one
transaction (group commit), and a caller's ``await`` returns only after the
commit that holds its rows. Every query is scoped by tenant except the
worker's claim, sweep and completion, which serve all tenants.

Usage::

    store = open_store(settings)
    await store.open()            # connects and applies migrations
    [row] = await store.create([NewNotification(Channel.EMAIL, "a@b.c", "hi", subject="s")])
    claims = await store.claim(limit=100, lease_seconds=60)
    await store.complete([Sent(claims[0], "capture", "m-1", 3.2, time.time())])
    await store.close()

The stores: ``sqlite.py`` (the embedded default), ``postgres.py`` (scale-out)
and ``memory/`` (a test double). The catalog and events ports are written
once (``catalog.py``, ``eventlog.py``) over each store's ``Dialect``; access
once (``access.py``) over each store's ``Runner``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from ..models import NewNotification
from ..supervise import Liveness
from .access import Access
from .ports import (
    Activity,
    BreakerState,
    Catalog,
    Coordination,
    Created,
    DeadLetters,
    DlqFilter,
    Events,
    Idempotency,
    IdempotencyRecord,
    ListFilter,
    Mailbox,
    Monitoring,
    Notifications,
    Queue,
    Receipts,
    Suppressions,
    Swept,
)

__all__ = [
    "BreakerState", "Created", "DlqFilter", "IdempotencyRecord", "ListFilter", "Store", "Swept",
]  # fmt: skip


class Store(
    Queue, Notifications, DeadLetters, Idempotency, Coordination, Catalog, Events, Mailbox,
    Receipts, Suppressions, Monitoring, Activity, abc.ABC,
):  # fmt: skip
    """What every store provides. ``tests/integration/test_store_contract.py`` checks it."""

    #: API keys, dashboard users and sessions (``access.py``); each store sets it.
    access: Access

    notifies_work: bool = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` if the database cannot answer."""

    def liveness(self) -> list[Liveness]:
        """The store's own background loops (a LISTEN connection), for health."""
        return []

    async def create_many(self, items: Sequence[NewNotification]) -> list[Created]:
        """Store ``items`` as ``create`` does, answering only each one's id and status.

        The SQL stores override this with a path that builds no Notification.
        """
        return [(n.id, n.status) for n in await self.create(items)]

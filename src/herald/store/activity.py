"""What changed lately, and how much happened per minute: the dashboard's live view and charts.

Read from what the stores keep anyway, each over an index, so a poller may ask
twice a second at no cost to delivery:

- notifications created: along the primary key, since ids start with their
  creation time (``rows.id_bound``);
- claims: along the index of leased rows (a row being delivered carries when
  its attempt started, ``claimed_at``);
- history rows: along ``audit (at, tenant_id, status)``, which the per-minute
  counts of the charts read alone, without the table.

The SQL stores run the named queries of ``store/<dialect>/activity.sql``
through ``_activity``; the memory store answers the same in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..models import Status
from .ports import Change, ChangeFeed
from .rows import id_bound

#: One named query of ``activity.sql`` and its arguments.
Read = tuple[str, tuple[Any, ...]]


class ActivityRules:
    """``ports.Activity`` for the SQL stores: the rules once, the reading per store."""

    async def _activity(self, reads: Sequence[Read]) -> list[list[Sequence[Any]]]:
        """Each read's rows, in order (on one connection where the store has them)."""
        raise NotImplementedError

    async def changes(self, since: float, limit: int) -> ChangeFeed:
        created, claimed, stored, paused = await self._activity([
            ("created", (id_bound(since), limit)),
            ("claimed", (since, limit)),
            ("stored", (since, limit)),
            ("paused", ()),
        ])  # fmt: skip
        changes = [Change(f"n{i}", tenant, i, status, at) for i, tenant, status, at in created]
        changes += [Change(f"c{i}:{at}", tenant, i, Status.PROCESSING.value, at)
                    for i, tenant, at in claimed]  # fmt: skip
        changes += [Change(f"h{key}", tenant, i, status, at)
                    for key, tenant, i, status, at in stored]  # fmt: skip
        full = limit in (len(created), len(claimed), len(stored))
        return ChangeFeed(changes, full, frozenset(r[0] for r in paused))

    async def history_per_minute(
        self, tenant_id: str, since: float, statuses: Sequence[Status]
    ) -> list[tuple[int, str, int]]:
        [rows] = await self._activity([("per_minute", (tenant_id, since, [*statuses]))])
        return [(int(minute), str(status), int(count)) for minute, status, count in rows]

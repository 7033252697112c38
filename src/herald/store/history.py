"""A notification's history, read from what the stores keep (DESIGN 5).

The stores write little, and this module puts the story back together, the
same for every store:

* creating a notification writes only its row: PENDING and QUEUED (or
  SCHEDULED, when it was due later than its creation) are read from
  ``created_at`` and ``scheduled_at``;
* a claim writes only the row's ``claimed_at``: while the row is PROCESSING,
  that is its PROCESSING entry;
* the end of an attempt (sent, failed, deferred, released, stalled) is one
  stored row holding when the attempt started and which it was: it reads as
  the attempt's PROCESSING entry followed by its outcome;
* operator actions (cancel, replay) are stored rows without a start.

Rows stored before migration 007 kept every entry, creation and claims
included; their notification says so (``creation_derived`` false), and
nothing is derived for them twice.

Entry ids are the entry's place in its notification's history, counted from
1. History only grows at its end (the PROCESSING entry of a running attempt
keeps its place when the attempt's row replaces it), so an id never moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..models import AuditEntry, Status
from . import records


@dataclass(frozen=True, slots=True)
class Origin:
    """What the notification row itself tells about its history."""

    notification_id: str
    status: str
    created_at: float
    scheduled_at: float | None
    claimed_at: float | None  # the start of its latest attempt (None: never claimed since 007)
    attempts: int
    creation_derived: bool  # False: created before 007, its creation entries are stored


@dataclass(frozen=True, slots=True)
class Kept:
    """One stored history row. ``started_at`` is set on the rows that end an attempt."""

    status: str
    message: str
    at: float
    metadata: dict[str, Any]
    started_at: float | None
    attempt: int | None


def entries(origin: Origin, kept: Iterable[Kept]) -> list[AuditEntry]:
    """Every entry of the history, in the order things happened (the order rows were stored)."""
    steps: list[tuple[Status, str, float, dict[str, Any]]] = []
    if origin.creation_derived:
        scheduled = origin.scheduled_at is not None and origin.scheduled_at > origin.created_at
        first = Status.SCHEDULED if scheduled else Status.QUEUED
        for status, message in records.created(first):
            steps.append((Status(status), message, origin.created_at, {}))
    for row in kept:
        if row.started_at is not None:
            steps.append(_claimed(row.started_at, row.attempt))
        steps.append((Status(row.status), row.message, row.at, row.metadata))
    if origin.status == Status.PROCESSING and origin.claimed_at is not None:
        steps.append(_claimed(origin.claimed_at, origin.attempts))
    return [
        AuditEntry(n, origin.notification_id, status, message, at, metadata)
        for n, (status, message, at, metadata) in enumerate(steps, 1)
    ]


def _claimed(at: float, attempt: int | None) -> tuple[Status, str, float, dict[str, Any]]:
    return Status.PROCESSING, records.CLAIMED, at, {"attempt": attempt}


#: The columns of a history query, in order: the notification's (``Origin`` after its id),
#: then one stored row's (``Kept``), all NULL for a notification with none stored.
ORIGIN_WIDTH = 6


def from_rows(
    notification_id: str,
    rows: Iterable[Sequence[Any]],
    load: Callable[[Any], dict[str, Any]] | None = None,
) -> list[AuditEntry]:
    """The history from a history query's rows (none: no such notification).

    ``load`` turns a stored metadata value into a dict (SQLite keeps JSON text).
    """
    origin: Origin | None = None
    kept: list[Kept] = []
    for row in rows:
        if origin is None:
            status, created_at, scheduled_at, claimed_at, attempts, derived = row[:ORIGIN_WIDTH]
            origin = Origin(notification_id, status, created_at, scheduled_at, claimed_at,
                            attempts, bool(derived))  # fmt: skip
        status, message, at, metadata, started_at, attempt = row[ORIGIN_WIDTH:]
        if status is not None:
            meta = (load(metadata) if load else metadata) if metadata is not None else {}
            kept.append(Kept(status, message, at, meta, started_at, attempt))
    return [] if origin is None else entries(origin, kept)

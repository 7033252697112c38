"""The store's ports: small contracts by role, so a caller (and a test double) needs only one.

Every store provides every port; ``Store`` in ``base.py`` is their union with
the lifecycle (open, close, migrate, ping). A caller that needs one role can
take the port instead of the whole store::

    async def drain(queue: Queue) -> None:
        while claims := await queue.claim(limit=50, lease_seconds=60):
            await queue.complete([...])

The ports, and who uses them:

- ``Queue``: the worker's side (claim under a lease, complete, release, sweep)
  and the lanes (pause, counts, backlog).
- ``Notifications``: the API's side of the rows and their history.
- ``DeadLetters``: the DLQ, replay and deletion of final rows.
- ``Idempotency``: ``Idempotency-Key`` requests answered once.
- ``Coordination``: what every worker process shares (token buckets, provider
  pauses, breaker states, the heartbeats).
- ``Catalog``: stored templates (versioned) and event types.
- ``Events``: events, their notifications and one-time verification tokens.
- ``Mailbox``: what the capture provider kept.
- ``Receipts``: what providers report after SENT (delivered, bounced, ...).
- ``Suppressions``: recipients not to send to, and the categories of messages.
- ``Monitoring``: what ``GET /api/metrics`` reads at each scrape, over every tenant.
- ``Activity``: what changed lately, and history counted per minute (the dashboard's
  live view and charts).
- Access (API keys, users, sessions) is the ``Access`` class of ``access.py``,
  written once over a ``Runner``; a store exposes it as ``store.access``.

``tests/integration/test_store_contract.py`` checks that every store provides
every member of every port with the same parameters.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..events import EventFilter, EventPage, EventRecord, EventStats, EventType, NewEvent
from ..models import (
    DONE,
    AuditEntry,
    Channel,
    Claim,
    Gauges,
    MailboxMessage,
    NewNotification,
    Notification,
    Outcome,
    Page,
    Priority,
    QueueCounts,
    Stats,
    Status,
)
from ..receipts.base import ReceiptEvent
from ..templates import Template, TemplateDraft
from .receipts import Category, ReceiptsApplied, Suppression

#: What ``Notifications.create_many`` answers per notification: its id and first status.
Created = tuple[str, Status]
#: Seconds after which a worker not seen again is forgotten (``Coordination.worker_seen``).
WORKERS_FORGOTTEN = 86_400.0


@dataclass(frozen=True, slots=True)
class ListFilter:
    status: Status | None = None
    channel: Channel | None = None
    priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class DlqFilter:
    channel: Channel | None = None
    error: str | None = None  # a substring of the last error, any case
    since: float | None = None  # failed at or after
    until: float | None = None  # failed before


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    request_hash: str
    status_code: int | None  # None: the first request is still being answered
    response: bytes | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Change:
    """Something a live view may have to show anew: a notification created or claimed, or a
    history row stored (an attempt's end, a receipt, a cancel, a replay)."""

    key: str  # unique in the feed, so a change read twice is passed on once
    tenant_id: str
    notification_id: str
    status: str
    at: float


@dataclass(frozen=True, slots=True)
class ChangeFeed:
    changes: list[Change]
    full: bool  # a kind of change reached the limit: there may be more than these
    paused: frozenset[str]  # the paused lanes


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One process's breaker for one provider (or ``provider:destination``).

    ``instance`` is the name shown (``HERALD_INSTANCE``); ``process`` is that
    name plus a boot id, so a process restarted under the same name starts
    with none of its predecessor's rows.
    """

    instance: str
    provider: str
    state: str  # closed, open or half-open
    failures: int
    changed_at: float
    process: str


@dataclass(frozen=True, slots=True)
class Swept:
    """What a sweep did: how many leases had expired, and the channels of the rows among
    them that went to the DLQ (stalled on their last allowed attempt)."""

    expired: int
    buried: tuple[Channel, ...] = ()


@runtime_checkable
class Queue(Protocol):
    """Notifications as jobs: leased by claims, finished by outcomes (DESIGN 4, 6, 9)."""

    #: True when ``wait_for_work`` wakes on writes made by any process (PostgreSQL's
    #: LISTEN/NOTIFY), so an idle worker polls only for rows that fall due later.
    notifies_work: bool

    @abc.abstractmethod
    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        min_priority: Priority = Priority.LOW,
        queues: Sequence[str] | None = None,
    ) -> list[Claim]:
        """Lease up to ``limit`` due notifications, highest priority first, then earliest due.

        Each claimed row becomes PROCESSING with a new token; its history shows the
        claim from then on (DESIGN 5). Paused queues are skipped. ``queues`` (lane
        names: ``email``, ``retry-1``...) takes rows from those lanes only, for a
        worker that serves some lanes (``herald worker --channels``); None takes any.
        """

    @abc.abstractmethod
    async def complete(self, outcomes: Sequence[Outcome]) -> int:
        """Record delivery outcomes, each in its history; return how many applied.

        An outcome whose claim token no longer matches the row is stale and is
        ignored. A status callback asked for is stored in the same write.
        """

    @abc.abstractmethod
    async def release(self, claims: Sequence[Claim]) -> int:
        """Give back claims that were never attempted (shutdown); the attempt is not spent."""

    @abc.abstractmethod
    async def sweep(self, max_attempts: int) -> Swept:
        """Return rows whose lease expired to the queue; say how many (``Swept``).

        A row that stalled on its last allowed attempt goes to the DLQ instead,
        so a message that crashes every worker cannot loop forever.
        """

    @abc.abstractmethod
    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be due, or after ``timeout`` seconds."""

    @abc.abstractmethod
    async def backlog(self) -> int:
        """Notifications of every tenant waiting due for delivery (load shedding reads it)."""

    @abc.abstractmethod
    async def queues(self, tenant_id: str) -> list[QueueCounts]: ...

    @abc.abstractmethod
    async def set_paused(self, queue: str, paused: bool) -> None:
        """Pause or resume a lane for every tenant: claims skip a paused one."""


@runtime_checkable
class Notifications(Protocol):
    """The rows the API creates and reads, each with its history (DESIGN 1, 5)."""

    @abc.abstractmethod
    async def create(self, items: Sequence[NewNotification]) -> list[Notification]:
        """Store new notifications, each with its history started (PENDING, then QUEUED).

        An item whose idempotency key already exists for its tenant is not
        stored again: the existing row is returned in its place.
        """

    @abc.abstractmethod
    async def create_many(self, items: Sequence[NewNotification]) -> list[Created]:
        """Store ``items`` as ``create`` does, answering only each one's id and status.

        For bulk requests: building a full Notification for every row costs
        more than storing it, and their answer needs only these two values.
        """

    @abc.abstractmethod
    async def get(self, tenant_id: str, notification_id: str) -> Notification | None: ...

    @abc.abstractmethod
    async def audit(self, tenant_id: str, notification_id: str) -> list[AuditEntry]:
        """The notification's history, oldest first (empty for another tenant's)."""

    @abc.abstractmethod
    async def find(self, tenant_id: str, where: ListFilter, page: int, limit: int) -> Page:
        """Notifications, newest first."""

    @abc.abstractmethod
    async def stats(self, tenant_id: str) -> Stats: ...

    @abc.abstractmethod
    async def cancel(self, tenant_id: str, notification_id: str, actor: str | None = None) -> bool:
        """Cancel a notification not yet sent nor being sent; False if it was not cancellable.

        The audit row names ``actor`` (who cancelled it) when given.
        """

    @abc.abstractmethod
    async def clean(
        self, created_before: float, batch: int = 5000, statuses: Sequence[Status] = DONE
    ) -> int:
        """Delete every tenant's notifications in ``statuses`` created before the time, with
        their history, events' links and captured messages; returns how many went.

        Retention's: sent ones (``DONE``) after ``HERALD_CLEANUP_DAYS``, FAILED ones after
        ``HERALD_FAILED_RETENTION_DAYS``. Deleted ``batch`` at a time.
        """

    @abc.abstractmethod
    async def trim_sent(self, keep: int, batch: int = 5000) -> int:
        """Delete each tenant's sent notifications (``DONE``) but its ``keep`` newest ones
        (``HERALD_KEEP_SENT``, seed 002's ``removeOnComplete``), as ``clean`` deletes."""

    @abc.abstractmethod
    async def count_old(
        self, created_before: float, statuses: Sequence[Status] = DONE,
        tenant_id: str | None = None, queue: str | None = None,
    ) -> int:  # fmt: skip
        """How many rows ``clean`` (every tenant's) or ``clean_queue`` (a tenant's lane,
        without a limit) would delete now, deleting nothing: ``herald clean --dry-run``."""

    @abc.abstractmethod
    async def ids_starting(self, tenant_id: str, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` of the tenant's notification ids that begin with ``prefix``, in
        order: the command line shows and takes ids shortened to a unique prefix."""

    @abc.abstractmethod
    async def sensitive_notifications(
        self, tenant_id: str, notification_ids: Sequence[str]
    ) -> set[str]:
        """Which of these notifications hold a secret in their message (``metadata.sensitive``),
        so a presenter can redact a message it has without the notification row."""


@runtime_checkable
class DeadLetters(Protocol):
    """Notifications that gave up, kept for inspection and replay (DESIGN 7)."""

    @abc.abstractmethod
    async def dlq(self, tenant_id: str, where: DlqFilter, page: int, limit: int) -> Page:
        """Dead letters, most recent failure first."""

    @abc.abstractmethod
    async def replay(
        self, tenant_id: str, ids: Sequence[str] | None, where: DlqFilter | None, actor: str,
        limit: int = 10_000,
    ) -> list[str]:  # fmt: skip
        """Put dead letters back on their channel's queue with a fresh ladder.

        By ``ids``, or else by ``where`` (at most ``limit``, oldest failure
        first); each gets an audit row naming ``actor``. Returns the ids replayed.
        """

    @abc.abstractmethod
    async def delete_dead(self, tenant_id: str, notification_id: str) -> bool:
        """Delete a dead letter and its history; False if it is not in the DLQ."""

    @abc.abstractmethod
    async def clean_queue(
        self, tenant_id: str, queue: str, statuses: Sequence[Status], created_before: float,
        limit: int,
    ) -> int:  # fmt: skip
        """Delete up to ``limit`` of a tenant's notifications in lane ``queue`` whose status
        is one of ``statuses`` and that were created before the time, oldest first, as
        ``delete_final`` deletes one; returns how many went (``POST /api/queue/{name}/clean``).
        """

    @abc.abstractmethod
    async def delete_final(self, tenant_id: str, notification_id: str) -> bool:
        """Delete a SENT, FAILED or CANCELLED notification and its history; False if it is
        not one (an operator's way to remove a row nobody needs)."""


@runtime_checkable
class Idempotency(Protocol):
    """``Idempotency-Key``: a request runs once and its answer is kept for repeats."""

    @abc.abstractmethod
    async def idempotency_begin(
        self, tenant_id: str, key: str, request_hash: str, expired_before: float
    ) -> IdempotencyRecord | None:
        """Claim ``key`` for a new request, or return the record already there.

        A record created before ``expired_before`` is forgotten and the key claimed anew.
        """

    @abc.abstractmethod
    async def idempotency_finish(
        self, tenant_id: str, key: str, status_code: int, response: bytes
    ) -> None: ...

    @abc.abstractmethod
    async def idempotency_abandon(self, tenant_id: str, key: str) -> None:
        """Forget an unfinished claim (the request failed), so a retry may run."""

    @abc.abstractmethod
    async def idempotency_expire(self, created_before: float) -> int: ...


@runtime_checkable
class Coordination(Protocol):
    """What every worker process shares, so limits and breakers hold across hosts."""

    @abc.abstractmethod
    async def take_tokens(
        self, provider: str, rate: float, burst: float, want: int
    ) -> tuple[int, float]:
        """Take up to ``want`` tokens from the provider's shared bucket.

        Returns how many were granted and, when none were, how many seconds
        until one will be (a pause set by ``pause_provider`` counts too).
        """

    @abc.abstractmethod
    async def pause_provider(self, provider: str, until: float) -> None:
        """Hold every process's calls to ``provider`` until the time (a 429's Retry-After)."""

    @abc.abstractmethod
    async def record_breaker(self, state: BreakerState) -> None:
        """Save ``state`` as its process's latest for that provider."""

    @abc.abstractmethod
    async def breakers(self, live_since: float) -> list[BreakerState]:
        """The last recorded breaker state of every provider in every live process: one
        whose heartbeat is at ``live_since`` or later. A process that died or stopped
        takes its breakers with it."""

    @abc.abstractmethod
    async def heartbeat(self, process: str) -> None:
        """Say ``process`` is alive, in one tiny commit; raises when the store cannot
        commit (disk full, read-only): health uses it as its probe."""

    @abc.abstractmethod
    async def end_process(self, process: str) -> None:
        """A process stopping: its heartbeat and breaker rows go at once."""

    @abc.abstractmethod
    async def prune_processes(self, seen_before: float) -> int:
        """Drop the heartbeats last seen before ``seen_before`` (processes that died
        without ``end_process``) and the breaker rows of every process not live; how
        many breaker rows went."""

    @abc.abstractmethod
    async def worker_seen(self, name: str) -> None:
        """Record that the delivery worker process ``name`` runs (its heartbeat, counted by
        ``Monitoring.gauges``); workers not seen for a day are forgotten here too."""


@runtime_checkable
class Catalog(Protocol):
    """Templates and event types defined through the API (built-in ones live in code)."""

    @abc.abstractmethod
    async def templates(
        self, tenant_id: str, name: str | None = None, version: int | None = None
    ) -> list[Template]:
        """Stored template variants: the latest version of each, or those at ``version``.

        Built-in templates are not stored; ``templates.merged`` adds them.
        """

    @abc.abstractmethod
    async def save_template(self, tenant_id: str, draft: TemplateDraft, create: bool) -> Template:
        """Store the draft as the variant's next version (1 for a new variant).

        With ``create``, an existing variant raises ``TemplateExists`` instead.
        """

    @abc.abstractmethod
    async def delete_templates(
        self, tenant_id: str, name: str, channel: Channel | None = None, locale: str | None = None
    ) -> int:
        """Delete every version of the name's variants (or of one); return rows deleted."""

    @abc.abstractmethod
    async def event_types(self, tenant_id: str) -> list[EventType]:
        """Event types defined through the API (``events.merged`` adds the others)."""

    @abc.abstractmethod
    async def save_event_type(
        self, tenant_id: str, event_type: EventType, create: bool
    ) -> EventType:
        """Store or replace a definition; with ``create`` an existing one raises
        ``EventTypeExists``."""

    @abc.abstractmethod
    async def delete_event_type(self, tenant_id: str, name: str) -> bool:
        """Delete a stored definition; False if none was stored."""


@runtime_checkable
class Events(Protocol):
    """Domain events, the notifications they fanned out to, and one-time tokens."""

    @abc.abstractmethod
    async def create_event(
        self, event: NewEvent, items: Sequence[NewNotification]
    ) -> tuple[EventRecord, list[Notification]]:
        """Store an event, its notifications (as ``create`` does) and the links between
        them in ONE transaction: all of it is durable before this returns, or none."""

    @abc.abstractmethod
    async def get_event(self, tenant_id: str, event_id: str) -> EventRecord | None: ...

    @abc.abstractmethod
    async def find_events(
        self, tenant_id: str, where: EventFilter, page: int, limit: int
    ) -> EventPage:
        """Events, newest first."""

    @abc.abstractmethod
    async def event_notifications(
        self, tenant_id: str, event_ids: Sequence[str]
    ) -> dict[str, list[Notification]]:
        """Each event's notifications in target order; one query for a page of events."""

    @abc.abstractmethod
    async def verify_event(self, tenant_id: str, token_hash: str, not_before: float) -> EventRecord:
        """Spend the one-time token whose SHA-256 is ``token_hash``.

        Raises ``TokenUnknown``, ``TokenUsed``, or ``TokenExpired`` when the event
        was created before ``not_before``; a token works exactly once.
        """

    @abc.abstractmethod
    async def verification_tenant(self, token_hash: str) -> str | None:
        """The tenant whose event holds this one-time token, if any: the one lookup not
        scoped by tenant, for the public page a verification link opens. The token
        (only its hash is stored) is the credential."""

    @abc.abstractmethod
    async def event_stats(self, tenant_id: str, event_type: str, since: float) -> EventStats:
        """Counts of an event type: total, verified, created since ``since``, and the
        statuses of each event's primary (first) notification."""


@runtime_checkable
class Mailbox(Protocol):
    """Messages the capture provider 'sent', readable at ``GET /api/mailbox``."""

    @abc.abstractmethod
    async def capture(self, message: MailboxMessage) -> None:
        """Keep a message the capture provider 'sent'."""

    @abc.abstractmethod
    async def mailbox(
        self, tenant_id: str, limit: int, channel: Channel | None = None
    ) -> list[MailboxMessage]:
        """Kept messages, newest first."""


@runtime_checkable
class Receipts(Protocol):
    """What providers report after they accepted a message (``store/receipts.py``)."""

    @abc.abstractmethod
    async def apply_receipts(
        self, events: Sequence[ReceiptEvent], seen: Sequence[tuple[str, float]] = (),
        callback_url: str | None = None,
    ) -> ReceiptsApplied:  # fmt: skip
        """Apply a batch of receipt events in ONE transaction.

        ``seen`` are replay keys with the time each may be forgotten: if one is
        held already, ``ReceiptReplayed`` is raised and nothing is applied.
        Statuses only move forward; every event matched is a history row;
        bounces, complaints and unsubscribes suppress the recipient; a status
        that moved is reported to the notification's callback URL, or to
        ``callback_url``.
        """

    @abc.abstractmethod
    async def forget_receipts_seen(self) -> int:
        """Drop replay keys past their time (retention); return how many."""


@runtime_checkable
class Suppressions(Protocol):
    """Recipients a tenant does not send to, and the categories of its messages."""

    @abc.abstractmethod
    async def suppress(self, items: Sequence[Suppression]) -> int:
        """Add entries (an entry already there is kept as it was); return how many were new."""

    @abc.abstractmethod
    async def unsuppress(self, tenant_id: str, recipient: str, category: str | None = None) -> int:
        """Remove the recipient's entry for ``category`` ('' is every category's), or all of
        its entries when None; return how many went."""

    @abc.abstractmethod
    async def suppressions(
        self, tenant_id: str, recipient: str | None = None, reason: str | None = None,
        page: int = 1, limit: int = 50,
    ) -> tuple[list[Suppression], int]:  # fmt: skip
        """Entries, newest first, and how many match in all."""

    @abc.abstractmethod
    async def categories(self, tenant_id: str) -> list[Category]: ...

    @abc.abstractmethod
    async def save_category(self, category: Category) -> Category:
        """Create or replace a category; its creation time is kept."""

    @abc.abstractmethod
    async def delete_category(self, tenant_id: str, name: str) -> bool: ...


@runtime_checkable
class Monitoring(Protocol):
    """What the metrics read from the store when scraped (``metrics.py``)."""

    @abc.abstractmethod
    async def gauges(self, now: float, alive_after: float) -> Gauges:
        """Every tenant's rows counted by status and lane, the rows due at ``now`` and not
        yet claimed, the DLQ's size, and the workers seen since ``alive_after``."""


@runtime_checkable
class Activity(Protocol):
    """What changed lately, read over indexes, for the dashboard's live view and charts."""

    @abc.abstractmethod
    async def changes(self, since: float, limit: int) -> ChangeFeed:
        """Every tenant's changes at or after ``since``: notifications created, claimed, and
        history rows stored, at most ``limit`` of each kind; and the paused lanes.

        A poller reads a window that overlaps its last one (a commit may land a little
        after the time its rows carry) and passes each change on once, by its key.
        """

    @abc.abstractmethod
    async def history_per_minute(
        self, tenant_id: str, since: float, statuses: Sequence[Status]
    ) -> list[tuple[int, str, int]]:
        """Stored history rows in ``statuses`` from ``since`` on, counted per minute:
        (the minute, as POSIX seconds // 60; the status; how many)."""


#: Every port a store provides (besides ``access``).
PORTS: tuple[type, ...] = (
    Queue, Notifications, DeadLetters, Idempotency, Coordination, Catalog, Events, Mailbox,
    Receipts, Suppressions, Monitoring, Activity,
)  # fmt: skip


def members(port: type) -> list[str]:
    """The operations and attributes a port requires, in the order it declares them."""
    names = [n for n, v in vars(port).items() if getattr(v, "__isabstractmethod__", False)]
    return list(getattr(port, "__annotations__", {})) + names

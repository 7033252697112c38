"""After SENT, once for every store: provider receipts, the suppression list, categories.

The rules live here; each store's ``Dialect`` runs the named statements of
``store/<dialect>/receipts.sql`` (the memory store: the methods of the same
names). A batch of receipts is one transaction: replay keys are claimed,
notifications found by the id their provider gave them, statuses moved
forward only (``models.RECEIPT_RANK``), one history row written per event,
recipients that bounced, complained or unsubscribed added to their tenant's
suppression list, and status callbacks stored, all together or not at all.

Usage::

    applied = await store.apply_receipts(events, seen=[("mailgun:token", until)])
    await store.suppress([Suppression("acme", "a@example.com", "", "manual")])
    entries, total = await store.suppressions("acme", recipient="a@example.com")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from ..errors import ReceiptReplayed
from ..models import (
    ACCEPTED,
    RECEIPT_RANK,
    Channel,
    NewNotification,
    Priority,
    Status,
    suppression_key,
)
from ..receipts.base import ReceiptEvent, ReceiptKind
from .dialect import Change, Dialect, Fetch, Insert, Rule

#: The channel each receipt provider reports on: a receipt matches only a
#: notification of that channel.
PROVIDER_CHANNEL = {
    "sendgrid": Channel.EMAIL, "ses": Channel.EMAIL, "postmark": Channel.EMAIL,
    "mailgun": Channel.EMAIL, "twilio": Channel.SMS,
}  # fmt: skip
#: The status an event moves its notification to (if that is forward).
KIND_STATUS = {
    ReceiptKind.DELIVERED: Status.DELIVERED,
    ReceiptKind.BOUNCED: Status.BOUNCED,
    ReceiptKind.UNDELIVERED: Status.UNDELIVERED,
    ReceiptKind.COMPLAINED: Status.COMPLAINED,
}
#: Events that put the recipient on the suppression list, and the reason it says.
KIND_SUPPRESSES = {
    ReceiptKind.BOUNCED: "bounce",
    ReceiptKind.COMPLAINED: "complaint",
    ReceiptKind.UNSUBSCRIBED: "unsubscribe",
}
_WORDS = {
    ReceiptKind.DELIVERED: "Delivered",
    ReceiptKind.BOUNCED: "Bounced",
    ReceiptKind.SOFT_BOUNCE: "Soft bounce",
    ReceiptKind.DEFERRED: "Deferred by the provider",
    ReceiptKind.COMPLAINED: "Marked as spam",
    ReceiptKind.UNDELIVERED: "Undelivered",
    ReceiptKind.UNSUBSCRIBED: "Unsubscribed",
    ReceiptKind.OTHER: "Provider event",
}
#: Status callback event names, by the status a receipt moved a notification to.
CALLBACK_EVENT = {
    Status.DELIVERED: "notification.delivered",
    Status.BOUNCED: "notification.bounced",
    Status.UNDELIVERED: "notification.undelivered",
    Status.COMPLAINED: "notification.complained",
}
REASONS = ("bounce", "complaint", "unsubscribe", "manual")


@dataclass(frozen=True, slots=True)
class Suppression:
    """A recipient a tenant does not send to (in ``category``, or any when it is '')."""

    tenant_id: str
    recipient: str  # as the list spells it: ``models.suppression_key``
    category: str
    reason: str  # one of REASONS
    detail: str | None = None
    notification_id: str | None = None  # the notification whose receipt added it
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Category:
    """A kind of message a tenant sends; an unsubscribable one carries List-Unsubscribe."""

    tenant_id: str
    name: str
    unsubscribable: bool
    description: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ReceiptsApplied:
    """What a batch of receipts did."""

    events: int
    matched: int  # events that found their notification
    changed: int  # notifications whose status moved forward
    unknown: int  # events for ids no notification of their channel holds
    suppressed: int  # recipients newly added to a suppression list
    #: Each status move applied, counted by (channel, status moved to): a notification
    #: delivered then complained about in one batch moved twice.
    moves: dict[tuple[str, str], int] = field(default_factory=dict)
    callbacks: int = 0  # status callbacks stored (WEBHOOK notifications)


@dataclass(slots=True)
class _Target:
    id: str
    tenant_id: str
    channel: str
    recipient: str
    status: Status
    category: str | None
    callback_url: str | None
    attempts: int
    provider: str | None
    message_id: str
    changed: bool = False


def apply_receipts(
    events: Sequence[ReceiptEvent], seen: Sequence[tuple[str, float]], now: float,
    callback_url: str | None,
) -> Rule[ReceiptsApplied]:  # fmt: skip
    if seen:
        claimed = yield Fetch("receipt_seen_claim", ([[k, until] for k, until in seen], now))
        if len(claimed) < len(seen):
            raise ReceiptReplayed("this signed receipt was already received")
    ids = sorted({e.message_id for e in events})
    targets: dict[str, list[_Target]] = {}
    for r in (yield Fetch("receipt_targets", (ids,))) if ids else []:
        target = _Target(r[0], r[1], r[2], r[3], Status(r[4]), r[5], r[6], r[7], r[8], r[9])
        targets.setdefault(target.message_id, []).append(target)

    audit: list[list[Any]] = []
    suppress: dict[tuple[str, str, str], list[Any]] = {}
    matched = 0
    moves: dict[tuple[str, str], int] = {}
    for e in events:
        channel = PROVIDER_CHANNEL.get(e.provider)
        found = [t for t in targets.get(e.message_id, ()) if channel and t.channel == channel]
        for t in found:
            matched += 1
            moved = KIND_STATUS.get(e.kind)
            if (
                moved is not None
                and t.status in ACCEPTED
                and (RECEIPT_RANK[moved] > RECEIPT_RANK[t.status])
            ):
                t.status, t.changed = moved, True
                move = (t.channel, moved.value)
                moves[move] = moves.get(move, 0) + 1
            else:
                moved = None
            audit.append([t.id, t.tenant_id, t.status.value, _message(e, moved), e.at,
                          orjson.dumps({"receipt": _receipt(e)}).decode()])  # fmt: skip
            reason = KIND_SUPPRESSES.get(e.kind)
            if reason is not None:
                category = (t.category or "") if e.kind is ReceiptKind.UNSUBSCRIBED else ""
                key = (t.tenant_id, suppression_key(t.recipient), category)
                suppress.setdefault(key, [*key, reason, e.detail, t.id, now])
    changed = [t for ts in targets.values() for t in ts if t.changed]
    if audit:
        yield Change("receipt_audit", (audit,))
    if changed:
        yield Change("receipt_statuses", ([[t.id, t.status.value] for t in changed], now))
    added = (yield Change("suppressions_insert", (list(suppress.values()),))) if suppress else 0
    callbacks = [_callback(t, url, now) for t in changed if (url := t.callback_url or callback_url)]
    if callbacks:  # in the same transaction: a status is never recorded without its callback
        yield Insert(callbacks, now)
    return ReceiptsApplied(
        len(events), matched, len(changed), len(events) - matched, added, moves, len(callbacks)
    )


def _message(e: ReceiptEvent, moved: Status | None) -> str:
    text = f"{_WORDS[e.kind]}: {e.provider} reported {e.raw_type}"
    if e.detail:
        text += f" ({e.detail})"
    return text if moved is not None else f"{text}; status unchanged"


def _receipt(e: ReceiptEvent) -> dict[str, Any]:
    found = {"provider": e.provider, "type": e.raw_type, "kind": e.kind.value,
             "at": _iso(e.at), "providerMessageId": e.message_id}  # fmt: skip
    for name, value in (("eventId", e.event_id), ("recipient", e.recipient), ("detail", e.detail)):
        if value is not None:
            found[name] = value
    return found


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def _callback(t: _Target, url: str, now: float) -> NewNotification:
    """The WEBHOOK notification that tells ``url`` what a receipt said (as ``status_callback``)."""
    event: dict[str, Any] = {
        "event": CALLBACK_EVENT[t.status],
        "notificationId": t.id,
        "type": t.channel,
        "recipient": t.recipient,
        "status": t.status.value,
        "attempts": t.attempts,
        "provider": t.provider,
        "providerMessageId": t.message_id,
        "at": _iso(now),
    }
    return NewNotification(
        channel=Channel.WEBHOOK, recipient=url, body=orjson.dumps(event).decode(),
        subject=event["event"], priority=Priority.HIGH,
        metadata={"event": event, "callbackFor": t.id}, tenant_id=t.tenant_id,
    )  # fmt: skip


def suppress(items: Sequence[Suppression], now: float) -> Rule[int]:
    rows = [[s.tenant_id, suppression_key(s.recipient), s.category, s.reason, s.detail,
             s.notification_id, s.created_at or now] for s in items]  # fmt: skip
    return (yield Change("suppressions_insert", (rows,))) if rows else 0


def unsuppress(tenant_id: str, recipient: str, category: str | None) -> Rule[int]:
    args = (tenant_id, suppression_key(recipient), category)
    return int((yield Change("suppressions_delete", args)))


def suppressions(
    tenant_id: str, recipient: str | None, reason: str | None, page: int, limit: int
) -> Rule[tuple[list[Suppression], int]]:
    key = None if recipient is None else suppression_key(recipient)
    [(total,)] = yield Fetch("suppressions_count", (tenant_id, key, reason))
    rows = yield Fetch("suppressions_list", (tenant_id, key, reason, limit, (page - 1) * limit))
    return [Suppression(*r) for r in rows], total


def categories(tenant_id: str) -> Rule[list[Category]]:
    rows = yield Fetch("categories_list", (tenant_id,))
    return [Category(r[0], r[1], bool(r[2]), r[3], r[4], r[5]) for r in rows]


def save_category(c: Category, now: float) -> Rule[Category]:
    args = (c.tenant_id, c.name, c.unsubscribable, c.description, now)
    [r] = yield Fetch("category_upsert", args)
    return Category(r[0], r[1], bool(r[2]), r[3], r[4], r[5])


def delete_category(tenant_id: str, name: str) -> Rule[bool]:
    return bool((yield Change("category_delete", (tenant_id, name))))


def forget_seen(now: float) -> Rule[int]:
    return int((yield Change("receipt_seen_expire", (now,))))


class ReceiptRules:
    """The ``Receipts`` and ``Suppressions`` ports over a store's ``dialect``; stores inherit it."""

    dialect: Dialect
    clock: Callable[[], float]

    async def apply_receipts(
        self, events: Sequence[ReceiptEvent], seen: Sequence[tuple[str, float]] = (),
        callback_url: str | None = None,
    ) -> ReceiptsApplied:  # fmt: skip
        now = self.clock()
        rule = lambda: apply_receipts(events, seen, now, callback_url)  # noqa: E731
        return await self.dialect.write(rule, wakes=True)

    async def forget_receipts_seen(self) -> int:
        now = self.clock()
        return await self.dialect.write(lambda: forget_seen(now))

    async def suppress(self, items: Sequence[Suppression]) -> int:
        now = self.clock()
        return await self.dialect.write(lambda: suppress(items, now))

    async def unsuppress(self, tenant_id: str, recipient: str, category: str | None = None) -> int:
        return await self.dialect.write(lambda: unsuppress(tenant_id, recipient, category))

    async def suppressions(
        self, tenant_id: str, recipient: str | None = None, reason: str | None = None,
        page: int = 1, limit: int = 50,
    ) -> tuple[list[Suppression], int]:  # fmt: skip
        return await self.dialect.read(
            lambda: suppressions(tenant_id, recipient, reason, page, limit)
        )

    async def categories(self, tenant_id: str) -> list[Category]:
        return await self.dialect.read(lambda: categories(tenant_id))

    async def save_category(self, category: Category) -> Category:
        now = self.clock()
        return await self.dialect.write(lambda: save_category(category, now))

    async def delete_category(self, tenant_id: str, name: str) -> bool:
        return await self.dialect.write(lambda: delete_category(tenant_id, name))

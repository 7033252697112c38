"""Turning result rows into domain values; shared by every store."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from ..models import (
    ACCEPTED,
    ALL_QUEUES,
    CLAIMABLE,
    DLQ,
    Channel,
    Dead,
    Gauges,
    NewNotification,
    Notification,
    Priority,
    QueueCounts,
    Sent,
    Stats,
    Status,
)


def notification_from_row(row: Mapping[str, Any]) -> Notification:
    metadata = row["metadata"]
    return Notification(
        id=row["id"],
        tenant_id=row["tenant_id"],
        channel=Channel(row["channel"]),
        recipient=row["recipient"],
        subject=row["subject"],
        body=row["body"],
        html=row["html"],
        metadata=orjson.loads(metadata) if isinstance(metadata, str | bytes) else dict(metadata),
        priority=Priority(row["priority"]),
        status=Status(row["status"]),
        queue=row["queue"],
        due_at=row["due_at"],
        attempts=row["attempts"],
        stage=row["stage"],
        idempotency_key=row["idempotency_key"],
        provider=row["provider"],
        provider_message_id=row["provider_message_id"],
        last_error=row["last_error"],
        processing_ms=row["processing_ms"],
        scheduled_at=row["scheduled_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        sent_at=row["sent_at"],
        failed_at=row["failed_at"],
        callback_url=row["callback_url"],
        category=row["category"],
        ignore_suppression=bool(row["ignore_suppression"]),
        max_retries=row["max_retries"],
        request_id=row["request_id"],
    )


#: What the success rate counts as reaching the recipient, and as not reaching them.
SUCCEEDED = (Status.SENT, Status.DELIVERED, Status.COMPLAINED)
FAILED = (Status.FAILED, Status.BOUNCED, Status.UNDELIVERED)


def breakdown_stats(rows: Iterable[Sequence[Any]], queue_rows: Iterable[Sequence[Any]]) -> Stats:
    """Stats from ``(status, channel, priority, count, sum_ms, count_ms)`` rows."""
    by_status = {s.value: 0 for s in Status}
    by_channel = {c.value: 0 for c in Channel}
    by_priority = {p.name: 0 for p in Priority}
    total = 0
    ms_sum = 0.0
    ms_count = 0
    crossed: dict[tuple[str, str], int] = {}
    for status, channel, priority, count, sum_ms, count_ms in rows:
        crossed[(channel, status)] = crossed.get((channel, status), 0) + count
        total += count
        by_status[status] += count
        by_channel[channel] += count
        by_priority[Priority(priority).name] += count
        if status in ACCEPTED and count_ms:  # a receipt since does not unsay the send's time
            ms_sum += sum_ms or 0.0
            ms_count += count_ms
    depth = {name: 0 for name in ALL_QUEUES}
    for queue, waiting, active, delayed, *_ in queue_rows:
        depth[queue] = int(waiting or 0) + int(active or 0) + int(delayed or 0)
    succeeded = sum(by_status[s.value] for s in SUCCEEDED)
    finished = succeeded + sum(by_status[s.value] for s in FAILED)
    return Stats(
        total=total,
        by_status=by_status,
        by_channel=by_channel,
        by_priority=by_priority,
        queue_depth=depth,
        average_processing_ms=round(ms_sum / ms_count, 2) if ms_count else 0.0,
        success_rate=round(100.0 * succeeded / finished, 2) if finished else 100.0,
        by_channel_status=crossed,
    )


_WAITING = frozenset(s.value for s in CLAIMABLE)
_PRIORITY_NAME = {int(p): p.name for p in Priority}


def gauges_from(rows: Iterable[Sequence[Any]], workers: int) -> Gauges:
    """Gauges from ``(status, queue, priority, count, due, earliest due time)`` rows: every
    row of the table grouped, with how many of each group are due at the scrape's time."""
    by_status = {s.value: 0 for s in Status}
    depth = dict.fromkeys(ALL_QUEUES, 0)
    waiting: dict[tuple[str, str], int] = {}
    oldest: dict[str, float] = {}
    dlq = 0
    for status, queue, priority, count, due, oldest_due in rows:
        by_status[status] += count
        if status in _WAITING or status == Status.PROCESSING.value:
            depth[queue] = depth.get(queue, 0) + count
        if status in _WAITING and due:
            key = (queue, _PRIORITY_NAME[int(priority)])
            waiting[key] = waiting.get(key, 0) + int(due)
            if queue not in oldest or oldest_due < oldest[queue]:
                oldest[queue] = oldest_due
        elif status == Status.FAILED.value and queue == DLQ:
            dlq += count
    return Gauges(by_status, depth, waiting, oldest, dlq, workers)


def queue_counts(rows: Iterable[Sequence[Any]], paused: set[str]) -> list[QueueCounts]:
    """One entry per known lane, from ``(queue, waiting, active, delayed, done, failed)`` rows."""
    found = {r[0]: r for r in rows}
    result = []
    for name in ALL_QUEUES:
        _, waiting, active, delayed, completed, failed = found.get(name, (name, 0, 0, 0, 0, 0))
        result.append(
            QueueCounts(
                name=name,
                waiting=int(waiting or 0),
                active=int(active or 0),
                delayed=int(delayed or 0),
                completed=int(completed or 0),
                failed=int(failed or 0),
                paused=name in paused,
            )
        )
    return result


def status_callback(outcome: Sent | Dead, url: str) -> NewNotification:
    """The WEBHOOK notification that tells ``url`` how a notification ended.

    It is an ordinary notification (signed, retried on the ladder) whose
    metadata marks it as a callback, so it never asks for a callback itself.
    """
    c = outcome.claim
    event: dict[str, Any] = {
        "event": "notification.sent" if isinstance(outcome, Sent) else "notification.failed",
        "notificationId": c.id,
        "type": c.channel.value,
        "recipient": c.recipient,
        "status": "SENT" if isinstance(outcome, Sent) else "FAILED",
        "attempts": c.attempts,
        "provider": outcome.provider,
        "at": datetime.fromtimestamp(outcome.at, UTC).isoformat(timespec="milliseconds"),
    }
    if isinstance(outcome, Sent):
        event["providerMessageId"] = outcome.message_id
    else:
        event.update(error=outcome.error, queue="dlq", permanent=outcome.permanent)
    return NewNotification(
        channel=Channel.WEBHOOK,
        recipient=url,
        body=orjson.dumps(event).decode(),
        subject=event["event"],
        priority=Priority.HIGH,
        metadata={"event": event, "callbackFor": c.id},
        tenant_id=c.tenant_id,
    )


def prefix_range(prefix: str) -> tuple[str, str]:
    """The ids beginning with ``prefix`` are those from the first bound up to the second
    (excluded), compared as the primary key compares them (bytes, code points)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def id_bound(created_before: float) -> str:
    """The least id of a notification created at ``created_before``: ids start with their
    creation time in milliseconds (``models.new_id``), so ``id < id_bound(t)`` picks the
    rows created before ``t`` along the primary key, with no index on the time."""
    return f"{int(created_before * 1000):012x}"

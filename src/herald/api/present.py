"""Domain values to JSON-ready dicts, in the seeds' field names (see schemas.py)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ..models import AuditEntry, MailboxMessage, Notification, Page, QueueCounts, Stats

_iso_second = (-1, "")  # the last whole second formatted, and its text


def iso(ts: float | None) -> str | None:
    """``2026-01-31T12:00:00.123Z``; the date and time part is formatted once a second.

    Every answer carries a few timestamps, nearly all in the current second,
    and formatting through ``datetime`` was a few per cent of the ingest path.
    """
    global _iso_second
    if ts is None:
        return None
    # As datetime.fromtimestamp does: round the fraction to the microsecond
    # (carrying into the second), then cut to the millisecond.
    fraction, whole = math.modf(ts)
    second, micros = int(whole), round(fraction * 1_000_000)
    if not 0 <= micros < 1_000_000:
        second, micros = divmod(second * 1_000_000 + micros, 1_000_000)
    cached, text = _iso_second
    if second != cached:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _iso_second = (second, text)
    return f"{text}.{micros // 1000:03d}Z"


#: Shown instead of a message that holds a secret (a reset code, a verification link).
#: ``fanout.py`` marks such notifications ``metadata.sensitive``; the stored row and
#: the delivery keep the message whole, every presentation of it shows this.
CONCEALED = "[redacted: contains a secret]"


def notification(n: Notification, max_attempts: int) -> dict[str, Any]:
    hide = n.metadata.get("sensitive") is True
    return {
        "_id": n.id,
        "id": n.id,
        "type": n.channel.value,
        "recipient": n.recipient,
        "subject": n.subject,
        "message": CONCEALED if hide else n.body,
        "html": CONCEALED if hide and n.html is not None else n.html,
        "status": n.status.value,
        "priority": n.priority.name,
        "queue": n.queue,
        "attempts": n.attempts,
        "retryCount": max(0, n.attempts - 1),
        "maxRetries": max_attempts - 1,
        "metadata": n.metadata,
        "scheduledAt": iso(n.scheduled_at),
        "sentAt": iso(n.sent_at),
        "failedAt": iso(n.failed_at),
        "error": n.last_error,
        "provider": n.provider,
        "providerMessageId": n.provider_message_id,
        "processingTimeMs": None if n.processing_ms is None else round(n.processing_ms, 3),
        "createdAt": iso(n.created_at),
        "updatedAt": iso(n.updated_at),
        "callbackUrl": n.callback_url,
    }


def log_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "_id": entry.id,
        "notificationId": entry.notification_id,
        "status": entry.status.value,
        "message": entry.message,
        "timestamp": iso(entry.at),
        "metadata": entry.metadata,
    }


def stats(s: Stats) -> dict[str, Any]:
    return {
        "total": s.total,
        "byStatus": s.by_status,
        "byType": s.by_channel,
        "byPriority": s.by_priority,
        "queueDepth": s.queue_depth,
        "averageProcessingTime": s.average_processing_ms,
        "successRate": s.success_rate,
    }


def mailbox_item(m: MailboxMessage, sensitive: bool = False) -> dict[str, Any]:
    """``sensitive``: the notification holds a secret (``Store.sensitive_notifications``)."""
    return {
        "id": m.id,
        "notificationId": m.notification_id,
        "type": m.channel.value,
        "recipient": m.recipient,
        "subject": m.subject,
        "message": CONCEALED if sensitive else m.body,
        "html": CONCEALED if sensitive and m.html is not None else m.html,
        "receivedAt": iso(m.at),
    }


def queue(q: QueueCounts) -> dict[str, Any]:
    return {
        "waiting": q.waiting,
        "active": q.active,
        "delayed": q.delayed,
        "completed": q.completed,
        "failed": q.failed,
        "paused": q.paused,
    }


def pagination(page: Page) -> dict[str, int]:
    return {
        "currentPage": page.page,
        "totalPages": (page.total + page.limit - 1) // page.limit,
        "totalItems": page.total,
        "itemsPerPage": page.limit,
    }

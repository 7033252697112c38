"""Domain values to JSON-ready dicts, in the seeds' field names (see schemas.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..models import AuditEntry, MailboxMessage, Notification, Page, QueueCounts, Stats


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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

"""Domain values to JSON-ready dicts, in the seeds' field names (see schemas.py).

Credentials in URLs (a chat URL's ``user:password@``, a status callback's, one
quoted in an error or a callback's event) are shown as ``user:****@`` in every
answer and on the dashboard, which presents through here; the store keeps them,
since delivery needs them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..models import AuditEntry, MailboxMessage, Notification, Page, QueueCounts, Stats
from ..providers.ssrf import mask_credentials

if TYPE_CHECKING:
    from ..retry import Policy

_iso_second = (-1, "")  # the last whole second formatted, and its text


def iso(ts: float | None) -> str | None:
    """``2026-01-31T12:00:00.123Z``; the date and time part is formatted once a second.

    Every answer carries a few timestamps, nearly all in the current second,
    and formatting through ``datetime`` was a few per cent of the ingest path.
    """
    global _iso_second
    if ts is None or not math.isfinite(ts):
        return None
    # As datetime.fromtimestamp does: round the fraction to the microsecond
    # (carrying into the second), then cut to the millisecond.
    fraction, whole = math.modf(ts)
    second, micros = int(whole), round(fraction * 1_000_000)
    if not 0 <= micros < 1_000_000:
        second, micros = divmod(second * 1_000_000 + micros, 1_000_000)
    cached, text = _iso_second
    if second != cached:
        try:
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, ValueError, OSError):
            return None  # a time no calendar holds (stored before it was refused): never a 500
        _iso_second = (second, text)
    return f"{text}.{micros // 1000:03d}Z"


#: Shown instead of a message that holds a secret (a reset code, a verification link).
#: ``fanout.py`` marks such notifications ``metadata.sensitive``; the stored row and
#: the delivery keep the message whole, every presentation of it shows this.
CONCEALED = "[redacted: contains a secret]"


def masked(value: Any) -> Any:
    """``value`` (JSON) with URL credentials masked in every string; itself when there are none."""
    if isinstance(value, str):
        return mask_credentials(value)
    if isinstance(value, dict):
        shown = {key: masked(item) for key, item in value.items()}
        return value if all(shown[key] is value[key] for key in value) else shown
    if isinstance(value, list):
        items = [masked(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def notification(n: Notification, policy: Policy) -> dict[str, Any]:
    """``policy``: the ladders, which say how many retries ``n`` really has (``maxRetries``)."""
    hide = n.metadata.get("sensitive") is True
    return {
        "_id": n.id,
        "id": n.id,
        "jobId": n.id,  # seed 002's name: the row is the job (DESIGN 1)
        "type": n.channel.value,
        "recipient": mask_credentials(n.recipient),
        "subject": n.subject,
        "message": CONCEALED if hide else mask_credentials(n.body),
        "html": CONCEALED if hide and n.html is not None else masked(n.html),
        "status": n.status.value,
        "priority": n.priority.name,
        "queue": n.queue,
        "attempts": n.attempts,
        "retryCount": max(0, n.attempts - 1),
        "maxRetries": policy.retries_for(n.channel, n.max_retries),
        "metadata": masked(n.metadata),
        "scheduledAt": iso(n.scheduled_at),
        "sentAt": iso(n.sent_at),
        "failedAt": iso(n.failed_at),
        "error": masked(n.last_error),
        "provider": n.provider,
        "providerMessageId": n.provider_message_id,
        "processingTimeMs": None if n.processing_ms is None else round(n.processing_ms, 3),
        "createdAt": iso(n.created_at),
        "updatedAt": iso(n.updated_at),
        "callbackUrl": masked(n.callback_url),
        "category": n.category,
        "ignoreSuppression": n.ignore_suppression,
        "requestId": n.request_id,
    }


def log_entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "_id": entry.id,
        "notificationId": entry.notification_id,
        "status": entry.status.value,
        "message": mask_credentials(entry.message),
        "timestamp": iso(entry.at),
        "metadata": masked(entry.metadata),
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
        "recipient": mask_credentials(m.recipient),
        "subject": m.subject,
        "message": CONCEALED if sensitive else mask_credentials(m.body),
        "html": CONCEALED if sensitive and m.html is not None else masked(m.html),
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

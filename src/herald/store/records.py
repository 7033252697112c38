"""What a store writes for each change: the new row and the words of its history entries.

Shared by every store, so a notification's history reads the same whichever
database keeps it; the stores only decide how the values reach their tables
(and ``history.py`` words the entries that are read from the row instead).
"""

from __future__ import annotations

from typing import Any

from ..models import (
    DLQ,
    Dead,
    Deferred,
    NewNotification,
    Notification,
    Outcome,
    Retry,
    Sent,
    Status,
    Suppressed,
    new_id,
)

CLAIMED = "Worker started processing"
CANCELLED = "Cancelled before delivery"
RELEASED = "Released unsent: the worker stopped"


def placement(item: NewNotification, now: float) -> tuple[Status, float]:
    """Where a new notification starts: QUEUED and due now, or SCHEDULED for its later time."""
    if item.scheduled_at is not None and item.scheduled_at > now:
        return Status.SCHEDULED, item.scheduled_at
    return Status.QUEUED, now


def fresh(item: NewNotification, now: float) -> Notification:
    """The row ``create`` stores for ``item``: QUEUED, or SCHEDULED when due later."""
    status, due_at = placement(item, now)
    return Notification(
        id=new_id(now), tenant_id=item.tenant_id, channel=item.channel,
        recipient=item.recipient, subject=item.subject, body=item.body, html=item.html,
        metadata=item.metadata, priority=item.priority, status=status,
        queue=item.channel.queue, due_at=due_at,
        attempts=0, stage=0, idempotency_key=item.idempotency_key, provider=None,
        provider_message_id=None, last_error=None, processing_ms=None,
        scheduled_at=item.scheduled_at, created_at=now, updated_at=now, sent_at=None,
        failed_at=None, callback_url=item.callback_url, category=item.category,
        ignore_suppression=item.ignore_suppression, max_retries=item.max_retries,
        request_id=item.request_id,
    )  # fmt: skip


#: The two audit entries of a new notification, as (status, message), by its first status.
_CREATED = {
    Status.QUEUED: (("PENDING", "Notification created"), ("QUEUED", "Added to queue")),
    Status.SCHEDULED: (
        ("PENDING", "Notification created"),
        ("SCHEDULED", "Scheduled for later delivery"),
    ),
}


def created(status: Status) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two audit entries of a notification created in ``status``, in order."""
    return _CREATED[status]


def outcome(o: Outcome) -> tuple[str, str, dict[str, Any]]:
    """The audit entry of a delivery outcome: (status, message, metadata)."""
    c = o.claim
    if isinstance(o, Sent):
        meta: dict[str, Any] = {
            "attempt": c.attempts,
            "provider": o.provider,
            "providerMessageId": o.message_id,
        }
        return "SENT", f"Successfully sent via {o.provider}", meta
    if isinstance(o, Retry):
        delay = max(0.0, o.due_at - o.at)
        meta = {"attempt": c.attempts, "provider": o.provider, "error": o.error,
                "queue": o.queue, "retryInSeconds": round(delay, 3)}  # fmt: skip
        text = f"Attempt {c.attempts} failed: {o.error}; retry in {delay:.1f}s on {o.queue}"
        return "RETRYING", text, meta
    if isinstance(o, Dead):
        why = "permanent error" if o.permanent else "retries exhausted"
        meta = {"attempt": c.attempts, "provider": o.provider, "error": o.error,
                "permanent": o.permanent, "queue": DLQ}  # fmt: skip
        return "FAILED", f"Delivery failed ({why}): {o.error}; moved to {DLQ}", meta
    if isinstance(o, Suppressed):
        text = f"Suppressed: the recipient is on the suppression list ({o.reason}); not sent"
        return "SUPPRESSED", text, {"reason": o.reason}
    assert isinstance(o, Deferred)
    wait = max(0.0, o.due_at - o.at)
    text = f"Not attempted: {o.reason}; back in the queue for {wait:.1f}s"
    return "QUEUED", text, {"reason": o.reason, "retryInSeconds": round(wait, 3)}


def stalled(attempts: int, max_attempts: int) -> tuple[str, str, str | None]:
    """What the sweeper does with an expired lease: (new status, audit message, last error).

    A row that stalled on its last allowed attempt goes to the DLQ, so a
    message that crashes every worker cannot loop forever.
    """
    if attempts >= max_attempts:
        error = f"lease expired on attempt {attempts}, the last the ladder allows"
        return "FAILED", f"Stalled: {error}; moved to dlq", error
    text = f"Stalled: lease expired on attempt {attempts}; returned to the queue"
    return "QUEUED", text, None


def cancelled(actor: str | None) -> str:
    return f"{CANCELLED} by {actor}" if actor else CANCELLED


def replayed(actor: str) -> str:
    return f"Replayed from the DLQ by {actor}; the retry ladder starts again"

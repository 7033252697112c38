"""Herald's routes for notifications and their operation, each as a function building a ``Call``.

One function per route, named as the client's method; ``endpoints.py`` makes
each a method of ``Herald`` and ``AsyncHerald``. Templates, events and the
seeds' routes are in ``catalog_routes.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from .calls import (
    Call,
    Pager,
    bare,
    delete,
    enveloped,
    get,
    given,
    inner,
    nothing,
    paged,
    path,
    post,
    post_safe,
    put,
    text,
)
from .models import (
    ApiKey,
    BulkResult,
    Category,
    Channel,
    Health,
    MailboxMessage,
    NewApiKey,
    Notification,
    NotificationDetail,
    NotificationDraft,
    Page,
    Priority,
    Provider,
    QueueCleaned,
    QueueHealth,
    QueuePaused,
    Replayed,
    Scope,
    Stats,
    Status,
    Suppression,
    SuppressionDraft,
    SuppressionReason,
    SuppressionsAdded,
)

# -- notifications -------------------------------------------------------------------


def create_notification(
    *,
    type: Channel,
    recipient: str,
    message: str,
    subject: str | None = None,
    html: str | None = None,
    priority: Priority | None = None,
    metadata: dict[str, Any] | None = None,
    scheduled_at: datetime | None = None,
    delay_seconds: int | None = None,
    callback_url: str | None = None,
    category: str | None = None,
    ignore_suppression: bool | None = None,
    max_retries: int | None = None,
    idempotency_key: str | None = None,
) -> Call[Notification]:
    """Create a notification; answered once it is durably stored (``POST /api/notifications``)."""
    draft = NotificationDraft(
        type=type, recipient=recipient, message=message, subject=subject, html=html,
        priority=priority, metadata=metadata, scheduled_at=scheduled_at,
        delay_seconds=delay_seconds, callback_url=callback_url, category=category,
        ignore_suppression=ignore_suppression, max_retries=max_retries,
    )  # fmt: skip
    return post("/api/notifications", draft, enveloped(Notification), idempotency_key)


def create_bulk(
    notifications: Sequence[NotificationDraft],
    *,
    atomic: bool = False,
    idempotency_key: str | None = None,
) -> Call[BulkResult]:
    """Create up to 1,000 notifications: a result per item; ``atomic`` for all or nothing.

    When no item is valid (or one is, with ``atomic``), ``ValidationFailed`` is
    raised and its ``body["data"]["results"]`` says why for each.
    """
    body = {"notifications": list(notifications)}
    return post("/api/notifications/bulk", body, enveloped(BulkResult), idempotency_key,
                {"atomic": atomic or None})  # fmt: skip


def get_notification(notification_id: str) -> Call[NotificationDetail]:
    """A notification with its history (``logs``)."""
    return get(path("/api/notifications/{}", notification_id), enveloped(NotificationDetail))


def list_notifications(
    *,
    status: Status | None = None,
    type: Channel | None = None,
    priority: Priority | None = None,
    page: int = 1,
    limit: int = 20,
) -> Call[Page[Notification]]:
    """One page of notifications, newest first (``limit`` at most 100)."""
    params = {"status": status, "type": type, "priority": priority, "page": page, "limit": limit}
    return get("/api/notifications", _notification_page, params)


def iter_notifications(
    *,
    status: Status | None = None,
    type: Channel | None = None,
    priority: Priority | None = None,
    page_size: int = 100,
) -> Pager[Notification]:
    """Every notification matching the filters, newest first, fetched a page at a time."""
    return Pager(
        lambda number: list_notifications(
            status=status, type=type, priority=priority, page=number, limit=page_size
        )
    )


def cancel_notification(
    notification_id: str, *, idempotency_key: str | None = None
) -> Call[Notification]:
    """Cancel one that is queued, scheduled or retrying (``Conflict`` when in flight or final)."""
    where = path("/api/notifications/{}/cancel", notification_id)
    return post(where, None, enveloped(Notification), idempotency_key)


def delete_notification(notification_id: str) -> Call[None]:
    """Delete a SENT, FAILED or CANCELLED notification and its history."""
    return delete(path("/api/notifications/{}", notification_id), nothing)


_notification_page = paged(Notification, "notifications")

# -- the dead letter queue -----------------------------------------------------------


def list_dead_letters(
    *,
    type: Channel | None = None,
    error: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    limit: int = 20,
) -> Call[Page[Notification]]:
    """One page of dead letters (status FAILED), newest failure first; ``error``: text in the
    last error."""
    params = {"type": type, "error": error, "since": since, "until": until,
              "page": page, "limit": limit}  # fmt: skip
    return get("/api/dlq", _notification_page, params)


def iter_dead_letters(
    *,
    type: Channel | None = None,
    error: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page_size: int = 100,
) -> Pager[Notification]:
    """Every dead letter matching the filters. To replay or delete them, collect ids first, or
    use ``replay_dead_letters`` with the same filters."""
    return Pager(
        lambda number: list_dead_letters(
            type=type, error=error, since=since, until=until, page=number, limit=page_size
        )
    )


def replay_dead_letters(
    ids: Sequence[str] | None = None,
    *,
    type: Channel | None = None,
    error: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    every: bool = False,
    limit: int | None = None,
    idempotency_key: str | None = None,
) -> Call[Replayed]:
    """Back to QUEUED with a fresh ladder: ``ids``, or those matching the filters (``every``:
    every dead letter), up to ``limit``."""
    where = given(type=type, error=error, since=since, until=until)
    if ids is not None:
        if where or every:
            raise ValueError("give ids or filters, not both")
        body: dict[str, Any] = {"ids": list(ids)}
    elif where or every:
        body = given(filter=where, limit=limit)
    else:
        raise ValueError("give ids, a filter, or every=True")
    return post("/api/dlq/replay", body, enveloped(Replayed), idempotency_key)


def delete_dead_letter(notification_id: str) -> Call[None]:
    return delete(path("/api/dlq/{}", notification_id), nothing)


# -- lanes, figures and the process ----------------------------------------------------


def stats() -> Call[Stats]:
    """Totals by status, type and priority; queue depth; success rate."""
    return get("/api/notifications/stats/system", enveloped(Stats))


def health() -> Call[Health]:
    """The process's health; read whether it answers 200 or 503 (``status`` says which)."""
    return Call("GET", "/api/health", bare(Health), accept=frozenset({200, 503}))


def queue_health() -> Call[QueueHealth]:
    """Per lane: waiting, active, delayed, completed, failed, paused."""
    return get("/api/queue-health", enveloped(QueueHealth))


def pause_queue(name: str) -> Call[QueuePaused]:
    """Stop claiming from a lane (the seeds' names too: ``mail``, ``notifications``...)."""
    return post_safe(path("/api/queue/{}/pause", name), None, enveloped(QueuePaused))


def resume_queue(name: str) -> Call[QueuePaused]:
    return post_safe(path("/api/queue/{}/resume", name), None, enveloped(QueuePaused))


def clean_queue(
    name: str,
    *,
    status: Literal["completed", "failed", "cancelled"],
    older_than: int,
    limit: int | None = None,
    idempotency_key: str | None = None,
) -> Call[QueueCleaned]:
    """Delete the caller's ``completed``, ``failed`` or ``cancelled`` rows of a lane older than
    ``older_than`` seconds, with their history."""
    body = given(status=status, olderThan=older_than, limit=limit)
    return post(path("/api/queue/{}/clean", name), body, enveloped(QueueCleaned), idempotency_key)


def providers() -> Call[list[Provider]]:
    """Each provider's channels, rate limit and every worker's circuit breaker."""
    return get("/api/providers", enveloped(list[Provider]))


def mailbox(*, type: Channel | None = None, limit: int = 50) -> Call[list[MailboxMessage]]:
    """What the capture provider kept instead of sending, newest first."""
    params = {"type": type, "limit": limit}
    return get("/api/mailbox", inner(list[MailboxMessage], "messages"), params)


def metrics() -> Call[str]:
    """Prometheus' text format (a key with the ``admin`` scope)."""
    return get("/api/metrics", text)


# -- keys --------------------------------------------------------------------------


def create_key(
    name: str,
    scopes: Sequence[Scope],
    *,
    expires_in_days: float | None = None,
    rate_limit: str | None = None,
    tenant: str | None = None,
    idempotency_key: str | None = None,
) -> Call[NewApiKey]:
    """A new key; its secret (``key``) is in this answer and nowhere else."""
    body = given(name=name, scopes=list(scopes), expiresInDays=expires_in_days,
                 rateLimit=rate_limit, tenant=tenant)  # fmt: skip
    return post("/api/keys", body, enveloped(NewApiKey), idempotency_key)


def list_keys(*, tenant: str | None = None, revoked: bool = False) -> Call[list[ApiKey]]:
    params = {"tenant": tenant, "revoked": revoked or None}
    return get("/api/keys", inner(list[ApiKey], "keys"), params)


def revoke_key(key_id: str) -> Call[None]:
    """Revoke a key by id or prefix; every process refuses it within seconds."""
    return delete(path("/api/keys/{}", key_id), nothing)


# -- suppressions and categories -------------------------------------------------------


def list_suppressions(
    *,
    recipient: str | None = None,
    reason: SuppressionReason | None = None,
    page: int = 1,
    limit: int = 20,
) -> Call[Page[Suppression]]:
    params = {"recipient": recipient, "reason": reason, "page": page, "limit": limit}
    return get("/api/suppressions", _suppression_page, params)


def iter_suppressions(
    *,
    recipient: str | None = None,
    reason: SuppressionReason | None = None,
    page_size: int = 100,
) -> Pager[Suppression]:
    return Pager(
        lambda number: list_suppressions(
            recipient=recipient, reason=reason, page=number, limit=page_size
        )
    )


def add_suppression(
    recipient: str,
    *,
    category: str | None = None,
    reason: SuppressionReason | None = None,
    detail: str | None = None,
    idempotency_key: str | None = None,
) -> Call[SuppressionsAdded]:
    """Stop sending to ``recipient`` (in ``category``, or in every one)."""
    body = SuppressionDraft(recipient=recipient, category=category, reason=reason, detail=detail)
    return post("/api/suppressions", body, enveloped(SuppressionsAdded), idempotency_key)


def add_suppressions(
    items: Sequence[SuppressionDraft], *, idempotency_key: str | None = None
) -> Call[SuppressionsAdded]:
    """Up to 1,000 entries in one request."""
    body = {"items": list(items)}
    return post("/api/suppressions", body, enveloped(SuppressionsAdded), idempotency_key)


def remove_suppression(recipient: str, *, category: str | None = None) -> Call[int]:
    """Every entry of ``recipient``, or ``category``'s only (``""``: the every-category one);
    the number removed."""
    where = path("/api/suppressions/{}", recipient)
    return delete(where, inner(int, "removed"), {"category": category})


def list_categories() -> Call[list[Category]]:
    return get("/api/categories", inner(list[Category], "categories"))


def put_category(
    name: str, *, unsubscribable: bool, description: str | None = None
) -> Call[Category]:
    """Create or change a category (whether its recipients may unsubscribe from it)."""
    body = given(unsubscribable=unsubscribable, description=description)
    return put(path("/api/categories/{}", name), body, enveloped(Category))


def delete_category(name: str) -> Call[None]:
    return delete(path("/api/categories/{}", name), nothing)


_suppression_page = paged(Suppression, "suppressions")

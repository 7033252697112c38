"""A Python client for Herald's HTTP API, sync (``Herald``) and async (``AsyncHerald``).

It imports httpx, msgspec and the standard library only, never the server::

    from herald.client import Herald

    with Herald("http://127.0.0.1:8000", key) as herald:
        sent = herald.create_notification(
            type="EMAIL", recipient="ada@example.com", subject="Hi", message="Hello"
        )
        print(herald.get_notification(sent.id).logs)

Every POST that creates or changes something carries an ``Idempotency-Key``
(a fresh UUID per call, or the caller's ``idempotency_key``), reused by that
call's retries, so a retry never does the work twice. ``429`` and ``503`` are
retried after their ``Retry-After``; a lost answer is retried when that is
safe (``RetryPolicy``). Errors are ``APIError`` subclasses (``errors.py``).
"""

from .catalog import (
    Event,
    EventAccepted,
    EventDetail,
    EventType,
    EventTypeDeleted,
    NotificationBrief,
    Queued,
    Rendered,
    SeedRecord,
    Signup,
    SignupStatistics,
    SignupStatus,
    Target,
    Template,
    TemplateDeleted,
    TemplateRef,
    WelcomeEmail,
    WelcomeEmailDetail,
)
from .clients import AsyncHerald, Herald
from .errors import (
    APIError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    FieldError,
    Forbidden,
    Gone,
    HeraldClientError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    UnsupportedMedia,
    ValidationFailed,
)
from .models import (
    ApiKey,
    Breaker,
    BulkItem,
    BulkResult,
    Category,
    Health,
    LogEntry,
    LoopHealth,
    MailboxMessage,
    NewApiKey,
    Notification,
    NotificationDetail,
    NotificationDraft,
    Page,
    Pagination,
    Provider,
    QueueCleaned,
    QueueCounts,
    QueueHealth,
    QueuePaused,
    Replayed,
    Stats,
    Suppression,
    SuppressionDraft,
    SuppressionsAdded,
)
from .retrying import RetryPolicy

__all__ = [
    "APIError",
    "ApiKey",
    "AsyncHerald",
    "BadRequest",
    "Breaker",
    "BulkItem",
    "BulkResult",
    "Category",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "EventAccepted",
    "EventDetail",
    "EventType",
    "EventTypeDeleted",
    "FieldError",
    "Forbidden",
    "Gone",
    "Health",
    "Herald",
    "HeraldClientError",
    "LogEntry",
    "LoopHealth",
    "MailboxMessage",
    "NewApiKey",
    "NotFound",
    "Notification",
    "NotificationBrief",
    "NotificationDetail",
    "NotificationDraft",
    "Page",
    "Pagination",
    "PayloadTooLarge",
    "Provider",
    "QueueCleaned",
    "QueueCounts",
    "QueueHealth",
    "QueuePaused",
    "Queued",
    "RateLimited",
    "Rendered",
    "Replayed",
    "RetryPolicy",
    "SeedRecord",
    "ServerError",
    "Signup",
    "SignupStatistics",
    "SignupStatus",
    "Stats",
    "Suppression",
    "SuppressionDraft",
    "SuppressionsAdded",
    "Target",
    "Template",
    "TemplateDeleted",
    "TemplateRef",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "UnsupportedMedia",
    "ValidationFailed",
    "WelcomeEmail",
    "WelcomeEmailDetail",
]

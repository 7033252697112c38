"""What Herald answers about notifications, lanes, keys and suppressions, as typed values.

Attributes are snake_case; on the wire they are Herald's camelCase
(``retry_count`` is ``retryCount``). Fields Herald adds later are ignored, so an
older client keeps working against a newer server. Statuses, channels and
priorities are kept as the strings Herald sends (``"SENT"``, ``"EMAIL"``),
so a status added later does not break reading.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import msgspec

from .errors import FieldError

T = TypeVar("T")

Channel = Literal["EMAIL", "SMS", "PUSH", "WEBHOOK", "CHAT"]
Priority = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
Status = Literal[
    "PENDING", "QUEUED", "SCHEDULED", "PROCESSING", "RETRYING", "SENT", "FAILED", "CANCELLED",
    "DELIVERED", "BOUNCED", "UNDELIVERED", "COMPLAINED", "SUPPRESSED",
]  # fmt: skip
Scope = Literal["send", "read", "manage", "admin"]
SuppressionReason = Literal["bounce", "complaint", "unsubscribe", "manual"]


class Model(msgspec.Struct, rename="camel", kw_only=True):
    """An answer's value, camelCase on the wire."""


class NotificationDraft(msgspec.Struct, rename="camel", frozen=True, kw_only=True,
                        omit_defaults=True):  # fmt: skip
    """A notification to create (one of a bulk request); unset fields take Herald's defaults.

    A naive ``scheduled_at`` is read as UTC.
    """

    type: Channel
    recipient: str
    message: str
    subject: str | None = None
    html: str | None = None
    priority: Priority | None = None
    metadata: dict[str, Any] | None = None
    scheduled_at: datetime | None = None
    delay_seconds: int | None = None
    callback_url: str | None = None
    category: str | None = None
    ignore_suppression: bool | None = None
    max_retries: int | None = None


class Notification(Model):
    id: str
    job_id: str
    type: str
    recipient: str
    subject: str | None
    message: str
    html: str | None
    status: str
    priority: str
    queue: str
    attempts: int
    retry_count: int
    max_retries: int
    metadata: dict[str, Any]
    scheduled_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    error: str | None
    provider: str | None
    provider_message_id: str | None
    processing_time_ms: float | None
    created_at: datetime
    updated_at: datetime
    callback_url: str | None = None
    category: str | None = None
    ignore_suppression: bool = False


class LogEntry(Model):
    """One step of a notification's history: a state it entered, an attempt's outcome."""

    id: int = msgspec.field(name="_id")
    notification_id: str
    status: str
    message: str
    timestamp: datetime
    metadata: dict[str, Any]


class NotificationDetail(Model):
    notification: Notification
    logs: list[LogEntry]


class Pagination(Model):
    current_page: int
    total_pages: int
    total_items: int
    items_per_page: int


class Page(msgspec.Struct, Generic[T]):
    """One page of a list; ``Herald.iter_*`` walks every page."""

    items: list[T]
    pagination: Pagination


class BulkItem(Model):
    index: int
    status: str  # "accepted" or "rejected"
    id: str | None = None
    notification_status: str | None = None
    errors: list[FieldError] = msgspec.field(default_factory=list)


class BulkResult(Model):
    accepted: int
    rejected: int
    atomic: bool
    results: list[BulkItem]


class Stats(Model):
    total: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    by_priority: dict[str, int]
    queue_depth: dict[str, int]
    average_processing_time: float
    success_rate: float


class LoopHealth(Model):
    state: str
    restarts: int
    last_error: str | None
    last_error_at: float | None
    last_success_at: float | None


class Health(Model):
    """``status`` is ``healthy``, ``degraded`` or ``unhealthy`` (answered 503, still read)."""

    status: str
    timestamp: datetime
    services: dict[str, str]
    uptime: float
    instance: str
    loops: dict[str, LoopHealth] = msgspec.field(default_factory=dict)


class MailboxMessage(Model):
    id: str
    notification_id: str
    type: str
    recipient: str
    subject: str | None
    message: str
    html: str | None
    received_at: datetime


class QueueCounts(Model):
    waiting: int
    active: int
    delayed: int
    completed: int
    failed: int
    paused: bool


class QueueHealth(Model):
    status: str
    timestamp: datetime
    queues: dict[str, QueueCounts]


class QueuePaused(Model):
    queue: str
    paused: bool
    lanes: list[str]


class QueueCleaned(Model):
    queue: str
    status: str
    older_than: int
    removed: int


class Replayed(Model):
    replayed: int
    ids: list[str]


class Breaker(Model):
    instance: str
    destination: str | None
    state: str
    failures: int
    changed_at: datetime


class Provider(Model):
    name: str
    channels: list[str]
    rate_per_second: float | None
    breakers: list[Breaker]


class ApiKey(Model):
    id: str
    prefix: str
    name: str
    tenant: str
    scopes: list[str]
    rate_limit: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKey(ApiKey):
    key: str  # the secret: in this answer only, never again


class Suppression(Model):
    recipient: str
    category: str | None
    reason: str
    detail: str | None
    notification_id: str | None
    created_at: datetime | None


class SuppressionDraft(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One entry of ``add_suppressions(items=[...])``."""

    recipient: str
    category: str | None = None
    reason: SuppressionReason | None = None
    detail: str | None = None


class SuppressionsAdded(Model):
    added: int  # new to the list
    received: int  # in the request; entries already listed are kept as they were


class Category(Model):
    name: str
    unsubscribable: bool
    description: str | None
    created_at: datetime | None
    updated_at: datetime | None

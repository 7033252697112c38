"""HTTP bodies: what clients send and what they get back (seed 004 shapes).

Field names are the seeds' camelCase. Responses are built as plain dicts on
the hot path (``present.py``); these models describe them for OpenAPI, and a
test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
)

from ..models import Channel
from ..retry import Policy
from ..suppressions import CATEGORY_NAME
from . import validation

PriorityName = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
StatusName = Literal[
    "PENDING", "QUEUED", "SCHEDULED", "PROCESSING", "RETRYING", "SENT", "FAILED", "CANCELLED",
    "DELIVERED", "BOUNCED", "UNDELIVERED", "COMPLAINED", "SUPPRESSED",
]  # fmt: skip
T = TypeVar("T")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


#: A status a filter takes, in any case: the seeds wrote ``sent``, ``failed``, ``pending``.
StatusFilter = Annotated[StatusName, BeforeValidator(_upper)]


def _has_breaks(value: str) -> bool:
    """Whether ``value`` holds CR, LF or NUL: three substring tests, cheaper than a loop."""
    return "\r" in value or "\n" in value or "\0" in value


class NotificationIn(BaseModel):
    """A notification to deliver (``POST /api/notifications``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "EMAIL",
                    "recipient": "user@example.com",
                    "subject": "Welcome to WaveCom",
                    "message": "Thank you for signing up!",
                    "priority": "HIGH",
                    "metadata": {"userId": "12345", "campaign": "onboarding"},
                }
            ]
        },
    )

    type: Channel = Field(description="The channel to deliver through.")
    recipient: str = Field(
        min_length=1,
        max_length=4096,
        description="Email address, E.164 phone number, device token, webhook URL or chat URL, "
        "matching `type`.",
    )
    subject: str | None = Field(
        None, max_length=998, validate_default=True, description="Required for EMAIL."
    )
    message: str = Field(min_length=1, max_length=5000, description="The text body.")
    html: str | None = Field(
        None, max_length=200_000, description="Optional HTML alternative (EMAIL only)."
    )
    priority: PriorityName = "MEDIUM"
    metadata: dict[str, Any] = Field(default_factory=dict)
    scheduledAt: datetime | None = Field(
        None, description="Deliver at this time (ISO 8601); a past time means now."
    )
    callbackUrl: str | None = Field(
        None,
        max_length=2048,
        description="Told how this notification ended (SENT or FAILED), by a signed webhook.",
    )
    delaySeconds: int | None = Field(
        None,
        ge=0,
        le=31_536_000,
        validate_default=True,
        description="Deliver this many seconds from now (instead of `scheduledAt`).",
    )
    category: str | None = Field(
        None,
        max_length=64,
        description="What kind of message this is (`newsletter`): a slug matching "
        "`^[a-z0-9][a-z0-9_.-]{0,63}$`. Suppressions and one-click unsubscribe work per "
        "category.",
        examples=["newsletter"],
        json_schema_extra={"pattern": f"^{CATEGORY_NAME}$"},
    )
    ignoreSuppression: StrictBool = Field(
        False,
        description="Deliver even if the recipient is on the suppression list (a password "
        "reset must go). Needs a credential with the `manage` scope.",
    )
    maxRetries: int | None = Field(
        None,
        ge=0,
        description="Retry at most this many times, fewer than the channel's retry policy "
        'gives (README "Retry ladder"); more is refused.',
    )

    @field_validator("recipient")
    @classmethod
    def _recipient(cls, value: str, info: ValidationInfo) -> str:
        channel = info.data.get("type")
        if _has_breaks(value):
            raise ValueError("must not contain line breaks or NUL")
        return validation.RECIPIENT[channel](value.strip()) if channel else value

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _has_breaks(value):
            raise ValueError("must not contain line breaks (CR/LF) or NUL")
        if info.data.get("type") is Channel.EMAIL and not (value and value.strip()):
            raise ValueError("is required for EMAIL")
        return value

    @field_validator("html")
    @classmethod
    def _html(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("type") not in (Channel.EMAIL, None):
            raise ValueError("is only for EMAIL")
        return value

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        validation.finite_json(value)
        try:
            orjson.dumps(value)
        except TypeError as exc:  # integers beyond 64 bits, mostly
            raise ValueError(f"must be storable JSON ({exc})") from None
        return value

    @field_validator("scheduledAt")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return None if value is None else validation.schedule(value)

    @field_validator("callbackUrl")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        return None if value is None else validation.http_url(value)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str | None) -> str | None:
        return None if value is None else validation.category(value)

    @field_validator("delaySeconds")
    @classmethod
    def _one_schedule(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("scheduledAt") is not None:
            raise ValueError("give either scheduledAt or delaySeconds, not both")
        return value

    def retries_error(self, policy: Policy) -> dict[str, str] | None:
        """The field error for a ``maxRetries`` beyond the channel's ladder (it depends on the
        settings, so the routes ask, after the model's own checks)."""
        if self.maxRetries is None:
            return None
        try:
            policy.check_retries(self.type, self.maxRetries)
        except ValueError as exc:
            return {"field": "maxRetries", "message": str(exc)}
        return None

    def due_at(self, now: float) -> float | None:
        """When to deliver, as POSIX seconds; None for now."""
        if self.delaySeconds:
            return now + self.delaySeconds
        return self.scheduledAt.timestamp() if self.scheduledAt else None


class NotificationOut(BaseModel):
    id_: str = Field(alias="_id")
    id: str
    jobId: str = Field(description="The id again, as seed 002 named it: the row is the job.")
    type: Channel
    recipient: str
    subject: str | None
    message: str
    html: str | None
    status: StatusName
    priority: PriorityName
    queue: str
    attempts: int
    retryCount: int
    maxRetries: int
    metadata: dict[str, Any]
    scheduledAt: str | None
    sentAt: str | None
    failedAt: str | None
    error: str | None
    provider: str | None
    providerMessageId: str | None
    processingTimeMs: float | None
    createdAt: str
    updatedAt: str
    callbackUrl: str | None = None
    category: str | None = None
    ignoreSuppression: bool = False
    requestId: str | None = Field(
        None, description="The X-Request-Id of the request that created it, as the logs show."
    )


class LogOut(BaseModel):
    id_: int = Field(alias="_id")
    notificationId: str
    status: StatusName
    message: str
    timestamp: str
    metadata: dict[str, Any]


class Envelope(BaseModel, Generic[T]):
    success: Literal[True] = True
    data: T
    message: str | None = None


class NotificationDetail(BaseModel):
    notification: NotificationOut
    logs: list[LogOut]


class Pagination(BaseModel):
    currentPage: int
    totalPages: int
    totalItems: int
    itemsPerPage: int


class NotificationList(BaseModel):
    notifications: list[NotificationOut]
    pagination: Pagination


class SystemStats(BaseModel):
    total: int
    byStatus: dict[str, int]
    byType: dict[str, int]
    byPriority: dict[str, int]
    queueDepth: dict[str, int] = Field(
        description="Per lane: waiting, delayed and active. Seed 004's names too, waiting "
        "(due or delayed) only: `notifications` (QUEUED or SCHEDULED, LOW or MEDIUM), "
        "`high_priority` (QUEUED or SCHEDULED, HIGH or CRITICAL), `retry` (RETRYING)."
    )
    averageProcessingTime: float
    successRate: float


class LoopHealth(BaseModel):
    """One background loop (sweeper, flusher, listener, ...) under supervision."""

    state: Literal["running", "restarting", "crash-looping", "stopped", "dead"] = Field(
        description="crash-looping or dead makes the whole process unhealthy"
    )
    restarts: int = Field(description="restarts after a failure since the process started")
    lastError: str | None
    lastErrorAt: float | None = Field(description="POSIX seconds")
    lastSuccessAt: float | None = Field(description="POSIX seconds of its last progress")


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    services: dict[str, str]
    uptime: float
    instance: str
    loops: dict[str, LoopHealth] = Field(description="every background loop, by name")


class MailboxItem(BaseModel):
    id: str
    notificationId: str
    type: Channel
    recipient: str
    subject: str | None
    message: str
    html: str | None
    receivedAt: str


class Mailbox(BaseModel):
    messages: list[MailboxItem]


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    success: Literal[False] = False
    message: str
    errors: list[FieldError] = Field(default_factory=list)

"""HTTP bodies of templates, event types and events: what clients send and get back.

Like ``schemas.py``: responses are built as plain dicts (``eventviews.py``);
these models describe them for OpenAPI, and the tests validate answers
against them. The seed routes' bodies are in ``seedschemas.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ..models import Channel
from ..templates import NAME
from . import validation
from .schemas import Pagination, PriorityName, StatusName

NamePattern = NAME.pattern
#: Event data: any JSON object, but only JSON (no NaN or Infinity).
JsonData = Annotated[dict[str, Any], AfterValidator(validation.finite_json)]


class Storable(BaseModel):
    """Refuses what the store cannot keep as JSON (integers past 64 bits, lone surrogates)."""

    @model_validator(mode="after")
    def _storable(self) -> Self:
        try:
            orjson.dumps(self.model_dump())
        except TypeError as exc:
            raise ValueError(f"must be storable JSON ({exc})") from None
        return self


class TemplateBody(Storable):
    model_config = ConfigDict(extra="forbid")

    channel: Channel = Channel.EMAIL
    locale: str = Field("en", min_length=2, max_length=35, description="en, fr, pt-BR, ...")
    subject: str | None = Field(None, max_length=2000, description="Required for EMAIL.")
    text: str = Field(min_length=1, max_length=100_000, description="The text body template.")
    html: str | None = Field(
        None, max_length=200_000, description="Optional HTML template (EMAIL), autoescaped."
    )


class TemplateIn(TemplateBody):
    """A new template variant (``POST /api/templates``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "order-shipped",
                    "channel": "EMAIL",
                    "locale": "en",
                    "subject": "Order {{ orderId }} is on its way",
                    "text": "Hi {{ firstName }}, order {{ orderId }} ships today.",
                    "html": "<p>Hi {{ firstName }}, order <b>{{ orderId }}</b> ships today.</p>",
                }
            ]
        },
    )

    name: str = Field(pattern=NamePattern, description="Lower-case letters, digits, . _ -")


class RenderIn(Storable):
    """A preview (``POST /api/templates/{name}/render``); nothing is stored or sent."""

    model_config = ConfigDict(extra="forbid")

    data: JsonData = Field(default_factory=dict)
    channel: Channel = Channel.EMAIL
    locale: str = Field("en", min_length=2, max_length=35)
    version: int | None = Field(None, ge=1, le=1_000_000_000)


class TemplateOut(BaseModel):
    name: str
    channel: Channel
    locale: str
    version: int = Field(description="0 for a built-in template")
    subject: str | None
    text: str
    html: str | None
    builtin: bool
    createdAt: str | None


class TemplateList(BaseModel):
    templates: list[TemplateOut]


class TemplateDetail(BaseModel):
    name: str
    templates: list[TemplateOut]


class TemplateDeleted(BaseModel):
    name: str
    deleted: int = Field(description="Stored versions deleted")
    builtinRemains: bool


class TemplateRef(BaseModel):
    name: str
    channel: Channel
    version: int
    locale: str


class RenderOut(BaseModel):
    subject: str | None
    text: str
    html: str | None
    template: TemplateRef


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel = Channel.EMAIL
    template: str = Field(pattern=NamePattern)
    priority: PriorityName = "MEDIUM"
    recipientField: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Field of the event's data holding the recipient (dotted for nested); "
        "unset: the event's `recipient`, or `data.email`.",
    )


class EventTypeBody(Storable):
    model_config = ConfigDict(extra="forbid")

    description: str = Field("", max_length=500)
    targets: list[TargetIn] = Field(min_length=1, max_length=20)
    redact: list[str] = Field(
        default_factory=list,
        max_length=50,
        description='Fields templates may use, stored as "[redacted]".',
    )
    hash: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Fields dropped before rendering, stored only as scrypt hashes.",
    )
    verify: bool = Field(False, description="Issue a one-time verification token.")


class EventTypeIn(EventTypeBody):
    """A new event type (``POST /api/event-types``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "order-shipped",
                    "description": "An order left the warehouse",
                    "targets": [
                        {"channel": "EMAIL", "template": "order-shipped", "priority": "MEDIUM"}
                    ],
                }
            ]
        },
    )

    name: str = Field(pattern=NamePattern)


class TargetOut(BaseModel):
    channel: Channel
    template: str
    priority: PriorityName
    recipientField: str | None


class EventTypeOut(BaseModel):
    name: str
    description: str
    targets: list[TargetOut]
    redact: list[str]
    hash: list[str]
    verify: bool
    source: Literal["builtin", "file", "api"]


class EventTypeList(BaseModel):
    eventTypes: list[EventTypeOut]


class EventTypeDeleted(BaseModel):
    name: str
    now: EventTypeOut | None = Field(description="The file or built-in type now in force")


class EventIn(Storable):
    """An event to fan out (``POST /api/events``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "login",
                    "recipient": "test@example.com",
                    "data": {
                        "username": "testuser",
                        "ipAddress": "192.168.1.1",
                        "userAgent": "Mozilla/5.0",
                    },
                }
            ]
        },
    )

    type: str = Field(min_length=1, max_length=64)
    recipient: str | None = Field(
        None, max_length=4096, description="Default recipient; unset: `data.email`."
    )
    locale: str | None = Field(None, min_length=2, max_length=35)
    data: JsonData = Field(default_factory=dict)


class EventOut(BaseModel):
    id_: str = Field(alias="_id")
    id: str
    type: str
    recipient: str | None
    data: dict[str, Any] = Field(description="As given, with secrets redacted or dropped")
    notificationIds: list[str]
    verified: bool | None = Field(description="null for event types without verification")
    verifiedAt: str | None
    createdAt: str


class EventAccepted(BaseModel):
    event: EventOut
    notificationIds: list[str]


class NotificationBrief(BaseModel):
    id_: str = Field(alias="_id")
    type: Channel
    recipient: str
    status: StatusName
    priority: PriorityName
    template: dict[str, Any] | None


class EventDetail(BaseModel):
    event: EventOut
    notifications: list[NotificationBrief]


class EventList(BaseModel):
    events: list[EventOut]
    pagination: Pagination

"""What Herald answers about templates, events, event types and the seeds' records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from .models import Channel, LogEntry, Model, Priority


class Template(Model):
    name: str
    channel: str
    locale: str
    version: int
    subject: str | None
    text: str
    html: str | None
    builtin: bool
    created_at: datetime | None


class TemplateRef(Model):
    name: str
    channel: str
    version: int
    locale: str


class Rendered(Model):
    """A template's preview: nothing was stored or sent."""

    subject: str | None
    text: str
    html: str | None
    template: TemplateRef


class TemplateDeleted(Model):
    name: str
    deleted: int
    builtin_remains: bool


class Target(msgspec.Struct, rename="camel", frozen=True, kw_only=True, omit_defaults=True):
    """One notification an event type sends: through ``channel``, rendered by ``template``.

    ``recipient_field`` is a (dotted) field of the event's ``data``; unset, the
    event's ``recipient``.
    """

    template: str
    channel: Channel | str = "EMAIL"
    priority: Priority | str = "MEDIUM"
    recipient_field: str | None = None


class EventType(Model):
    name: str
    description: str
    targets: list[Target]
    redact: list[str]
    hash: list[str]
    verify: bool
    source: str  # builtin, file or api


class EventTypeDeleted(Model):
    name: str
    now: EventType | None  # the file or built-in type of that name, uncovered


class Event(Model):
    id: str
    type: str
    recipient: str | None
    data: dict[str, Any]
    notification_ids: list[str]
    verified: bool | None
    verified_at: datetime | None
    created_at: datetime


class EventAccepted(Model):
    event: Event
    notification_ids: list[str]


class NotificationBrief(Model):
    id: str = msgspec.field(name="_id")
    type: str
    recipient: str
    status: str
    priority: str
    template: dict[str, Any] | None


class EventDetail(Model):
    event: Event
    notifications: list[NotificationBrief]


class SeedRecord(Model):
    """A login, password reset, purchase or friend request: the event and what it sent."""

    id: str
    type: str
    notification_ids: list[str]
    notifications: list[NotificationBrief]
    created_at: datetime


class Queued(Model):
    """Seed 003's answer to ``POST /api/notify``."""

    status: str
    message_id: str


class WelcomeEmail(Model):
    status: str  # seed 001's words: pending, queued, sending, sent, delivered, failed, ...
    notification_status: str | None
    notification_id: str | None
    attempts: int
    message_id: str | None
    error: str | None
    sent_at: datetime | None


class WelcomeEmailDetail(WelcomeEmail):
    delivery_history: list[LogEntry]


class SignupStatus(Model):
    signup_id: str
    user_id: int | str | None
    email: str | None
    email_verified: bool
    welcome_email: WelcomeEmailDetail


class Signup(Model):
    id: str
    user_id: int | str | None
    username: str | None
    email: str | None
    first_name: str | None
    last_name: str | None
    email_verified: bool
    verified_at: datetime | None
    welcome_email: WelcomeEmail
    created_at: datetime
    updated_at: datetime


class SignupStatistics(Model):
    total_signups: int
    verified_signups: int
    unverified_signups: int
    verification_rate: float
    signups_last24h: int = msgspec.field(name="signupsLast24h")
    welcome_emails: dict[str, int]

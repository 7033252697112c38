"""The memory store's tables: plain Python containers, one per table of the SQL stores.

Several ``MemoryStore`` objects may share one ``Tables``, as several
processes share one database. Values a caller could change after handing
them over (metadata, event data, definitions) are kept as JSON text, as the
SQL stores keep them, so a read never returns the object that was written.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...errors import StoreError
from ...models import (
    AuditEntry,
    Channel,
    MailboxMessage,
    Notification,
    Priority,
    Status,
    suppression_key,
)
from ..ports import BreakerState, IdempotencyRecord


class Conflict(StoreError):
    """A row with this key exists already (what a unique index refuses in the SQL stores)."""


@dataclass(slots=True)
class Row:
    """A notification as stored: the row is also the job, with its lease."""

    id: str
    tenant_id: str
    channel: Channel
    recipient: str
    subject: str | None
    body: str
    html: str | None
    metadata: bytes  # JSON
    priority: Priority
    status: Status
    queue: str
    due_at: float
    attempts: int
    stage: int
    idempotency_key: str | None
    provider: str | None
    provider_message_id: str | None
    last_error: str | None
    processing_ms: float | None
    scheduled_at: float | None
    created_at: float
    updated_at: float
    sent_at: float | None
    failed_at: float | None
    callback_url: str | None
    category: str | None = None
    ignore_suppression: bool = False
    max_retries: int | None = None
    request_id: str | None = None
    claim_token: str | None = None
    lease_until: float | None = None

    @classmethod
    def of(cls, note: Notification) -> Row:
        values = {f.name: getattr(note, f.name) for f in dataclasses.fields(note)}
        values["metadata"] = orjson.dumps(note.metadata)
        return cls(**values)

    def notification(self) -> Notification:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(Notification)}
        values["metadata"] = orjson.loads(self.metadata)
        return Notification(**values)

    def columns(self) -> dict[str, Any]:
        """The row as the SQL stores answer ``SELECT *`` (``notification_from_row`` reads it)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update(channel=self.channel.value, status=self.status.value,
                      priority=int(self.priority))  # fmt: skip
        return values


@dataclass(slots=True)
class Bucket:
    tokens: float
    updated_at: float
    paused_until: float


@dataclass(slots=True)
class Template:
    tenant_id: str
    name: str
    channel: str
    locale: str
    version: int
    subject: str | None
    body: str
    html: str | None
    created_at: float


@dataclass(slots=True)
class Event:
    id: str
    tenant_id: str
    type: str
    recipient: str | None
    data: bytes  # JSON
    hashed: bytes | None  # JSON
    verify_hash: str | None
    verified_at: float | None
    created_at: float


@dataclass(slots=True)
class Key:
    id: str
    tenant_id: str
    name: str
    prefix: str
    key_hash: str
    scopes: str
    rate_limit: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None = None
    revoked_at: float | None = None


@dataclass(slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    role: str
    password_hash: str
    disabled: bool
    created_at: float
    last_login_at: float | None = None


@dataclass(slots=True)
class Session:
    user_id: str
    csrf: str
    created_at: float
    seen_at: float


@dataclass(slots=True)
class Failures:
    failures: int
    first_at: float
    locked_until: float


@dataclass(slots=True)
class Tables:
    """Every table; ``checkpoint`` and ``restore`` make a write all-or-nothing."""

    notifications: dict[str, Row] = field(default_factory=dict)
    by_key: dict[tuple[str, str], str] = field(default_factory=dict)  # idempotency keys
    history: dict[str, list[AuditEntry]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    unregistered: dict[tuple[str, str], tuple[str | None, str, float]] = field(default_factory=dict)
    mailbox: list[MailboxMessage] = field(default_factory=list)
    idempotency: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)
    breakers: dict[tuple[str, str], BreakerState] = field(default_factory=dict)
    heartbeats: dict[str, float] = field(default_factory=dict)
    workers: dict[str, float] = field(default_factory=dict)  # name -> last seen
    templates: list[Template] = field(default_factory=list)
    event_types: dict[tuple[str, str], bytes] = field(default_factory=dict)  # JSON
    events: dict[str, Event] = field(default_factory=dict)
    #: Event id -> (position, notification id) in target order; position 0 is the primary.
    links: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    api_keys: dict[str, Key] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)  # by id
    sessions: dict[str, Session] = field(default_factory=dict)  # by token hash
    login_failures: dict[str, Failures] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    #: (tenant, recipient key, category) -> (reason, detail, notification id, created at)
    suppressions: dict[tuple[str, str, str], tuple[str, str | None, str | None, float]] = field(
        default_factory=dict
    )
    #: (tenant, name) -> (unsubscribable, description, created at, updated at)
    categories: dict[tuple[str, str], tuple[bool, str | None, float, float]] = field(
        default_factory=dict
    )
    receipt_seen: dict[str, float] = field(default_factory=dict)  # key -> until

    def checkpoint(self) -> Tables:
        """A copy to ``restore`` if the write that follows fails half-way."""
        return Tables(**{f.name: _copied(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def restore(self, saved: Tables) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(saved, f.name))

    def audit(
        self, note_id: str, status: str, message: str, at: float, meta: dict[str, Any] | None
    ) -> None:
        """Add an entry to a notification's history; ids count its entries from 1."""
        entries = self.history.setdefault(note_id, [])
        entries.append(AuditEntry(len(entries) + 1, note_id, Status(status), message, at,
                                  dict(meta or {})))  # fmt: skip

    def suppressed(self, row: Row) -> str | None:
        """Why ``row``'s recipient is suppressed for its category (as the SQL claims ask)."""
        key = suppression_key(row.recipient)
        for category in ("", row.category or ""):
            found = self.suppressions.get((row.tenant_id, key, category))
            if found is not None:
                return found[0]
        return None

    def unsubscribable(self, tenant_id: str, category: str | None) -> bool:
        found = None if category is None else self.categories.get((tenant_id, category))
        return found is not None and found[0]

    def forget(self, note_id: str) -> None:
        """Delete a notification with its history, kept messages and event links."""
        row = self.notifications.pop(note_id)
        if row.idempotency_key is not None:
            self.by_key.pop((row.tenant_id, row.idempotency_key), None)
        self.history.pop(note_id, None)
        self.mailbox = [m for m in self.mailbox if m.notification_id != note_id]
        for event_id, linked in self.links.items():
            self.links[event_id] = [(n, i) for n, i in linked if i != note_id]


def _copied(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: copy.copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy.copy(v) for v in value]
    return copy.copy(value)

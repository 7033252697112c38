"""Event types: what one domain event (a signup, a login) fans out to, and what is kept of it.

An event type lists its targets, each a channel, a template, a priority and
the field of the event's data that holds the recipient (none: the event's own
recipient). ``POST /api/events`` renders every target and stores the event with
its notifications in one transaction (``fanout.py``, ``Store.create_event``).

Event types come from three places; a later one replaces an earlier one of
the same name: the built-ins below, the JSON file named by
``HERALD_EVENT_TYPES_FILE`` (read once, at start), and ``/api/event-types``
(stored). Deleting a stored type uncovers the file's or built-in one.

Secrets in event data are declared per type and never stored in clear:
``hash`` fields (and any field named ``password``) are dropped before rendering
and kept only as a salted scrypt hash; ``redact`` fields (and any named
``resetToken`` or ``resetUrl``) may be rendered but are stored as
``"[redacted]"``; ``verify`` issues a one-time token for the templates
(``verificationToken``, ``verifyUrl``) and keeps only its SHA-256.

Errors::

    HeraldError
    └── EventError
        ├── UnknownEventType
        ├── EventTypeInvalid
        ├── EventTypeExists
        ├── BuiltinEventType      a built-in or file type cannot be deleted
        ├── RecipientInvalid
        └── VerificationFailed
            ├── TokenUnknown
            ├── TokenUsed
            └── TokenExpired
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import orjson

from .errors import HeraldError
from .models import Channel, Priority, Status
from .templates import NAME

#: Field names treated as secrets whatever the event type declares.
ALWAYS_HASH = ("password",)
#: Each hashed field costs ~40 ms of CPU (scrypt, on purpose): an event may carry
#: this many, each at most MAX_SECRET_LENGTH characters, so one request cannot
#: buy minutes of CPU with thousands of ``password`` fields.
MAX_HASHED_FIELDS = 4
MAX_SECRET_LENGTH = 1024
ALWAYS_REDACT = ("resetToken", "resetUrl")
SOURCES = ("builtin", "file", "api")


class EventError(HeraldError):
    """``fields`` pairs a field name with what is wrong with it, for the API's ``errors``."""

    def __init__(self, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class UnknownEventType(EventError):
    pass


class EventTypeInvalid(EventError):
    pass


class EventTypeExists(EventError):
    pass


class BuiltinEventType(EventError):
    pass


class RecipientInvalid(EventError):
    pass


class SecretsInvalid(EventError):
    """Too many fields to hash in one event, or one too long: hashing is slow on purpose."""


class VerificationFailed(EventError):
    pass


class TokenUnknown(VerificationFailed):
    pass


class TokenUsed(VerificationFailed):
    pass


class TokenExpired(VerificationFailed):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    channel: Channel
    template: str
    priority: Priority = Priority.MEDIUM
    recipient_field: str | None = None  # a dotted path into the data; None: the event's recipient


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    targets: tuple[Target, ...]
    description: str = ""
    redact: tuple[str, ...] = ()
    hash: tuple[str, ...] = ()
    verify: bool = False
    source: str = "api"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the API and the file spell it."""
        return {
            "name": self.name,
            "description": self.description,
            "targets": [
                {
                    "channel": t.channel.value,
                    "template": t.template,
                    "priority": t.priority.name,
                    "recipientField": t.recipient_field,
                }
                for t in self.targets
            ],
            "redact": list(self.redact),
            "hash": list(self.hash),
            "verify": self.verify,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event ready to store: its data already scrubbed of secrets (``fanout.py``)."""

    id: str
    tenant_id: str
    type: str
    recipient: str | None
    data: dict[str, Any]
    hashed: dict[str, str]  # dotted field path -> scrypt hash
    verify_hash: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: str
    tenant_id: str
    type: str
    recipient: str | None
    data: dict[str, Any]
    notification_ids: tuple[str, ...]  # in target order: the first is the primary one
    verifiable: bool
    verified_at: float | None
    created_at: float


@dataclass(frozen=True, slots=True)
class EventFilter:
    type: str | None = None
    primary_status: Status | None = None  # the status of the event's first notification
    user_id: str | None = None  # ``data.userId``, compared as text


@dataclass(frozen=True, slots=True)
class EventPage:
    items: list[EventRecord]
    total: int
    page: int
    limit: int


@dataclass(frozen=True, slots=True)
class EventStats:
    total: int
    verified: int
    recent: int  # created at or after the ``since`` asked for
    primary_by_status: dict[str, int] = field(default_factory=dict)


def parse(raw: Any, source: str = "api") -> EventType:
    """An event type from its JSON form; ``EventTypeInvalid`` names the first bad field."""
    if not isinstance(raw, Mapping):
        raise EventTypeInvalid(
            "an event type must be a JSON object", [("body", "must be an object")]
        )
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        _invalid("name", "must be 1 to 64 of a-z, 0-9, '.', '_' and '-', starting alphanumeric")
    targets = raw.get("targets")
    if not isinstance(targets, list) or not 1 <= len(targets) <= 20:
        _invalid("targets", "must list 1 to 20 targets")
    parsed = tuple(_target(t, f"targets.{i}") for i, t in enumerate(targets))
    lists = {}
    for key in ("redact", "hash"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            _invalid(key, "must be a list of field names")
        lists[key] = tuple(value)
    description = raw.get("description") or ""
    if not isinstance(description, str) or len(description) > 500:
        _invalid("description", "must be text of at most 500 characters")
    verify = raw.get("verify", False)
    if not isinstance(verify, bool):
        _invalid("verify", "must be true or false")
    return EventType(name, parsed, description, lists["redact"], lists["hash"], verify, source)


def _target(raw: Any, where: str) -> Target:
    if not isinstance(raw, Mapping):
        _invalid(where, "must be an object")
    try:
        channel = Channel(str(raw.get("channel", "EMAIL")).upper())
    except ValueError:
        _invalid(f"{where}.channel", "must be EMAIL, SMS, PUSH, WEBHOOK or CHAT")
    template = raw.get("template")
    if not isinstance(template, str) or not NAME.match(template):
        _invalid(f"{where}.template", "must name a template")
    priority = str(raw.get("priority", "MEDIUM")).upper()
    if priority not in Priority.__members__:
        _invalid(f"{where}.priority", "must be LOW, MEDIUM, HIGH or CRITICAL")
    recipient = raw.get("recipientField")
    if recipient is not None and (not isinstance(recipient, str) or not recipient.strip()):
        _invalid(f"{where}.recipientField", "must be a field name such as email or user.phone")
    return Target(channel, template, Priority[priority], recipient)


def _invalid(field_name: str, problem: str) -> NoReturn:
    raise EventTypeInvalid(f"{field_name} {problem}", [(field_name, problem)])


BUILTIN: tuple[EventType, ...] = (
    EventType(
        "signup",
        (Target(Channel.EMAIL, "welcome-email", Priority.HIGH),),
        "A user signed up: a welcome email with a one-time email verification link.",
        hash=("password",),
        verify=True,
        source="builtin",
    ),
    EventType(
        "login",
        (Target(Channel.EMAIL, "login-alert", Priority.HIGH),),
        "A user signed in: a security alert naming the IP address and user agent.",
        source="builtin",
    ),
    EventType(
        "reset-password",
        (Target(Channel.EMAIL, "password-reset", Priority.HIGH),),
        "A password reset was asked for: the reset code or link.",
        redact=("resetToken", "resetUrl"),
        source="builtin",
    ),
    EventType(
        "purchase",
        (Target(Channel.EMAIL, "purchase-receipt", Priority.MEDIUM),),
        "An order was placed: the receipt.",
        source="builtin",
    ),
    EventType(
        "friend-request",
        (Target(Channel.EMAIL, "friend-request", Priority.LOW, recipient_field="toEmail"),),
        "Someone asked to be friends: a note to the person asked.",
        source="builtin",
    ),
)


@functools.cache
def load_file(path: str) -> tuple[EventType, ...]:
    """The event types of a JSON file: a list, or ``{"eventTypes": [...]}``.

    Cached, so the types read at start (when settings are validated) are the
    ones served, whatever happens to the file later. Raises ``ValueError``
    naming the problem, which settings validation reports under the variable.
    """
    try:
        raw = orjson.loads(pathlib.Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if isinstance(raw, Mapping):
        raw = raw.get("eventTypes")
    if not isinstance(raw, list):
        raise ValueError(f'{path}: expected a list of event types or {{"eventTypes": [...]}}')
    found: dict[str, EventType] = {}
    for i, item in enumerate(raw):
        try:
            event_type = parse(item, source="file")
        except EventTypeInvalid as exc:
            raise ValueError(f"{path}: event type {i}: {exc}") from None
        if event_type.name in found:
            raise ValueError(f"{path}: event type {event_type.name!r} is defined twice")
        found[event_type.name] = event_type
    return tuple(found.values())


def named(types: Mapping[str, EventType], name: str) -> EventType | None:
    """The type ``name`` names: its own, else the one spelt with hyphens for underscores.

    Seed 001 wrote ``reset_password`` and ``friend_request`` for what Herald calls
    ``reset-password`` and ``friend-request``; a type really named with underscores wins.
    """
    return types.get(name) or types.get(name.replace("_", "-"))


def merged(file_types: Iterable[EventType], stored: Iterable[EventType]) -> dict[str, EventType]:
    """Every event type by name: built-ins, replaced by the file's, replaced by stored ones."""
    result = {t.name: t for t in BUILTIN}
    for layer in (file_types, stored):
        result.update({t.name: t for t in layer})
    return dict(sorted(result.items()))

"""What every receipt verifier shares: the event type, the request it reads, and bounds.

A provider tells Herald what became of a message it accepted (delivered,
bounced, marked as spam) by posting to a public endpoint. Each provider module
here is one pure function from the request to a list of ``ReceiptEvent`` that
either trusts the request by the provider's own scheme or raises
``ReceiptRefused`` naming what is wrong. The functions know no store and no
HTTP framework: the endpoint builds an ``Inbound`` from its request, passes
the clock's current time, the configured secret and a ``Seen`` set, and
applies what comes back.

Usage::

    request = Inbound(url=public_url, headers=request.headers, body=await request.body())
    try:
        events = mailgun.verify(request, signing_key=key, now=clock(), seen=seen)
    except ReceiptRefused as refused:
        log.warning("receipt_refused", provider="mailgun", reason=refused.reason)
        return Response(status_code=401)

Replays: a verifier claims a key in ``Seen`` (the token, signature or message
id) only once the request checked out, so a replay inside the window raises
``ReceiptReplayed``. An endpoint that then fails to apply the events should
release what it claimed, so that the provider's retry is taken: it can pass a
``Seen`` that records its claims for that purpose.
"""

from __future__ import annotations

import binascii
import math
from base64 import b64decode
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

import orjson

from ..errors import ReceiptRefused, ReceiptReplayed

__all__ = [
    "Inbound",
    "ReceiptEvent",
    "ReceiptKind",
    "ReceiptRefused",
    "ReceiptReplayed",
    "Seen",
    "SeenSet",
]

#: Bounds on what a request may carry before anything is parsed.
MAX_URL = 4096
MAX_HEADERS = 128
MAX_HEADER = 8192
#: Bounds on the values an event keeps: ids and addresses are refused past them,
#: a detail (diagnostic text) is cut.
MAX_ID = 998  # RFC 5322's line limit, so any real Message-ID fits
MAX_RECIPIENT = 512
MAX_TEXT = 4096
MAX_DETAIL = 500
#: Epoch seconds outside these are not a timestamp any provider sends.
_EARLIEST, _LATEST = 946_684_800.0, 4_102_444_800.0  # 2000-01-01, 2100-01-01


class ReceiptKind(StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"  # hard: the address will not take mail
    SOFT_BOUNCE = "soft_bounce"  # refused for now (mailbox full, blocked, greylisted)
    DEFERRED = "deferred"  # the provider is still trying
    COMPLAINED = "complained"  # marked as spam
    UNDELIVERED = "undelivered"  # SMS: the carrier could not deliver
    UNSUBSCRIBED = "unsubscribed"
    OTHER = "other"  # accepted, sent, opened, clicked: history only


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    """One provider event about one message and, where the provider says, one recipient.

    ``message_id`` is in the form Herald stored as the provider's ``Receipt``
    at send time, so the endpoint can look it up as it is. ``event_id`` is the
    provider's own id for the event, where it gives one; a provider record
    that names several recipients (SES) yields one event per recipient with
    the same ``event_id``.
    """

    provider: str
    message_id: str
    kind: ReceiptKind
    raw_type: str
    at: float
    recipient: str | None = None
    detail: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the endpoint received: the public URL it was posted to, headers, raw body.

    ``headers`` may be any mapping (a framework's case-insensitive one, or a
    plain dict); it is kept with lower-case names, so lookups do not depend
    on how the caller spelled them.
    """

    url: str
    headers: Mapping[str, str]
    body: bytes

    def __post_init__(self) -> None:
        if len(self.url) > MAX_URL:
            raise ReceiptRefused(f"the URL is longer than {MAX_URL} characters")
        if len(self.headers) > MAX_HEADERS:
            raise ReceiptRefused(f"more than {MAX_HEADERS} headers")
        object.__setattr__(self, "headers", {k.lower(): v for k, v in self.headers.items()})

    def header(self, name: str, limit: int = MAX_HEADER) -> str | None:
        value = self.headers.get(name.lower())
        if value is not None and len(value) > limit:
            raise ReceiptRefused(f"header {name} is longer than {limit} characters")
        return value

    def require(self, name: str, limit: int = MAX_HEADER) -> str:
        value = self.header(name, limit)
        if not value:
            raise ReceiptRefused(f"header {name} is missing")
        return value

    def bounded_body(self, limit: int) -> bytes:
        if len(self.body) > limit:
            raise ReceiptRefused(f"the body is larger than {limit} bytes")
        return self.body


class Seen(Protocol):
    """Keys already taken: a verifier claims one per request it trusts."""

    def claim(self, key: str, now: float, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; False if it is already recorded."""
        ...


class SeenSet:
    """An in-process ``Seen``: bounded, entries expire.

    Past ``capacity`` the oldest claims are forgotten first, so a flood of
    fresh (validly signed) requests can shorten what is remembered but never
    grow memory. Each process has its own; several API processes behind a
    balancer each refuse only the replays that reach them, which the
    monotonic statuses downstream make harmless.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._until: OrderedDict[str, float] = OrderedDict()

    def claim(self, key: str, now: float, ttl: float) -> bool:
        until = self._until.get(key)
        if until is not None and until > now:
            return False
        self._until.pop(key, None)
        while self._until:
            oldest, oldest_until = next(iter(self._until.items()))
            if oldest_until > now and len(self._until) < self.capacity:
                break
            del self._until[oldest]
        self._until[key] = now + ttl
        return True

    def release(self, key: str) -> None:
        """Forget a claim, so that the provider's retry of a request not applied is taken."""
        self._until.pop(key, None)


def claim(seen: Seen, key: str, now: float, ttl: float, what: str) -> None:
    if not seen.claim(key, now, ttl):
        raise ReceiptReplayed(f"{what} was already received")


def within(stamp: float, now: float, window: float, what: str) -> None:
    """Refuse a request signed too long ago (or too far ahead): a replay, or a stuck clock."""
    if abs(now - stamp) > window:
        raise ReceiptRefused(f"{what} is {now - stamp:+.0f}s from now, outside ±{window:.0f}s")


def load_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReceiptRefused(f"the body is not JSON: {exc}") from None


def base64_bytes(value: str, what: str) -> bytes:
    try:
        return b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptRefused(f"{what} is not base64") from None


def obj(value: object, what: str) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ReceiptRefused(f"{what} is not a JSON object")
    return value


def text(record: Mapping[str, object], key: str, where: str, limit: int = MAX_TEXT) -> str:
    value = optional_text(record, key, where, limit)
    if not value:
        raise ReceiptRefused(f"{where}: {key} is missing")
    return value


def optional_text(
    record: Mapping[str, object], key: str, where: str, limit: int = MAX_TEXT
) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReceiptRefused(f"{where}: {key} is not a string")
    if len(value) > limit:
        raise ReceiptRefused(f"{where}: {key} is longer than {limit} characters")
    return value


def message_id(value: str, where: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_ID or not value.isprintable():
        raise ReceiptRefused(f"{where}: the message id is empty, too long or not printable")
    return value


def bracketed(value: str, where: str) -> str:
    """An email Message-ID as Herald's SMTP provider stores it: ``<local@domain>``.

    Providers quote it with or without the angle brackets; Herald writes the
    header (and keeps the receipt) with them.
    """
    bare = message_id(value, where).removeprefix("<").removesuffix(">").strip()
    return message_id(f"<{message_id(bare, where)}>", where)


def recipient(value: str | None, where: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_RECIPIENT or not value.isprintable():
        raise ReceiptRefused(f"{where}: the recipient is too long or not printable")
    return value or None


def detail(*parts: object) -> str | None:
    """Diagnostic text for the history, from the parts a provider gives; cut to MAX_DETAIL."""
    joined = " ".join(str(part).strip() for part in parts if part not in (None, ""))
    joined = "".join(ch if ch.isprintable() else " " for ch in joined[: MAX_DETAIL * 2])
    if len(joined) > MAX_DETAIL:
        joined = joined[: MAX_DETAIL - 1] + "…"
    return joined or None


def epoch(value: object, where: str) -> float:
    """Epoch seconds from a JSON number or a string of digits."""
    if isinstance(value, bool):
        raise ReceiptRefused(f"{where} is not a timestamp")
    if isinstance(value, str) and 0 < len(value) <= 32:
        try:
            value = float(value)
        except ValueError:
            raise ReceiptRefused(f"{where} is not a timestamp") from None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise ReceiptRefused(f"{where} is not a timestamp")
    if not _EARLIEST <= value <= _LATEST:
        raise ReceiptRefused(f"{where} is out of range")
    return float(value)


def iso_epoch(value: object, where: str) -> float:
    """Epoch seconds from an ISO 8601 time; one without a zone is taken as UTC."""
    if not isinstance(value, str) or not 0 < len(value) <= 40:
        raise ReceiptRefused(f"{where} is not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ReceiptRefused(f"{where} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return epoch(moment.timestamp(), where)

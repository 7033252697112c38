"""Reading notification bodies quickly: msgspec for the shape, the model's own checks for the rest.

``NotificationIn`` (pydantic) is the one definition of what a notification
may hold, and the one that words every refusal. It is also the larger part
of ingest's cost: validating the benchmark's EMAIL took about 11 us per
notification (1,000 per body), most of it the field validators' calls and the
model instances. Here msgspec decodes the same body into structs that carry
the model's bounds (about 1 us per notification), and one function per
notification runs the model's checks with the model's own functions
(``validation``).

This reading only ever says yes, with the values the model would give, or
``Unplain``: a refusal, or something it leaves to the model (``scheduledAt``,
metadata nested deeper than ``_DEPTH``, an unknown top-level field, ``maxRetries``,
whose bound is the channel's retry policy). Then the
caller validates the body with ``NotificationIn``, which accepts it or words
the refusal exactly as before. ``tests/unit/test_intake.py`` holds both
readings to the same answers.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import msgspec

from ..models import Channel, NewNotification, Priority
from . import validation

#: Items per bulk request.
MAX_ITEMS = 1000
#: Metadata nested deeper than this goes to the model (whose JSON parser stops at
#: 200 levels, counted from the body's top; msgspec's own limit is far deeper).
_DEPTH = 32
_SCALARS = frozenset({str, int, float, bool, type(None)})
_PRIORITIES = {p.name: p for p in Priority}


class Unplain(Exception):
    """The quick reading cannot accept this body: the model decides (and words why)."""


class NotificationBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """``NotificationIn``'s fields and bounds (a test compares them), without its checks.

    Untracked by the collector (``gc=False``: it never holds itself): a thousand
    tracked objects fewer per bulk request, whose young collections were 1 us
    of CPU per notification.
    """

    type: Channel
    recipient: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]
    subject: Annotated[str, msgspec.Meta(max_length=998)] | None = None
    html: Annotated[str, msgspec.Meta(max_length=200_000)] | None = None
    priority: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] = "MEDIUM"
    metadata: dict[str, Any] = {}
    scheduledAt: Any = None  # any value but null: the model parses times
    callbackUrl: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    delaySeconds: Annotated[int, msgspec.Meta(ge=0, le=31_536_000)] | None = None
    category: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    ignoreSuppression: bool = False
    maxRetries: Annotated[int, msgspec.Meta(ge=0)] | None = None


class BulkBody(msgspec.Struct, forbid_unknown_fields=True):
    notifications: Annotated[
        list[NotificationBody], msgspec.Meta(min_length=1, max_length=MAX_ITEMS)
    ]


_one = msgspec.json.Decoder(NotificationBody)
_bulk = msgspec.json.Decoder(BulkBody)


def one(raw: bytes, tenant_id: str, request_id: str | None = None) -> NewNotification:
    """The notification in ``raw`` (``POST /api/notifications``), or ``Unplain``."""
    try:
        body = _one.decode(raw)
    except msgspec.DecodeError:  # its ValidationError too
        raise Unplain from None
    return checked(body, tenant_id, time.time(), request_id=request_id)


def bulk(raw: bytes) -> list[NotificationBody]:
    """The items of a bulk body, only shape-checked (``checked`` does the rest), or ``Unplain``."""
    try:
        return _bulk.decode(raw).notifications
    except msgspec.DecodeError:  # its ValidationError too
        raise Unplain from None


def checked(
    body: NotificationBody,
    tenant_id: str,
    now: float,
    idempotency_key: str | None = None,
    request_id: str | None = None,
) -> NewNotification:
    """``body`` through ``NotificationIn``'s field validators, in their order, as a new
    notification; ``Unplain`` where one of them would refuse it or the model must decide."""
    if body.scheduledAt is not None or body.maxRetries is not None:
        raise Unplain
    channel = body.type
    recipient = body.recipient
    if "\r" in recipient or "\n" in recipient or "\0" in recipient:
        raise Unplain
    subject = body.subject
    try:
        recipient = validation.RECIPIENT[channel](recipient.strip())
        if subject is not None and ("\r" in subject or "\n" in subject or "\0" in subject):
            raise Unplain
        if channel is Channel.EMAIL and not (subject and subject.strip()):
            raise Unplain
        if body.html is not None and channel is not Channel.EMAIL:
            raise Unplain
        metadata = body.metadata
        if metadata and not _plain_json(metadata, 1):
            raise Unplain
        callback = body.callbackUrl
        if callback is not None:
            callback = validation.http_url(callback)
        category = body.category
        if category is not None:
            category = validation.category(category)
    except ValueError:
        raise Unplain from None
    delay = body.delaySeconds
    return NewNotification(
        channel,
        recipient,
        body.message,
        subject,
        body.html,
        _PRIORITIES[body.priority],
        metadata,
        now + delay if delay else None,
        idempotency_key,
        tenant_id,
        callback,
        category,
        body.ignoreSuppression,
        None,
        request_id,
    )


def _plain_json(value: dict[str, Any] | list[Any], depth: int) -> bool:
    """Whether the model's metadata checks pass ``value`` and its parser reads it alike.

    msgspec refuses NaN, Infinity and numbers out of a float's range, so every
    float here is finite; what remains is nesting (``_DEPTH``) and integers
    beyond 64 bits, which orjson (the model's check, and the stores' encoder)
    refuses.
    """
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        kind = type(item)
        if kind in _SCALARS:
            if kind is int and not -(2**63) <= item < 2**64:
                return False
        elif kind is dict or kind is list:
            if depth >= _DEPTH or not _plain_json(item, depth + 1):
                return False
        else:
            return False
    return True

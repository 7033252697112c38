"""Postmark webhooks (Delivery, Bounce, SpamComplaint, SubscriptionChange, Open, Click).

Postmark does not sign its webhooks: the operator puts HTTP Basic credentials
in the webhook URL (``https://user:pass@…``) and Postmark sends them in
``Authorization``. They are compared in constant time against the ones
configured for this endpoint. Each POST carries one JSON record.

Without a signed timestamp, age is judged by the record's own time
(``DeliveredAt``, ``BouncedAt`` …): older than ``max_age`` is refused, which
leaves room for Postmark's retries over several hours. An identical body seen
within that time is a replay.

Bounces: ``HardBounce`` and the types meaning the address is bad or closed
are ``BOUNCED``; a bounce that made Postmark deactivate the address
(``Inactive``) is ``BOUNCED`` whatever its type, since Postmark will not send
to it again; spam types are ``COMPLAINED``; the rest of the failures are
``SOFT_BOUNCE``; auto-replies and the like are ``OTHER``.

``message_id`` is Postmark's ``MessageID`` (a UUID), as it is, which is what
Postmark's API returns when it accepts a message.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from base64 import b64decode
from collections.abc import Mapping

from .base import (
    Inbound,
    ReceiptEvent,
    ReceiptKind,
    ReceiptRefused,
    Seen,
    claim,
    detail,
    iso_epoch,
    load_json,
    message_id,
    obj,
    optional_text,
    recipient,
    text,
)

PROVIDER = "postmark"
#: A bounce record may carry the bounced message's content (if the operator asked).
MAX_BODY = 1024 * 1024
MAX_AGE = 24 * 3600.0
#: How far ahead of our clock a record's time may be.
SKEW = 300.0

_BOUNCED = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "Unconfirmed"})
_COMPLAINED = frozenset({"SpamComplaint", "SpamNotification"})
_NOT_FAILURES = frozenset(
    {"AutoResponder", "AddressChange", "Subscribe", "OpenRelayTest", "ChallengeVerification"}
)
#: record type → (field with the recipient, field with the time)
_FIELDS = {
    "Delivery": ("Recipient", "DeliveredAt"),
    "Bounce": ("Email", "BouncedAt"),
    "SpamComplaint": ("Email", "BouncedAt"),
    "SubscriptionChange": ("Recipient", "ChangedAt"),
    "Open": ("Recipient", "ReceivedAt"),
    "Click": ("Recipient", "ReceivedAt"),
}


def verify(
    request: Inbound,
    *,
    username: str,
    password: str,
    now: float,
    seen: Seen,
    max_age: float = MAX_AGE,
) -> list[ReceiptEvent]:
    """The record's event, or ``ReceiptRefused`` saying why not."""
    _check_credentials(request.require("Authorization", limit=1024), username, password)
    body = request.bounded_body(MAX_BODY)
    record = obj(load_json(body), "the Postmark record")
    raw_type = text(record, "RecordType", "the Postmark record", limit=64)
    fields = _FIELDS.get(raw_type)
    if fields is None:
        raise ReceiptRefused(f"Postmark RecordType {raw_type!r} is not one Herald takes")
    where = f"the Postmark {raw_type} record"
    at = iso_epoch(record.get(fields[1]), f"{where}: {fields[1]}")
    if not -SKEW <= now - at <= max_age:
        raise ReceiptRefused(
            f"{where}: {fields[1]} is {now - at:+.0f}s from now, outside the window"
        )
    claim(seen, f"{PROVIDER}:{hashlib.sha256(body).hexdigest()}", now, max_age, "this record")

    kind, said = _kind(record, raw_type, where)
    event_id = record.get("ID")
    return [
        ReceiptEvent(
            provider=PROVIDER,
            message_id=message_id(text(record, "MessageID", where, limit=256), where),
            kind=kind,
            raw_type=raw_type,
            at=at,
            recipient=recipient(optional_text(record, fields[0], where), where),
            detail=said,
            event_id=str(event_id) if isinstance(event_id, int | str) and event_id != "" else None,
        )
    ]


def _kind(
    record: Mapping[str, object], raw_type: str, where: str
) -> tuple[ReceiptKind, str | None]:
    if raw_type == "Delivery":
        return ReceiptKind.DELIVERED, detail(optional_text(record, "Details", where))
    if raw_type == "SubscriptionChange":
        reason = optional_text(record, "SuppressionReason", where, limit=64)
        stopped = record.get("SuppressSending") is True
        if stopped and reason == "ManualSuppression":
            return ReceiptKind.UNSUBSCRIBED, detail(reason)
        return ReceiptKind.OTHER, detail("suppressed" if stopped else "reactivated", reason)
    if raw_type in ("Open", "Click"):
        return ReceiptKind.OTHER, None
    bounce_type = text(record, "Type", where, limit=64)
    inactive = record.get("Inactive") is True
    said = detail(
        bounce_type,
        "(address deactivated)" if inactive else None,
        optional_text(record, "Description", where),
        optional_text(record, "Details", where),
    )
    if raw_type == "SpamComplaint" or bounce_type in _COMPLAINED:
        return ReceiptKind.COMPLAINED, said
    if bounce_type == "Unsubscribe":
        return ReceiptKind.UNSUBSCRIBED, said
    if bounce_type in _BOUNCED or inactive:
        return ReceiptKind.BOUNCED, said
    if bounce_type in _NOT_FAILURES:
        return ReceiptKind.OTHER, said
    return ReceiptKind.SOFT_BOUNCE, said


def _check_credentials(authorization: str, username: str, password: str) -> None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise ReceiptRefused("Authorization is not HTTP Basic")
    try:
        given = b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptRefused("Authorization is not base64") from None
    user, colon, secret = given.partition(b":")
    # Both compared, always: which one is wrong is not told by the time taken.
    right_user = hmac.compare_digest(user, username.encode("utf-8"))
    right_secret = hmac.compare_digest(secret, password.encode("utf-8"))
    if not (colon and right_user and right_secret):
        raise ReceiptRefused("the Basic credentials are not the ones configured")

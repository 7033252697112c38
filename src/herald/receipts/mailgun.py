"""Mailgun webhooks (JSON), signed inside the body.

Each POST is ``{"signature": {"timestamp", "token", "signature"}, "event-data":
{…}}``; ``signature`` is hex HMAC-SHA256(webhook signing key, timestamp +
token). A domain of a subaccount also carries ``parent-signature``, made with
the primary account's key: either one matching the configured key is enough.
The signature covers only the timestamp and token, not the event, so a
request's token is taken once (``Seen``) and its timestamp must be inside
``window``: a captured signature cannot be replayed or carry another event
later. (Mailgun's legacy form-encoded webhooks are not read.)

Events: ``delivered``; ``failed`` with ``severity`` ``permanent`` is
``BOUNCED``, ``temporary`` ``SOFT_BOUNCE``; ``complained``; ``unsubscribed``;
the rest (accepted, opened, clicked …) ``OTHER``.

``message_id`` is ``event-data.message.headers.message-id``, the Message-ID
header the message went out with, which Mailgun reports without angle
brackets; it is bracketed, as Herald's SMTP provider keeps it (and as
Mailgun's API returns it when it accepts a message).
"""

from __future__ import annotations

import hashlib
import hmac
import re

from .base import (
    Inbound,
    ReceiptEvent,
    ReceiptKind,
    ReceiptRefused,
    Seen,
    bracketed,
    claim,
    detail,
    epoch,
    load_json,
    obj,
    optional_text,
    recipient,
    text,
    within,
)

PROVIDER = "mailgun"
MAX_BODY = 1024 * 1024
WINDOW = 300.0

_HEX_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_KINDS = {
    "delivered": ReceiptKind.DELIVERED,
    "complained": ReceiptKind.COMPLAINED,
    "unsubscribed": ReceiptKind.UNSUBSCRIBED,
}


def verify(
    request: Inbound, *, signing_key: str, now: float, seen: Seen, window: float = WINDOW
) -> list[ReceiptEvent]:
    """The webhook's one event, or ``ReceiptRefused`` saying why not."""
    payload = obj(load_json(request.bounded_body(MAX_BODY)), "the Mailgun webhook")
    signed = obj(payload.get("signature"), "the Mailgun webhook's signature")
    stamp = signed.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        stamp = str(stamp)
    if not isinstance(stamp, str) or not _TIMESTAMP.fullmatch(stamp):
        raise ReceiptRefused("signature.timestamp is not epoch seconds")
    token = text(signed, "token", "signature", limit=256)
    expected = hmac.new(
        signing_key.encode("utf-8"), (stamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    given = [
        value
        for value in (
            optional_text(signed, "signature", "signature", limit=128),
            optional_text(signed, "parent-signature", "signature", limit=128),
        )
        if value is not None
    ]
    if not given:
        raise ReceiptRefused("signature.signature is missing")
    if not any(_HEX_SIGNATURE.fullmatch(value) for value in given):
        raise ReceiptRefused("signature.signature is not a hex HMAC-SHA256")
    if not any(hmac.compare_digest(expected, value.lower()) for value in given):
        raise ReceiptRefused("signature.signature does not match the timestamp and token")
    within(float(stamp), now, window, "signature.timestamp")
    claim(seen, f"{PROVIDER}:{token}", now, 2 * window, "this signature token")

    where = "event-data"
    data = obj(payload.get("event-data"), "the Mailgun webhook's event-data")
    name = text(data, "event", where, limit=64)
    kind = _KINDS.get(name, ReceiptKind.OTHER)
    severity = optional_text(data, "severity", where, limit=32)
    if name == "failed":
        kind = ReceiptKind.BOUNCED if severity == "permanent" else ReceiptKind.SOFT_BOUNCE
    status = data.get("delivery-status")
    status = obj(status, "event-data.delivery-status") if status is not None else {}
    code = status.get("code")
    message = obj(data.get("message"), "event-data.message")
    headers = obj(message.get("headers"), "event-data.message.headers")
    return [
        ReceiptEvent(
            provider=PROVIDER,
            message_id=bracketed(text(headers, "message-id", "message.headers"), where),
            kind=kind,
            raw_type=name,
            at=epoch(data.get("timestamp"), "event-data.timestamp"),
            recipient=recipient(optional_text(data, "recipient", where), where),
            detail=detail(
                severity,
                optional_text(data, "reason", where, limit=64),
                code if isinstance(code, int) and not isinstance(code, bool) else None,
                optional_text(status, "description", "delivery-status")
                or optional_text(status, "message", "delivery-status"),
            ),
            event_id=optional_text(data, "id", where, limit=256),
        )
    ]

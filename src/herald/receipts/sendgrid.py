"""SendGrid's Event Webhook, signed.

With "Signed Event Webhook Requests" on, SendGrid signs each POST with an
ECDSA P-256 key of its own: ``X-Twilio-Email-Event-Webhook-Signature`` is the
base64 DER signature, over SHA-256 of the
``X-Twilio-Email-Event-Webhook-Timestamp`` header's text followed by the raw
body. The operator copies the verification key (base64 DER, no PEM armour)
from SendGrid's settings; ``public_key`` reads it once, at start.

The body is a JSON array of events, up to 1,000 per POST. Timestamps outside
``window`` are refused, and so is a signature seen before (an ECDSA signature
is randomised, so SendGrid's own retry, signed anew, is not mistaken for it).

``message_id`` is, where the event has it, ``smtp-id``: the Message-ID header
of the message, which for mail relayed through SendGrid's SMTP service is the
one Herald's SMTP provider wrote and kept, angle brackets included. Events
without it (opens, clicks) fall back to the first part of ``sg_message_id``
(up to its first dot): that part is the ``X-Message-Id`` SendGrid names when
it accepts a message, the rest is SendGrid's internal routing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import ConfigError
from .base import (
    Inbound,
    ReceiptEvent,
    ReceiptKind,
    ReceiptRefused,
    Seen,
    base64_bytes,
    bracketed,
    claim,
    detail,
    epoch,
    load_json,
    message_id,
    obj,
    optional_text,
    recipient,
    text,
    within,
)

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_EVENTS = 1000
#: 1,000 events with SendGrid's fields and some custom arguments fit with room to spare.
MAX_BODY = 8 * 1024 * 1024
WINDOW = 300.0

_KINDS = {
    "delivered": ReceiptKind.DELIVERED,
    "deferred": ReceiptKind.DEFERRED,
    # Dropped: SendGrid will not try, because the address bounced, complained or
    # unsubscribed before, or the message is invalid. No attempt can succeed.
    "dropped": ReceiptKind.BOUNCED,
    "spamreport": ReceiptKind.COMPLAINED,
    "unsubscribe": ReceiptKind.UNSUBSCRIBED,
    "group_unsubscribe": ReceiptKind.UNSUBSCRIBED,
}
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def public_key(configured: str) -> ec.EllipticCurvePublicKey:
    """The verification key from SendGrid's settings: base64 DER, or PEM."""
    text = configured.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64_bytes(text, "the key"))
    except (ValueError, UnsupportedAlgorithm, ReceiptRefused) as exc:
        raise ConfigError(f"the SendGrid verification key cannot be read: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("the SendGrid verification key is not an ECDSA P-256 public key")
    return key


def verify(
    request: Inbound,
    *,
    public_key: ec.EllipticCurvePublicKey,
    now: float,
    seen: Seen,
    window: float = WINDOW,
    max_events: int = MAX_EVENTS,
) -> list[ReceiptEvent]:
    """The batch's events, in order, or ``ReceiptRefused`` saying why not."""
    signature = request.require(SIGNATURE_HEADER, limit=256).strip()
    stamp = request.require(TIMESTAMP_HEADER, limit=32).strip()
    if not _TIMESTAMP.fullmatch(stamp):
        raise ReceiptRefused(f"{TIMESTAMP_HEADER} is not epoch seconds")
    within(float(stamp), now, window, TIMESTAMP_HEADER)
    body = request.bounded_body(MAX_BODY)
    try:
        public_key.verify(
            base64_bytes(signature, SIGNATURE_HEADER),
            stamp.encode("ascii") + body,
            ec.ECDSA(hashes.SHA256()),
        )
    except InvalidSignature:
        raise ReceiptRefused(f"{SIGNATURE_HEADER} does not match the timestamp and body") from None
    claim(seen, f"{PROVIDER}:{signature}", now, 2 * window, "this signed batch")

    batch = load_json(body)
    if not isinstance(batch, list):
        raise ReceiptRefused("the body is not a JSON array of events")
    if len(batch) > max_events:
        raise ReceiptRefused(f"the batch has {len(batch)} events, more than {max_events}")
    return [
        _event(obj(item, f"event {index}"), f"event {index}") for index, item in enumerate(batch)
    ]


def _event(record: Mapping[str, object], where: str) -> ReceiptEvent:
    name = text(record, "event", where, limit=64)
    kind = _KINDS.get(name, ReceiptKind.OTHER)
    bounce_type = optional_text(record, "type", where, limit=64)
    if name == "bounce":
        # "blocked": the receiving server refused for now (reputation, content);
        # "bounce": the address does not take mail.
        kind = ReceiptKind.BOUNCED if bounce_type in (None, "bounce") else ReceiptKind.SOFT_BOUNCE
    return ReceiptEvent(
        provider=PROVIDER,
        message_id=_message_id(record, where),
        kind=kind,
        raw_type=name,
        at=epoch(record.get("timestamp"), f"{where}: timestamp"),
        recipient=recipient(optional_text(record, "email", where), where),
        detail=detail(
            bounce_type if name == "bounce" else None,
            optional_text(record, "status", where),
            optional_text(record, "reason", where) or optional_text(record, "response", where),
        ),
        event_id=optional_text(record, "sg_event_id", where, limit=256),
    )


def _message_id(record: Mapping[str, object], where: str) -> str:
    smtp_id = optional_text(record, "smtp-id", where)
    if smtp_id and smtp_id.strip():
        return bracketed(smtp_id, where)
    sg_id = optional_text(record, "sg_message_id", where)
    if not sg_id:
        raise ReceiptRefused(f"{where}: neither smtp-id nor sg_message_id is given")
    return message_id(sg_id.split(".", 1)[0], where)

"""Twilio Programmable Messaging status callbacks.

Twilio posts a form (``MessageSid``, ``MessageStatus``, ``To``, ``ErrorCode``
…) to the ``StatusCallback`` URL each time a message changes status, and
signs it: ``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, URL + each
form parameter's name and value, sorted by name)). The URL is the one Twilio
was given, so the endpoint passes the public URL it is reached at, query
string included. Twilio's own libraries also accept the URL with the default
port added or removed, since that is how it may have been written; so does
this one.

The callback carries no timestamp: a replay cannot be refused by age, only by
remembering signatures (``Seen``, for ``seen_ttl``). A status repeated later
changes nothing anyway, since statuses only move forward. Nor does it carry
the time of the event: ``at`` is the time of receipt.

``message_id`` is the ``MessageSid`` (``SM…``), exactly what the Twilio
provider keeps from its send reply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from base64 import b64encode
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .base import (
    Inbound,
    ReceiptEvent,
    ReceiptKind,
    ReceiptRefused,
    Seen,
    claim,
    detail,
    message_id,
    recipient,
)

PROVIDER = "twilio"
MAX_BODY = 64 * 1024
MAX_PARAMS = 100
#: How long a signature is remembered: a replay after that is harmless (see above).
SEEN_TTL = 24 * 3600.0

_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{27}=")  # base64 of a 20-byte SHA-1 HMAC
_SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
_KINDS = {
    "delivered": ReceiptKind.DELIVERED,
    "undelivered": ReceiptKind.UNDELIVERED,
    "failed": ReceiptKind.UNDELIVERED,
}


def verify(
    request: Inbound, *, auth_token: str, now: float, seen: Seen, seen_ttl: float = SEEN_TTL
) -> list[ReceiptEvent]:
    """The status callback's one event, or ``ReceiptRefused`` saying why not."""
    signature = request.require("X-Twilio-Signature", limit=64).strip()
    if not _SIGNATURE.fullmatch(signature):
        raise ReceiptRefused("X-Twilio-Signature is not a base64 HMAC-SHA1")
    params = _form(request.bounded_body(MAX_BODY))
    key = auth_token.encode("utf-8")
    if not any(
        hmac.compare_digest(signature, _signature(key, url, params))
        for url in _url_forms(request.url)
    ):
        raise ReceiptRefused("X-Twilio-Signature does not match the URL and form parameters")
    claim(seen, f"{PROVIDER}:{signature}", now, seen_ttl, "this signed status callback")

    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not _SID.fullmatch(sid):
        raise ReceiptRefused("MessageSid is missing or not a Twilio SID")
    if not status or len(status) > 32 or not status.isascii():
        raise ReceiptRefused("MessageStatus is missing or not a status name")
    status = status.lower()
    error = params.get("ErrorCode")
    return [
        ReceiptEvent(
            provider=PROVIDER,
            message_id=message_id(sid, "callback"),
            kind=_KINDS.get(status, ReceiptKind.OTHER),
            raw_type=status,
            at=now,
            recipient=recipient(params.get("To"), "callback"),
            detail=detail(f"error {error}" if error else None, params.get("ErrorMessage")),
        )
    ]


def _form(body: bytes) -> dict[str, str]:
    """The form's parameters; a repeated name is refused (Twilio never sends one)."""
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except ValueError as exc:  # UnicodeDecodeError included
        raise ReceiptRefused(
            f"the body is not a form of at most {MAX_PARAMS} fields: {exc}"
        ) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise ReceiptRefused(f"form parameter {name[:40]!r} is repeated")
        params[name] = value
    return params


def _signature(key: bytes, url: str, params: dict[str, str]) -> str:
    signed = url + "".join(name + params[name] for name in sorted(params))
    return b64encode(hmac.new(key, signed.encode("utf-8"), hashlib.sha1).digest()).decode()


def _url_forms(url: str) -> list[str]:
    """The URL as given, then with the scheme's default port added or removed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ReceiptRefused("the callback URL is not a URL") from None
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or parts.hostname is None:
        return [url]
    host = parts.netloc.rpartition("@")[2]
    prefix = parts.netloc[: len(parts.netloc) - len(host)]
    if port is None:
        other = f"{prefix}{host}:{default}"
    elif port == default:
        other = prefix + host.rsplit(":", 1)[0]
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]

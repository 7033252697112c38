"""Amazon SNS messages posted to an HTTPS subscription, verified by their signature.

SNS signs a canonical string of the message's fields (each name, a newline,
its value, a newline, in a fixed order that depends on the type) with RSA:
``SignatureVersion`` 1 over SHA-1, 2 over SHA-256, base64 in ``Signature``.
The key is in the X.509 certificate at ``SigningCertURL``. A certificate is
only fetched from an https URL whose host the allow-list admits (by default
``sns.<region>.amazonaws.com``); anything else is refused without a request.
``fetch`` is the caller's: it must check TLS as usual and bound its reply, and
the errors it raises pass through untouched (a fetch that failed says "try
later", not "forged"). Certificates are kept in a small ``CertificateCache``.

A valid signature proves the message came from SNS, not from the operator's
topic: anyone can sign with their own topic. So ``TopicArn`` must be one of
the configured ``topics``. A ``SubscriptionConfirmation`` is returned as such
(its ``SubscribeURL`` admitted by the same allow-list) for the caller to
confirm; an ``UnsubscribeConfirmation`` is checked and carries nothing to do.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .base import (
    Inbound,
    ReceiptRefused,
    Seen,
    base64_bytes,
    claim,
    iso_epoch,
    load_json,
    obj,
    optional_text,
    text,
    within,
)

#: The hosts SNS signs from and sends confirmations from, in every partition.
AMAZON_HOSTS: tuple[str, ...] = (r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?",)
#: SNS messages are at most 256 KiB; the JSON envelope escapes them.
MAX_BODY = 1024 * 1024
MAX_CERTIFICATE = 16 * 1024
#: SNS retries an HTTPS delivery with the original Timestamp, by default for about
#: a minute, longer where the operator set a delivery policy.
WINDOW = 3600.0

Fetch = Callable[[str], Awaitable[bytes]]

_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        *("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    ),
}
_FIELDS["UnsubscribeConfirmation"] = _FIELDS["SubscriptionConfirmation"]
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True, slots=True)
class Envelope:
    """A verified SNS message: ``message`` is the publisher's text (SES's JSON)."""

    type: str
    message_id: str
    topic_arn: str
    message: str
    at: float
    subscribe_url: str | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmation:
    """SNS asks to confirm the subscription: GET ``subscribe_url`` (already allow-listed)."""

    topic_arn: str
    subscribe_url: str
    message_id: str


class CertificateCache:
    """Signing keys by certificate URL, least recently used first out, each for ``max_age``."""

    def __init__(self, capacity: int = 8, max_age: float = 24 * 3600.0) -> None:
        self.capacity, self.max_age = capacity, max_age
        self._keys: OrderedDict[str, tuple[rsa.RSAPublicKey, float]] = OrderedDict()

    async def key(self, url: str, fetch: Fetch, now: float) -> rsa.RSAPublicKey:
        kept = self._keys.get(url)
        if kept is not None and kept[1] > now:
            self._keys.move_to_end(url)
            return kept[0]
        pem = await fetch(url)
        if len(pem) > MAX_CERTIFICATE:
            raise ReceiptRefused(f"the signing certificate is larger than {MAX_CERTIFICATE} bytes")
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError:
            raise ReceiptRefused("the signing certificate is not a PEM certificate") from None
        start = certificate.not_valid_before_utc.timestamp()
        end = certificate.not_valid_after_utc.timestamp()
        if not start <= now <= end:
            raise ReceiptRefused("the signing certificate is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ReceiptRefused("the signing certificate's key is not RSA")
        self._keys[url] = (key, min(end, now + self.max_age))
        self._keys.move_to_end(url)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return key


def admitted(url: str, hosts: Collection[str], what: str) -> str:
    """``url`` if it is https on an allow-listed host (``host`` or ``host:port``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ReceiptRefused(f"{what} is not a URL") from None
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
        raise ReceiptRefused(f"{what} is not a plain https URL")
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    if not any(re.fullmatch(pattern, host) for pattern in hosts):
        raise ReceiptRefused(f"{what} is on a host the allow-list does not admit")
    return url


async def open_envelope(
    request: Inbound,
    *,
    topics: Collection[str],
    fetch: Fetch,
    certificates: CertificateCache,
    now: float,
    seen: Seen,
    hosts: Collection[str] = AMAZON_HOSTS,
    window: float = WINDOW,
) -> Envelope:
    """The SNS message, checked: fields, topic, age, certificate, signature, first sight."""
    if not topics:
        raise ReceiptRefused("no SNS topic is configured to take messages from")
    record = obj(load_json(request.bounded_body(MAX_BODY)), "the SNS message")
    kind = text(record, "Type", "the SNS message", limit=64)
    fields = _FIELDS.get(kind)
    if fields is None:
        raise ReceiptRefused(f"SNS message type {kind[:64]!r} is not one Herald takes")
    announced = request.header("x-amz-sns-message-type", limit=64)
    if announced is not None and announced != kind:
        raise ReceiptRefused("x-amz-sns-message-type does not match the message's Type")
    values = {
        name: optional_text(record, name, "the SNS message", limit=MAX_BODY) for name in fields
    }
    for name in fields:
        if name != "Subject" and not values[name]:
            raise ReceiptRefused(f"the SNS message: {name} is missing")
    topic = values["TopicArn"] or ""
    if topic not in topics:
        raise ReceiptRefused("the SNS message comes from a topic that is not configured")
    at = iso_epoch(values["Timestamp"], "the SNS message: Timestamp")
    within(at, now, window, "the SNS message's Timestamp")

    version = text(record, "SignatureVersion", "the SNS message", limit=8)
    if version not in _HASHES:
        raise ReceiptRefused(f"SignatureVersion {version!r} is not 1 or 2")
    signature = base64_bytes(text(record, "Signature", "the SNS message", limit=4096), "Signature")
    cert_url = text(record, "SigningCertURL", "the SNS message", limit=2048)
    subscribe_url = values.get("SubscribeURL")
    if subscribe_url:
        admitted(subscribe_url, hosts, "SubscribeURL")
    key = await certificates.key(admitted(cert_url, hosts, "SigningCertURL"), fetch, now)
    canonical = "".join(f"{name}\n{values[name]}\n" for name in fields if values[name] is not None)
    try:
        key.verify(signature, canonical.encode("utf-8"), padding.PKCS1v15(), _HASHES[version]())
    except InvalidSignature:
        raise ReceiptRefused("the SNS Signature does not match the message") from None
    message_id = values["MessageId"] or ""
    if len(message_id) > 128:
        raise ReceiptRefused("the SNS message: MessageId is too long")
    claim(seen, f"sns:{message_id}", now, 2 * window, "this SNS message")
    return Envelope(
        type=kind,
        message_id=message_id,
        topic_arn=topic,
        message=values["Message"] or "",
        at=at,
        subscribe_url=subscribe_url or None,
    )


def confirmation(envelope: Envelope) -> SubscriptionConfirmation | None:
    if envelope.type != "SubscriptionConfirmation" or envelope.subscribe_url is None:
        return None
    return SubscriptionConfirmation(envelope.topic_arn, envelope.subscribe_url, envelope.message_id)

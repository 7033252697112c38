"""Web Push (RFC 8030) to browser subscriptions, encrypted (RFC 8291) and VAPID-signed (RFC 8292).

The recipient is the subscription a browser's ``PushManager.subscribe()``
returns, as JSON text: ``{"endpoint": "https://…", "keys": {"p256dh": "…",
"auth": "…"}}``. The payload, which the service worker receives as
``event.data.json()``, is::

    {"id": "<notification id>", "title": "…", "body": "…", "data": {metadata}}

It is encrypted for that subscription (``aes128gcm``, one record; push
services take at most 4096 bytes of body) with a fresh key and salt per
message. The ``Authorization: vapid t=<JWT>, k=<public key>`` header proves
the sender to the push service; the JWT (ES256, ``aud`` the endpoint's
origin, ``sub`` ``HERALD_VAPID_SUBJECT``) is cached per origin for hours.

Per-message headers from metadata: ``ttl`` (seconds the push service may hold
the message; default a day), ``urgency`` (``very-low``, ``low``, ``normal``
(default), ``high``) and ``collapseId`` (becomes ``Topic``: a newer message
with the same topic replaces an undelivered one).

Endpoints are tenant-supplied URLs, so they go through the same connect-time
guard as webhooks (``HERALD_WEBPUSH_ALLOW_HOSTS`` admits private ones).

Errors: 404 and 410 ``UnregisteredRecipient`` (the subscription expired or
was revoked); 413 and other 4xx ``PermanentError`` (403 too: the subscription
was made for another VAPID key); 401 ``TransientError`` (the VAPID JWT was
refused: key, subject or clock, the operator's to fix); 429 and 5xx
``TransientError`` with ``Retry-After``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import http_ece  # type: ignore[import-untyped]
import httpx
import jwt
import orjson
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)

from ..config import Settings
from ..errors import (
    ConfigError,
    DeliveryError,
    PermanentError,
    RefusedDestination,
    TransientError,
    UnregisteredRecipient,
)
from ..models import Channel
from ..store.base import Store
from . import httpapi
from .base import Message, Provider, Receipt, register
from .httpxdoor import GuardedTransport
from .ssrf import Allowance, withheld

log = structlog.get_logger("herald.providers.webpush")

#: RFC 8291: 86 bytes of header (salt, record size, sender key) and 17 of
#: padding delimiter and tag leave this much plaintext in a 4096-byte body.
MAX_PLAINTEXT = 4096 - 86 - 17
DEFAULT_TTL = 86_400
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
#: A VAPID JWT may live 24 hours; ours live 12 and are replaced after 11.
VAPID_LIFETIME = 12 * 3600
VAPID_REUSE = 11 * 3600
_VAPID_CACHE_LIMIT = 1024
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Subscription:
    endpoint: str
    p256dh: bytes
    auth: bytes

    @classmethod
    def parse(cls, value: str) -> Subscription:
        """The browser's subscription JSON; ValueError says what is wrong with it."""
        try:
            data = json.loads(value)
        except ValueError:
            raise ValueError("the recipient is not a Web Push subscription (JSON)") from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(keys, dict):
            raise ValueError('a subscription needs "endpoint" and "keys"')
        endpoint = data.get("endpoint")
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("the subscription endpoint is not an https:// URL")
        p256dh, auth = _b64(keys.get("p256dh")), _b64(keys.get("auth"))
        if p256dh is None or len(p256dh) != 65 or p256dh[0] != 4:
            raise ValueError("keys.p256dh is not a base64url P-256 public key")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
        except ValueError:
            raise ValueError("keys.p256dh is not a point on P-256") from None
        if auth is None or len(auth) != 16:
            raise ValueError("keys.auth is not 16 bytes of base64url")
        assert isinstance(endpoint, str)
        return cls(endpoint, p256dh, auth)


def load_vapid_key(value: str) -> ec.EllipticCurvePrivateKey:
    """``HERALD_VAPID_PRIVATE_KEY``: a PEM file's path, PEM text, or the base64url raw key."""
    variable = "HERALD_VAPID_PRIVATE_KEY"
    text = value.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = load_pem_private_key(text.encode(), password=None)
        elif Path(text).is_file():
            key = load_pem_private_key(Path(text).read_bytes(), password=None)
        else:
            raw = _b64(text)
            if raw is None:
                raise ValueError("neither a file, PEM nor base64url")
            if len(raw) == 32:  # what web-push tools print as the "private key"
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = load_der_private_key(raw, password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"{variable}: cannot load the VAPID key (a PEM file's path, PEM text or the "
            f"base64url raw key): {exc}"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{variable}: VAPID keys are P-256 (prime256v1) keys")
    return key


@register("webpush")
class WebPushProvider(Provider):
    name = "webpush"
    channels = frozenset({Channel.PUSH})

    def accepts(self, recipient: str) -> bool:
        return recipient.lstrip().startswith("{")  # a subscription, not a device token

    def __init__(self, settings: Settings, store: Store) -> None:
        if not settings.vapid_private_key:
            raise ConfigError("the webpush provider needs HERALD_VAPID_PRIVATE_KEY")
        subject = settings.vapid_subject or ""
        if not subject.startswith(("mailto:", "https://")):
            raise ConfigError(
                "the webpush provider needs HERALD_VAPID_SUBJECT, a mailto: or https:// contact"
            )
        self._key = load_vapid_key(settings.vapid_private_key)
        public = self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self._public = _b64encode(public)
        self._subject = subject
        self._vapid: dict[str, tuple[str, float]] = {}
        allowance = Allowance.parse(settings.webpush_allow_hosts, "HERALD_WEBPUSH_ALLOW_HOSTS")
        self._client = httpapi.new_client(transport=GuardedTransport(allowance), trust_env=False)

    async def send(self, message: Message) -> Receipt:
        try:
            subscription = Subscription.parse(message.recipient)
        except ValueError as exc:
            raise PermanentError(str(exc), provider=self.name) from exc
        headers = self._headers(message, subscription)
        body = self._encrypt(message, subscription)
        try:
            response = await self._client.post(subscription.endpoint, content=body, headers=headers)
        except RefusedDestination as exc:
            log.warning("webpush_destination_refused", notification_id=message.id, reason=str(exc))
            host = httpx.URL(subscription.endpoint).host
            raise PermanentError(withheld(host), provider=self.name) from exc
        except httpx.HTTPError as exc:
            raise httpapi.unreachable(self.name, "the push service", exc) from exc
        if response.is_success:
            return Receipt(self.name, response.headers.get("location") or f"webpush-{message.id}")
        raise self._error(response)

    async def close(self) -> None:
        await self._client.aclose()

    def _headers(self, message: Message, subscription: Subscription) -> dict[str, str]:
        metadata = message.metadata
        ttl = metadata.get("ttl", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise PermanentError(
                "metadata ttl must be a whole number of seconds", provider=self.name
            )
        urgency = metadata.get("urgency", "normal")
        if urgency not in URGENCIES:
            raise PermanentError(
                f"metadata urgency must be one of {', '.join(sorted(URGENCIES))}",
                provider=self.name,
            )
        headers = {
            "authorization": f"vapid t={self._vapid_jwt(subscription.endpoint)}, k={self._public}",
            "content-encoding": "aes128gcm",
            "content-type": "application/octet-stream",
            "ttl": str(ttl),
            "urgency": str(urgency),
        }
        topic = metadata.get("collapseId")
        if topic is not None:
            if not isinstance(topic, str) or not _TOPIC.match(topic):
                raise PermanentError(
                    "metadata collapseId must be 1 to 32 characters of A-Z a-z 0-9 _ - for "
                    "Web Push",
                    provider=self.name,
                )
            headers["topic"] = topic
        return headers

    def _encrypt(self, message: Message, subscription: Subscription) -> bytes:
        payload: dict[str, Any] = {"id": message.id, "title": message.subject}
        payload |= {"body": message.body, "data": message.metadata}
        plaintext = orjson.dumps(payload)
        if len(plaintext) > MAX_PLAINTEXT:
            raise PermanentError(
                f"the Web Push payload is {len(plaintext)} bytes; at most {MAX_PLAINTEXT} fit",
                provider=self.name,
            )
        body: bytes = http_ece.encrypt(
            plaintext,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=subscription.p256dh,
            auth_secret=subscription.auth,
            version="aes128gcm",
            rs=4096,
        )
        return body

    def _vapid_jwt(self, endpoint: str) -> str:
        """A JWT for the endpoint's origin, reused for hours (signing costs, services cache)."""
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        now = time.time()
        cached = self._vapid.get(audience)
        if cached is not None and now < cached[1]:
            return cached[0]
        if len(self._vapid) >= _VAPID_CACHE_LIMIT:
            self._vapid.clear()
        claims = {"aud": audience, "exp": int(now) + VAPID_LIFETIME, "sub": self._subject}
        token = jwt.encode(claims, self._key, algorithm="ES256", headers={"typ": "JWT"})
        self._vapid[audience] = (token, now + VAPID_REUSE)
        return token

    def _error(self, response: httpx.Response) -> DeliveryError:
        status, detail = response.status_code, httpapi.describe(response)
        if status in (404, 410):
            return UnregisteredRecipient(
                f"the push subscription is gone ({detail})", provider=self.name
            )
        if httpapi.overloaded(response):
            return httpapi.busy(self.name, "the push service", response)
        if status == 401:
            return TransientError(
                f"the push service refused our VAPID credentials ({detail}): check "
                "HERALD_VAPID_PRIVATE_KEY, HERALD_VAPID_SUBJECT and the clock",
                provider=self.name,
            )
        if status == 413:
            return PermanentError(f"the push service says too large ({detail})", provider=self.name)
        return PermanentError(f"the push service refused it ({detail})", provider=self.name)


def _b64(value: object) -> bytes | None:
    """Decode base64url (the Web Push encoding), padded or not; None if it is not."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

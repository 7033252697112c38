"""Webhooks: a JSON POST to the recipient URL, signed per Standard Webhooks.

The body mirrors what the client asked Herald to send, plus the attempt::

    {"id": "<notification id>", "type": "WEBHOOK", "subject": "…" or null,
     "message": "…", "metadata": {…}, "attempt": 1,
     "timestamp": "2025-01-31T12:00:00Z"}

The recipient URL is not echoed (its query may hold a token). Headers, per
https://www.standardwebhooks.com: ``webhook-id`` is the notification id, the
same on every retry, so receivers can drop duplicates; ``webhook-timestamp``
is the send time in Unix seconds; ``webhook-signature`` holds one
``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` per secret in
``HERALD_WEBHOOK_SECRET``, so a secret can be rotated: sign with old and new,
move receivers over, drop the old one.

Status callbacks (``callbackUrl``, ``HERALD_CALLBACK_URL``) are webhooks too,
so they come this way. Where a webhook may go is checked at connect time by
the destination guard (``ssrf.py``): loopback, private, link-local and
metadata addresses are refused unless ``HERALD_WEBHOOK_ALLOW_HOSTS`` admits
them, and a refused, unknown or silent receiver is described in the same
words (``ssrf.withheld``), so errors do not map the private network.
Redirects are not followed: a receiver that moved is the sender's to update,
and following would deliver the signed body to a URL the sender never named.

Replies: 2xx delivered; 3xx ``PermanentError`` naming the ``Location``; 410
``UnregisteredRecipient`` (the receiver disabled the endpoint); 408, 429 and
5xx ``TransientError`` (429 and 503 with ``Retry-After``); other 4xx
``PermanentError``. A refused or unknown host is permanent; network errors
and timeouts (``HERALD_WEBHOOK_TIMEOUT``) are transient. Only the first
bytes of a reply are read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import orjson
import structlog

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
from .ssrf import Allowance, Guard, mask_credentials, withheld

log = structlog.get_logger("herald.providers.webhook")

SECRET_PREFIX = "whsec_"
#: Standard Webhooks asks for 24 to 64 random bytes; fewer is a mistake.
MIN_SECRET_BYTES = 16
#: Enough of a reply to explain a refusal; the rest is not read.
REPLY_LIMIT = 4096


def parse_secrets(value: str | None) -> list[bytes]:
    """The keys in ``HERALD_WEBHOOK_SECRET``: comma-separated ``whsec_<base64>`` values."""
    variable = "HERALD_WEBHOOK_SECRET"
    if not value or not value.strip():
        raise ConfigError(
            f"the webhook provider needs {variable} (whsec_ and base64 of 24 to 64 random bytes, "
            "e.g. python -c \"import os,base64;print('whsec_'+base64.b64encode(os.urandom(32))"
            '.decode())")'
        )
    keys = []
    for number, part in enumerate((p.strip() for p in value.split(",")), start=1):
        encoded = part.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{variable}: secret {number} is not whsec_ and base64") from None
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{variable}: secret {number} is {len(key)} bytes; use 24 to 64 random bytes"
            )
        keys.append(key)
    return keys


def signatures(keys: list[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


@register("webhook")
class WebhookProvider(Provider):
    name = "webhook"
    channels = frozenset({Channel.WEBHOOK})

    def destination(self, recipient: str) -> str | None:
        return urlsplit(recipient).hostname or recipient

    def __init__(self, settings: Settings, store: Store) -> None:
        self._keys = parse_secrets(settings.webhook_secret)
        allowance = Allowance.parse(settings.webhook_allow_hosts, "HERALD_WEBHOOK_ALLOW_HOSTS")
        self._client = httpapi.new_client(
            timeout=httpx.Timeout(settings.webhook_timeout),
            transport=GuardedTransport(Guard(allowance)),
            trust_env=False,  # through a proxy, the guard would check the proxy's address
        )

    async def send(self, message: Message) -> Receipt:
        now = time.time()
        payload = {
            "id": message.id,
            "type": message.channel.value,
            "subject": message.subject,
            "message": message.body,
            "metadata": message.metadata,
            "attempt": message.attempt,
            "timestamp": datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        try:
            body = orjson.dumps(payload)
        except orjson.JSONEncodeError as exc:
            raise PermanentError(f"metadata is not JSON: {exc}", provider=self.name) from exc
        timestamp = int(now)
        headers = {
            "content-type": "application/json",
            "accept-encoding": "identity",  # the reply is read raw, and only its start
            "webhook-id": message.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures(self._keys, message.id, timestamp, body),
        }
        url, auth = _without_credentials(message.recipient)
        try:
            async with self._client.stream(
                "POST", url, content=body, headers=headers, auth=auth
            ) as response:
                start = await _read_start(response)
        except RefusedDestination as exc:
            log.warning("webhook_destination_refused", notification_id=message.id, reason=str(exc))
            raise PermanentError(withheld(_host(message.recipient)), provider=self.name) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.info("webhook_unreachable", notification_id=message.id, reason=str(exc))
            raise TransientError(withheld(_host(message.recipient)), provider=self.name) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"not a usable webhook URL: {exc}", provider=self.name) from exc
        except httpx.HTTPError as exc:
            raise httpapi.unreachable(self.name, "the webhook receiver", exc) from exc
        if response.is_success:
            return Receipt(self.name, message.id)
        raise self._error(response, start)

    async def close(self) -> None:
        await self._client.aclose()

    def _error(self, response: httpx.Response, start: bytes) -> DeliveryError:
        status, detail = response.status_code, httpapi.describe(response, body=start)
        if 300 <= status < 400:
            location = mask_credentials(response.headers.get("location", "nowhere"))
            return PermanentError(
                f"the webhook receiver redirects to {location} ({status}); redirects are not "
                "followed: update the recipient URL",
                provider=self.name,
            )
        if status == 410:
            return UnregisteredRecipient(
                f"the webhook endpoint is disabled ({detail})", provider=self.name
            )
        if status in (429, 503):
            return httpapi.busy(self.name, "the webhook receiver", response, body=start)
        if status == 408 or status >= 500:
            return TransientError(f"the webhook receiver answered {detail}", provider=self.name)
        return PermanentError(f"the webhook receiver refused it: {detail}", provider=self.name)


def _without_credentials(recipient: str) -> tuple[httpx.URL | str, httpx.BasicAuth | None]:
    """The URL without its ``user:pass@``, and those as Basic auth (what httpx makes of them
    anyway): httpx logs the URL it sends to whole, at INFO ("HTTP Request: POST <url>")."""
    try:
        url = httpx.URL(recipient)
    except httpx.InvalidURL:
        return recipient, None  # the request refuses it, in httpx's words
    if not url.userinfo:
        return url, None
    return url.copy_with(userinfo=b""), httpx.BasicAuth(url.username, url.password)


def _host(url: str) -> str:
    return urlsplit(url).hostname or "the webhook receiver"


async def _read_start(response: httpx.Response) -> bytes:
    """At most ``REPLY_LIMIT`` bytes: a receiver cannot make us download a film.

    A reply cut short leaves its connection to be closed rather than reused.
    """
    kept = bytearray()
    async for chunk in response.aiter_raw():
        kept += chunk
        if len(kept) >= REPLY_LIMIT:
            break
    return bytes(kept[:REPLY_LIMIT])

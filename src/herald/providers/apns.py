"""Push to Apple devices through APNs, over HTTP/2 with a JWT provider token.

APNs speaks only HTTP/2, so the client is built HTTP/2-only (on ``http://``
that means prior knowledge, which is how the tests' local server is reached).
One connection carries many concurrent sends as separate streams.

The provider token is an ES256 JWT (``kid`` the key id, ``iss`` the team id,
``iat``) signed with the ``.p8`` key. Apple wants it refreshed at least every
hour and refuses refreshes more often than every 20 minutes
(``TooManyProviderTokenUpdates``), so it is renewed after 50 minutes, or on
``403 ExpiredProviderToken`` once the token is at least 20 minutes old.

Per-message choices come from the metadata, since ``Message`` carries no
priority of its own:

- ``apnsPushType``: ``alert`` (default), ``background``, ``voip``, … The
  topic gets the suffix Apple requires for some types (``.voip``).
- ``apnsPriority``: 10 (default; 5 for ``background``), 5 or 1.
- ``collapseId``: becomes ``apns-collapse-id`` (64 bytes at most).

``apns-id`` is the notification id as a UUID, so Apple's records and ours
agree, and it is the receipt.

Errors: 410 is ``UnregisteredRecipient``. ``400 BadDeviceToken`` is only a
``PermanentError``: Apple also says it for a sandbox token sent to production,
which is a configuration mistake, not a token that is gone. Topic and token
(credential) refusals are the operator's to fix, so they are transient; 429
and 5xx are transient with ``Retry-After``; other 4xx are permanent.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ..config import Settings
from ..errors import (
    ConfigError,
    DeliveryError,
    PermanentError,
    TransientError,
    UnregisteredRecipient,
)
from ..models import Channel
from ..store.base import Store
from . import httpapi
from .base import Message, Provider, Receipt, register

log = structlog.get_logger("herald.providers.apns")

#: Renew the provider token after this long (Apple: at most an hour) ...
TOKEN_LIFETIME = 50 * 60.0
#: ... and never sooner than this after the last one (Apple: 20 minutes).
TOKEN_MIN_AGE = 20 * 60.0
#: Topic suffixes APNs requires for some push types.
_TOPIC_SUFFIX = {
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
}
_PUSH_TYPES = frozenset(
    {"alert", "background", "location", "mdm", "widgets", "controls", *_TOPIC_SUFFIX}
)
_OPERATOR_REASONS = frozenset(
    {
        "MissingTopic",
        "BadTopic",
        "TopicDisallowed",
        "InvalidProviderToken",
        "MissingProviderToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
    }
)
#: The clock token ages are measured on; a name of its own so tests can move it.
_clock = time.monotonic


class ProviderToken:
    """The JWT APNs authenticates us by, renewed on Apple's schedule."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str) -> None:
        self._key, self._key_id, self._team_id = key, key_id, team_id
        self._token = ""
        self._issued = 0.0

    def current(self) -> str:
        if not self._token or _clock() - self._issued >= TOKEN_LIFETIME:
            self._issue()
        return self._token

    def renew(self, rejected: str) -> str | None:
        """A new token after APNs called ``rejected`` expired, or None if too soon to renew.

        Concurrent sends all see the same rejection; only the first renews, the
        rest get the token it made.
        """
        if rejected != self._token:
            return self._token
        if _clock() - self._issued < TOKEN_MIN_AGE:
            return None
        self._issue()
        return self._token

    def _issue(self) -> None:
        claims = {"iss": self._team_id, "iat": int(time.time())}
        headers = {"kid": self._key_id}
        self._token = jwt.encode(claims, self._key, algorithm="ES256", headers=headers)
        self._issued = _clock()
        log.info("apns_token_issued", key_id=self._key_id)


_APNS_TOKEN = re.compile(r"^(?:[0-9a-fA-F]{2}){32,100}$")


def is_apns_token(recipient: str) -> bool:
    """APNs device tokens are hexadecimal (32 bytes today, longer allowed)."""
    return _APNS_TOKEN.match(recipient) is not None


@register("apns")
class APNsProvider(Provider):
    name = "apns"
    channels = frozenset({Channel.PUSH})

    def accepts(self, recipient: str) -> bool:
        return is_apns_token(recipient)

    def __init__(self, settings: Settings, store: Store) -> None:
        required = {
            "HERALD_APNS_KEY_FILE": settings.apns_key_file,
            "HERALD_APNS_KEY_ID": settings.apns_key_id,
            "HERALD_APNS_TEAM_ID": settings.apns_team_id,
            "HERALD_APNS_TOPIC": settings.apns_topic,
        }
        missing = [variable for variable, value in required.items() if not value]
        if missing:
            raise ConfigError(f"the apns provider needs {', '.join(missing)}")
        assert settings.apns_key_file and settings.apns_key_id and settings.apns_team_id
        assert settings.apns_topic
        key = _load_key(settings.apns_key_file)
        self._token = ProviderToken(key, settings.apns_key_id, settings.apns_team_id)
        self._topic = settings.apns_topic
        self._base = httpapi.base_url(settings.apns_base_url, "HERALD_APNS_BASE_URL")
        self._client = httpapi.new_client(http1=False, http2=True)

    async def send(self, message: Message) -> Receipt:
        headers, body = self._request(message)
        url = f"{self._base}/3/device/{quote(message.recipient, safe='')}"
        token = self._token.current()
        for _ in range(2):
            headers["authorization"] = f"bearer {token}"
            try:
                response = await self._client.post(url, json=body, headers=headers)
            except httpx.HTTPError as exc:
                raise httpapi.unreachable(self.name, "APNs", exc) from exc
            if response.status_code != 403 or _reason(response) != "ExpiredProviderToken":
                break
            renewed = self._token.renew(token)
            if renewed is None:
                raise TransientError(
                    "APNs says a provider token under 20 minutes old has expired: "
                    "check this machine's clock",
                    provider=self.name,
                )
            token = renewed
        if response.is_success:
            return Receipt(self.name, response.headers.get("apns-id", headers["apns-id"]))
        raise self._error(response)

    async def close(self) -> None:
        await self._client.aclose()

    def _request(self, message: Message) -> tuple[dict[str, str], dict[str, Any]]:
        """Headers and body, or PermanentError for metadata APNs would refuse anyway."""
        metadata = message.metadata
        push_type = str(metadata.get("apnsPushType") or "alert")
        if push_type not in _PUSH_TYPES:
            raise PermanentError(
                f"metadata apnsPushType {push_type!r} is not an APNs push type", provider=self.name
            )
        default_priority = 5 if push_type == "background" else 10
        priority = metadata.get("apnsPriority", default_priority)
        if str(priority) not in ("10", "5", "1"):
            raise PermanentError(
                f"metadata apnsPriority {priority!r} is not 10, 5 or 1", provider=self.name
            )
        suffix = _TOPIC_SUFFIX.get(push_type, "")
        topic = self._topic if self._topic.endswith(suffix) else self._topic + suffix
        headers = {
            "apns-topic": topic,
            "apns-push-type": push_type,
            "apns-priority": str(priority),
            "apns-id": apns_id(message.id),
        }
        collapse = metadata.get("collapseId")
        if collapse is not None:
            if not isinstance(collapse, str) or not 0 < len(collapse.encode()) <= 64:
                raise PermanentError(
                    "metadata collapseId must be a string of 1 to 64 bytes", provider=self.name
                )
            headers["apns-collapse-id"] = collapse
        aps: dict[str, Any]
        if push_type == "background":
            aps = {"content-available": 1}
        else:
            alert = {"body": message.body}
            if message.subject:
                alert["title"] = message.subject
            aps = {"alert": alert}
        return headers, {"aps": aps}

    def _error(self, response: httpx.Response) -> DeliveryError:
        status, reason = response.status_code, _reason(response)
        detail = f"{status} {reason}" if reason else httpapi.describe(response)
        if status == 410:
            return UnregisteredRecipient(
                f"APNs: the device token is no longer active ({detail})", provider=self.name
            )
        if httpapi.overloaded(response):
            return httpapi.busy(self.name, "APNs", response)
        if reason in _OPERATOR_REASONS or status == 403:
            return TransientError(
                f"APNs refused our credentials or topic ({detail}): check HERALD_APNS_KEY_FILE, "
                "HERALD_APNS_KEY_ID, HERALD_APNS_TEAM_ID, HERALD_APNS_TOPIC and "
                "HERALD_APNS_BASE_URL (production or sandbox)",
                provider=self.name,
            )
        return PermanentError(f"APNs refused the notification ({detail})", provider=self.name)


def apns_id(notification_id: str) -> str:
    """Herald's ids are 32 hex digits, a UUID already; anything else is hashed into one."""
    try:
        return str(uuid.UUID(hex=notification_id))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"herald:notification:{notification_id}"))


def _load_key(path: str) -> ec.EllipticCurvePrivateKey:
    where = f"HERALD_APNS_KEY_FILE ({path})"
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: cannot load the .p8 key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{where}: not a P-256 key as Apple issues them")
    return key


def _reason(response: httpx.Response) -> str | None:
    reason = httpapi.json_object(response).get("reason")
    return reason if isinstance(reason, str) else None

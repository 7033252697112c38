"""Push through Firebase Cloud Messaging's HTTP v1 API.

FCM v1 takes an OAuth 2.0 access token, not a key. The provider gets one the
way Google's own libraries do for a service account: it signs a JWT (RS256)
with the account's private key and trades it at the account's ``token_uri``.
The token is kept until shortly before it expires, and a single lock makes
sure a burst of sends triggers one exchange, not one per send.

The message goes to ``POST /v1/projects/{project}/messages:send``; its
``name`` (``projects/…/messages/…``) is the receipt. ``notification`` carries
the subject and body; ``data`` carries the metadata when every value in it is
a string, because FCM accepts nothing else there (other metadata is left out
rather than changed).

Errors: UNREGISTERED (404) is ``UnregisteredRecipient``; SENDER_ID_MISMATCH
and other 4xx (INVALID_ARGUMENT) are ``PermanentError``; 429 and 5xx are
``TransientError`` with ``Retry-After``. A 401 means the access token went
stale: one fresh token, one retry, then ``TransientError``. A refused service
account or a 403 is the operator's to fix, so it is transient too.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import rsa
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
from .apns import is_apns_token
from .base import Message, Provider, Receipt, register

log = structlog.get_logger("herald.providers.fcm")

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google accepts assertions valid for at most an hour.
ASSERTION_LIFETIME = 3600
#: Refresh this long before expiry (or a tenth of a short lifetime).
REFRESH_MARGIN = 300.0
_FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    key_id: str | None
    token_uri: str
    project_id: str | None

    @classmethod
    def load(cls, path: str) -> ServiceAccount:
        """Read the JSON key file Firebase's console hands out; refuse it loudly if broken."""
        where = f"HERALD_FCM_CREDENTIALS_FILE ({path})"
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{where}: cannot read the service account: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: not a service account JSON object")
        fields = {key: data.get(key) for key in ("client_email", "private_key", "token_uri")}
        missing = [key for key, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        try:
            key = load_pem_private_key(str(data["private_key"]).encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: private_key is not a PEM key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError(f"{where}: private_key is not an RSA key")
        key_id, project = data.get("private_key_id"), data.get("project_id")
        return cls(
            client_email=str(data["client_email"]),
            private_key=key,
            key_id=key_id if isinstance(key_id, str) else None,
            token_uri=httpapi.base_url(str(data["token_uri"]), f"{where} token_uri"),
            project_id=project if isinstance(project, str) and project else None,
        )


@register("fcm")
class FCMProvider(Provider):
    name = "fcm"
    channels = frozenset({Channel.PUSH})

    def accepts(self, recipient: str) -> bool:
        # FCM registration tokens are long and not hexadecimal; APNs tokens and
        # Web Push subscriptions go to their own providers.
        return not recipient.lstrip().startswith("{") and not is_apns_token(recipient)

    def __init__(self, settings: Settings, store: Store) -> None:
        if not settings.fcm_credentials_file:
            raise ConfigError("the fcm provider needs HERALD_FCM_CREDENTIALS_FILE")
        self._account = ServiceAccount.load(settings.fcm_credentials_file)
        project = settings.fcm_project_id or self._account.project_id
        if not project:
            raise ConfigError(
                "the fcm provider needs HERALD_FCM_PROJECT_ID "
                "(the credentials file names no project_id)"
            )
        base = httpapi.base_url(settings.fcm_base_url, "HERALD_FCM_BASE_URL")
        self._url = f"{base}/v1/projects/{project}/messages:send"
        self._client = httpapi.new_client()
        self._token: str | None = None
        self._refresh_at = 0.0
        self._refreshing = asyncio.Lock()

    async def send(self, message: Message) -> Receipt:
        body = {"message": _fcm_message(message)}
        token = await self._access_token()
        response = await self._post(body, token)
        # A 401 means the access token went stale, unless it is about the APNs or
        # Web Push credentials uploaded to Firebase, which a new token cannot fix.
        if response.status_code == 401 and _code(response) != "THIRD_PARTY_AUTH_ERROR":
            log.info("fcm_token_rejected", notification_id=message.id)
            response = await self._post(body, await self._access_token(stale=token))
        if response.is_success:
            name = httpapi.json_object(response).get("name")
            return Receipt(self.name, name if isinstance(name, str) else f"fcm-{message.id}")
        raise self._error(response)

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, body: dict[str, Any], token: str) -> httpx.Response:
        try:
            return await self._client.post(
                self._url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as exc:
            raise httpapi.unreachable(self.name, "FCM", exc) from exc

    async def _access_token(self, stale: str | None = None) -> str:
        """The cached token, unless it is near expiry or is ``stale`` (FCM refused it)."""
        token = self._cached(stale)
        if token is None:
            async with self._refreshing:
                token = self._cached(stale)  # another send may have refreshed it meanwhile
                if token is None:
                    token, lifetime = await self._exchange()
                    margin = min(REFRESH_MARGIN, lifetime / 10)
                    self._token, self._refresh_at = token, time.monotonic() + lifetime - margin
                    log.info("fcm_token_refreshed", expires_in=lifetime)
        return token

    def _cached(self, stale: str | None) -> str | None:
        token = self._token
        if token is None or token == stale or time.monotonic() >= self._refresh_at:
            return None
        return token

    async def _exchange(self) -> tuple[str, float]:
        account = self._account
        now = int(time.time())
        claims = {
            "iss": account.client_email,
            "scope": SCOPE,
            "aud": account.token_uri,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        headers = {"kid": account.key_id} if account.key_id else None
        assertion = jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)
        form = {"grant_type": GRANT_TYPE, "assertion": assertion}
        what = "the Google token endpoint"
        try:
            response = await self._client.post(account.token_uri, data=form)
        except httpx.HTTPError as exc:
            raise httpapi.unreachable(self.name, what, exc) from exc
        reply = httpapi.json_object(response)
        if httpapi.overloaded(response):
            raise httpapi.busy(self.name, what, response)
        token, lifetime = reply.get("access_token"), reply.get("expires_in", ASSERTION_LIFETIME)
        if not response.is_success or not isinstance(token, str) or not token:
            reason = reply.get("error_description") or reply.get("error")
            raise TransientError(
                f"{what} refused the service account {account.client_email} "
                f"({reason or httpapi.describe(response)}): check "
                "HERALD_FCM_CREDENTIALS_FILE and the clock",
                provider=self.name,
            )
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = ASSERTION_LIFETIME
        return token, float(lifetime)

    def _error(self, response: httpx.Response) -> DeliveryError:
        status, code = response.status_code, _code(response)
        error = httpapi.json_object(response).get("error")
        text = error.get("message") if isinstance(error, dict) else None
        if text:
            detail = " ".join(str(part) for part in (status, code, text) if part)
        else:
            detail = httpapi.describe(response)
        if code == "UNREGISTERED":
            return UnregisteredRecipient(
                f"FCM: the registration token is gone ({detail})", provider=self.name
            )
        if httpapi.overloaded(response):
            return httpapi.busy(self.name, "FCM", response)
        if code == "SENDER_ID_MISMATCH":
            return PermanentError(
                f"FCM: the token belongs to another sender ({detail})", provider=self.name
            )
        if status in (401, 403):
            return TransientError(
                f"FCM refused the request ({detail}): check the service account's "
                "permissions, HERALD_FCM_PROJECT_ID and the APNs/Web Push credentials in Firebase",
                provider=self.name,
            )
        return PermanentError(f"FCM refused the message ({detail})", provider=self.name)


def _fcm_message(message: Message) -> dict[str, Any]:
    notification = {"body": message.body}
    if message.subject:
        notification["title"] = message.subject
    body: dict[str, Any] = {"token": message.recipient, "notification": notification}
    metadata = message.metadata
    if metadata and all(isinstance(value, str) for value in metadata.values()):
        body["data"] = dict(metadata)
    elif metadata:
        log.info("fcm_data_left_out", notification_id=message.id, reason="not all strings")
    return body


def _code(response: httpx.Response) -> str | None:
    """The FCM ``errorCode`` (UNREGISTERED, …) from the error details, else the status."""
    error = httpapi.json_object(response).get("error")
    if not isinstance(error, dict):
        return None
    for detail in error.get("details") or ():
        if isinstance(detail, dict) and detail.get("@type") == _FCM_ERROR:
            code = detail.get("errorCode")
            if isinstance(code, str):
                return code
    status = error.get("status")
    return status if isinstance(status, str) else None

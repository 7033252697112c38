"""SMS through Twilio's Programmable Messaging REST API.

One call per message: ``POST /2010-04-01/Accounts/{sid}/Messages.json``,
form-encoded, HTTP basic auth with the account SID and auth token. The reply's
``sid`` (``SM…``) is the receipt; Twilio reports delivery later, to
``HERALD_TWILIO_STATUS_CALLBACK`` when it is set, else (when ``HERALD_PUBLIC_URL``
is) to Herald's own receipt endpoint, ``<public url>/api/receipts/twilio``.

Errors, for the retry ladder:

- 429 and 5xx: Twilio is busy or broken, ``TransientError`` with its
  ``Retry-After``.
- 401, 403, 404, and 400s that name the sender or the account's permissions
  (``_OPERATOR_CODES``): the operator has to fix the credentials, the number or
  the account, and notifications must not go to the DLQ before anyone can, so
  these are ``TransientError`` too, worded to say what to check.
- Every other 4xx is about this message, most often the recipient (21211
  invalid number, 21614 not a mobile, 21610 replied STOP, 21612 unreachable):
  ``PermanentError``.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
import structlog

from ..config import Settings
from ..errors import ConfigError, DeliveryError, PermanentError, TransientError
from ..models import Channel
from ..store.base import Store
from . import httpapi
from .base import Message, Provider, Receipt, register

log = structlog.get_logger("herald.providers.twilio")

#: 400 replies about our own configuration rather than the message: 21212 and
#: 21606 bad sender, 21408 region not enabled, 21660 sender not in the account.
_OPERATOR_CODES = frozenset({21212, 21408, 21606, 21660})
#: 400 replies that mean "later": 14107 is the account's send rate.
_LATER_CODES = frozenset({14107})
#: Where Herald takes Twilio's status callbacks (``api/receipts.py``), below its public URL.
RECEIPTS_PATH = "/api/receipts/twilio"


@register("twilio")
class TwilioProvider(Provider):
    name = "twilio"
    channels = frozenset({Channel.SMS})

    def __init__(self, settings: Settings, store: Store) -> None:
        sid, token = settings.twilio_account_sid, settings.twilio_auth_token
        sender = settings.twilio_from
        if not (sid and token and sender):
            missing = [
                variable
                for variable, value in (
                    ("HERALD_TWILIO_ACCOUNT_SID", sid),
                    ("HERALD_TWILIO_AUTH_TOKEN", token),
                    ("HERALD_TWILIO_FROM", sender),
                )
                if not value
            ]
            raise ConfigError(f"the twilio provider needs {', '.join(missing)}")
        base = httpapi.base_url(settings.twilio_base_url, "HERALD_TWILIO_BASE_URL")
        self._url = f"{base}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        self._auth = httpx.BasicAuth(sid, token)
        # A Messaging Service SID picks a sender from the service's pool.
        self._sender = ("MessagingServiceSid" if sender.startswith("MG") else "From", sender)
        self._callback = settings.twilio_status_callback or (
            settings.public_url + RECEIPTS_PATH if settings.public_url else None
        )
        self._client = httpapi.new_client()

    async def send(self, message: Message) -> Receipt:
        form = {"To": message.recipient, self._sender[0]: self._sender[1], "Body": message.body}
        if self._callback:
            form["StatusCallback"] = self._callback
        try:
            response = await self._client.post(self._url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            raise httpapi.unreachable(self.name, "Twilio", exc) from exc
        if response.is_success:
            sid = httpapi.json_object(response).get("sid")
            if not isinstance(sid, str):
                # Twilio took the message; failing now would send it twice.
                log.warning("twilio_reply_without_sid", notification_id=message.id)
                return Receipt(self.name, f"twilio-{message.id}")
            return Receipt(self.name, sid)
        raise self._error(response)

    async def close(self) -> None:
        await self._client.aclose()

    def _error(self, response: httpx.Response) -> DeliveryError:
        status = response.status_code
        reply = httpapi.json_object(response)
        code = reply.get("code")
        detail = f"{status} {code or ''} {reply.get('message') or ''}".strip()
        if httpapi.overloaded(response):
            return httpapi.busy(self.name, "Twilio", response)
        if status in (401, 403):
            return TransientError(
                f"Twilio refused the credentials ({detail}): check "
                "HERALD_TWILIO_ACCOUNT_SID and HERALD_TWILIO_AUTH_TOKEN",
                provider=self.name,
            )
        if status == 404:
            return TransientError(
                f"Twilio does not know the account ({detail}): check "
                "HERALD_TWILIO_ACCOUNT_SID and HERALD_TWILIO_BASE_URL",
                provider=self.name,
            )
        if code in _OPERATOR_CODES:
            return TransientError(
                f"Twilio refused the sender or account settings ({detail}): check "
                "HERALD_TWILIO_FROM and the account's messaging permissions",
                provider=self.name,
            )
        if code in _LATER_CODES:
            return httpapi.busy(self.name, "Twilio", response)
        if not reply:
            detail = httpapi.describe(response)
        return PermanentError(f"Twilio refused the message: {detail}", provider=self.name)

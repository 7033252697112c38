"""Chat and everything else Apprise reaches: the recipient is an Apprise URL.

``slack://…``, ``discord://…``, ``tgram://…``, ``msteams://…``, ``json://…``
and the rest of Apprise's services (https://github.com/caronc/apprise/wiki):
the URL names the service and carries its credentials, so one provider covers
them all and nothing needs configuring.

The recipient is parsed as exactly one service (a comma in it does not fan
out to several). Apprise's ``async_notify`` runs its blocking HTTP calls in a
thread pool, so a slow chat service holds a worker slot, not the event loop.
Apprise reports only success or failure, so a URL it cannot parse is a
``PermanentError`` (no attempt will parse it) and any failed delivery is a
``TransientError`` carrying the last thing Apprise logged about it.

Note: Apprise opens its own connections, so the webhook provider's guard
against private addresses does not apply to ``json://``, ``form://`` and
similar URLs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import apprise
import structlog

from ..config import Settings
from ..errors import PermanentError, TransientError
from ..models import Channel
from ..store.base import Store
from .base import Message, Provider, Receipt, register

log = structlog.get_logger("herald.providers.chat")

#: The whole call, retries of Apprise's own included, ends within this.
TIMEOUT = 30.0


@register("apprise")
class AppriseProvider(Provider):
    name = "apprise"
    channels = frozenset({Channel.CHAT})

    def destination(self, recipient: str) -> str | None:
        parts = urlsplit(recipient)
        return f"{parts.scheme}://{parts.hostname or ''}"

    def __init__(self, settings: Settings, store: Store) -> None:
        # Memory only: Apprise's persistent store would write under $HOME.
        self._asset = apprise.AppriseAsset(storage_mode="memory")

    async def send(self, message: Message) -> Receipt:
        scheme = message.recipient.partition("://")[0] or "?"
        service = apprise.Apprise.instantiate(message.recipient, asset=self._asset)
        if service is None:
            # Not the URL itself: it carries the service's credentials.
            raise PermanentError(
                f"Apprise cannot use this {scheme}:// URL (unknown service or malformed)",
                provider=self.name,
            )
        sender = apprise.Apprise(asset=self._asset)
        sender.add(service)
        with await sender.async_notify(
            body=message.body, title=message.subject or "", timeout=TIMEOUT
        ) as result:
            if result:
                return Receipt(self.name, f"apprise-{message.id}")
            reasons = [entry.message for entry in result.logs()]
            # Apprise's own rendering hides the credentials the URL carries.
            where = next((outcome.url for outcome in result), f"{scheme}://")
        log.info("apprise_failed", notification_id=message.id, service=where)
        reason = reasons[-1] if reasons else "no reason given"
        raise TransientError(f"Apprise could not deliver to {where}: {reason}", provider=self.name)

"""Chat through Apprise: the recipient is an Apprise URL, and only guarded services are used.

``slack://…``, ``discord://…``, ``tgram://…``, ``workflows://…`` (Microsoft
Teams), ``matrixs://…``, ``ntfy://…`` and the other services in ``GUARDED``
(https://github.com/caronc/apprise/wiki): the URL names the service and
carries its credentials, so one provider covers them all.

Where Apprise connects is a tenant's choice, so it goes through the
destination guard (``ssrf.py``) like a webhook: every such plugin makes its
HTTP calls with ``requests``, and while a send runs, requests connects only
through ``requestsdoor.RequestsDoor``, which resolves the host itself, refuses
loopback, private, link-local, multicast and reserved addresses (unless
``HERALD_CHAT_ALLOW_HOSTS`` admits them), connects to the address it
checked, and follows no redirect. Services that open other connections
(syslog over UDP, email over SMTP, XMPP, MQTT…) are not in ``GUARDED`` and
are refused, here and at the API; ``HERALD_CHAT_SCHEMES`` names the services
accepted, a subset of ``GUARDED``.

The recipient is parsed as exactly one service (a comma in it does not fan
out to several). Apprise runs its blocking HTTP calls in a thread pool, so a
slow chat service holds a worker slot, not the event loop. Apprise reports
only success or failure, so a URL it cannot parse is a ``PermanentError``; a
refused or unknown destination is a ``PermanentError`` and one that does not
answer a ``TransientError``, both in ``ssrf.withheld``'s words; any other
failed delivery is a ``TransientError`` carrying the last thing Apprise
logged about it, its credentials masked.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import apprise
import structlog

from ..config import Settings
from ..errors import ConfigError, PermanentError, TransientError
from ..models import Channel
from ..store.base import Store
from .base import Message, Provider, Receipt, register
from .requestsdoor import RequestsDoor
from .ssrf import Allowance, Guard, Resolver, mask_credentials, withheld

log = structlog.get_logger("herald.providers.chat")

#: The whole call, retries of Apprise's own included, ends within this.
TIMEOUT = 30.0

#: Apprise services whose plugins connect only through ``requests`` over HTTP(S),
#: so the guard sees every connection they make (checked against Apprise's
#: sources). Anything else is refused, whatever HERALD_CHAT_SCHEMES says.
GUARDED = frozenset({
    "slack", "discord", "guilded", "tgram", "workflow", "workflows", "gchat", "wxteams", "webex",
    "matrix", "matrixs", "ntfy", "ntfys", "gotify", "gotifys", "mmost", "mmosts", "rocket",
    "rockets", "zulip", "nctalk", "nctalks", "signal", "signals", "revolt", "ryver", "flock",
    "twist", "lark", "feishu", "dingtalk", "wecombot", "line", "pover", "pbul", "pagerduty",
    "opsgenie", "json", "jsons", "xml", "xmls", "form", "forms",
})  # fmt: skip


def scheme_of(recipient: str) -> str:
    return recipient.partition("://")[0].strip().lower()


def accepted_schemes(names: list[str]) -> frozenset[str]:
    """HERALD_CHAT_SCHEMES, checked: a service the guard cannot watch stops Herald at start."""
    schemes = frozenset(name.strip().lower().removesuffix("://") for name in names)
    unguarded = sorted(schemes - GUARDED)
    if unguarded:
        raise ConfigError(
            f"HERALD_CHAT_SCHEMES: Herald cannot guard the connections of {', '.join(unguarded)} "
            "(not HTTP through requests, or not checked); they cannot be enabled"
        )
    return schemes


class _MaskCredentials(logging.Filter):
    """Apprise's own log lines, with any URL credentials masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask_credentials(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


_apprise_logger = logging.getLogger("apprise")
if not any(isinstance(f, _MaskCredentials) for f in _apprise_logger.filters):
    _apprise_logger.addFilter(_MaskCredentials())


@register("apprise")
class AppriseProvider(Provider):
    name = "apprise"
    channels = frozenset({Channel.CHAT})

    def destination(self, recipient: str) -> str | None:
        parts = urlsplit(recipient)
        return f"{parts.scheme}://{parts.hostname or ''}"

    def __init__(self, settings: Settings, store: Store, resolver: Resolver | None = None) -> None:
        self._schemes = accepted_schemes(settings.chat_schemes)
        allowance = Allowance.parse(settings.chat_allow_hosts, "HERALD_CHAT_ALLOW_HOSTS")
        self._door = RequestsDoor(Guard(allowance, resolver))
        # Memory only: Apprise's persistent store would write under $HOME.
        self._asset = apprise.AppriseAsset(storage_mode="memory")

    async def send(self, message: Message) -> Receipt:
        scheme = scheme_of(message.recipient) or "?"
        if scheme not in self._schemes:
            raise PermanentError(
                f"{scheme}:// is not an accepted chat service (HERALD_CHAT_SCHEMES)",
                provider=self.name,
            )
        service = apprise.Apprise.instantiate(message.recipient, asset=self._asset)
        if service is None:
            # Not the URL itself: it carries the service's credentials.
            raise PermanentError(
                f"Apprise cannot use this {scheme}:// URL (unknown service or malformed)",
                provider=self.name,
            )
        sender = apprise.Apprise(asset=self._asset)
        sender.add(service)
        with self._door.open() as seen:
            result = await sender.async_notify(
                body=message.body, title=message.subject or "", timeout=TIMEOUT
            )
        with result:
            if result:
                return Receipt(self.name, f"apprise-{message.id}")
            reasons = [entry.message for entry in result.logs()]
            # Apprise's own rendering hides most of the credentials the URL carries.
            where = next((outcome.url for outcome in result), f"{scheme}://")
        host = seen.host or f"the {scheme}:// service"
        if seen.refused:
            log.warning("chat_destination_refused", notification_id=message.id, reason=seen.refused)
            raise PermanentError(withheld(host), provider=self.name)
        if seen.unreachable:
            log.info("chat_unreachable", notification_id=message.id, reason=seen.unreachable)
            raise TransientError(withheld(host), provider=self.name)
        if seen.redirected:
            raise PermanentError(
                f"the {scheme}:// service answered with a redirect, which is not followed",
                provider=self.name,
            )
        log.info("apprise_failed", notification_id=message.id, service=mask_credentials(where))
        reason = reasons[-1] if reasons else "no reason given"
        raise TransientError(
            mask_credentials(f"Apprise could not deliver to {where}: {reason}"), provider=self.name
        )

    async def close(self) -> None:
        self._door.close()

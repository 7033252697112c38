"""One-click unsubscribe: signed tokens naming who leaves which category, and the headers
that carry them (RFC 2369 ``List-Unsubscribe``, RFC 8058 ``List-Unsubscribe-Post``).

A token is the subscription itself, signed, so following a link needs no row
kept per message: a version byte, the tenant, the category and the recipient
(each a two-byte length and UTF-8), then HMAC-SHA256 of all that under the
server secret ``unsubscribe`` (``store.access.server_secret``), in unpadded
base64url. Nothing expires: a link in a years-old email still works, as mail
providers expect. Links are built from ``HERALD_PUBLIC_URL``, never from a
request's Host. Usage::

    links = await Links.load(store, settings)
    token = links.token(Subscription("acme", "ada@example.com", "newsletter"))
    assert links.read(token).category == "newsletter"   # BadToken if forged
    links.headers_for(claim)  # (("List-Unsubscribe", "<https://…/u/…>"), …) or ()
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

import structlog

from .config import Settings
from .errors import BadToken
from .models import Channel, Claim
from .store.base import Store

log = structlog.get_logger("herald.unsubscribe")

VERSION = 1
#: Longer tokens are refused before they are decoded or hashed.
MAX_TOKEN = 1024
SECRET_NAME = "unsubscribe"
_MAC = 32
_LENGTH = struct.Struct(">H")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
#: What may stand between ``<`` and ``>`` in List-Unsubscribe without quoting: a URL's
#: printable ASCII, less the characters that would end or split the header's list.
_HEADER_URL = re.compile(r"[!#-;=?-~]+")
#: A List-Unsubscribe line longer than this would not fit RFC 5322's 998 octets.
_MAX_LINK = 900
ONE_CLICK = ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")


@dataclass(frozen=True, slots=True)
class Subscription:
    """A recipient of a tenant's messages in one category: what a token names."""

    tenant_id: str
    recipient: str
    category: str


class Links:
    """Signs and reads unsubscribe tokens; builds the links and headers that carry them."""

    def __init__(self, secret: str, public_url: str | None, mailto: str | None = None) -> None:
        self._key = secret.encode("utf-8")
        self.public_url = public_url
        self._mailto = None if mailto is None else f"<mailto:{mailto}?subject=unsubscribe>"

    @classmethod
    async def load(cls, store: Store, settings: Settings) -> Links:
        """Links under the store's secret, which every process of the installation shares."""
        secret = await store.access.server_secret(SECRET_NAME)
        return cls(secret, settings.public_url, settings.unsubscribe_mailto)

    def token(self, subscription: Subscription) -> str:
        payload = bytes([VERSION]) + b"".join(
            _LENGTH.pack(len(data)) + data
            for data in (
                subscription.tenant_id.encode("utf-8"),
                subscription.category.encode("utf-8"),
                subscription.recipient.encode("utf-8"),
            )
        )
        raw = payload + self._sign(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def read(self, token: str) -> Subscription:
        """The subscription ``token`` names; ``BadToken`` unless Herald signed it as it is."""
        if len(token) > MAX_TOKEN:
            raise BadToken("oversized")
        if _BASE64URL.fullmatch(token) is None:
            raise BadToken("not base64url")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise BadToken("not base64url") from None
        payload, mac = raw[:-_MAC], raw[-_MAC:]
        if len(raw) <= _MAC or payload[0] != VERSION:
            raise BadToken("unknown version")
        if not hmac.compare_digest(mac, self._sign(payload)):
            raise BadToken("bad signature")
        try:
            tenant, category, recipient = _fields(payload[1:])
        except (ValueError, struct.error):
            raise BadToken("malformed") from None
        return Subscription(tenant, recipient, category)

    def url(self, subscription: Subscription) -> str | None:
        """``<public_url>/u/<token>``; None without HERALD_PUBLIC_URL."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/u/{self.token(subscription)}"

    def headers_for(self, claim: Claim) -> tuple[tuple[str, str], ...]:
        """The unsubscribe headers for an email in a category its tenant made unsubscribable;
        none for anything else, or when no link can be built (no public URL)."""
        if not (claim.unsubscribable and claim.category and claim.channel is Channel.EMAIL):
            return ()
        link = self.url(Subscription(claim.tenant_id, claim.recipient, claim.category))
        if link is None:
            return ()
        if len(link) > _MAX_LINK or _HEADER_URL.fullmatch(link) is None:
            log.warning("unsubscribe_link_unusable", notification_id=claim.id, length=len(link))
            return ()
        value = f"<{link}>" if self._mailto is None else f"<{link}>, {self._mailto}"
        return (("List-Unsubscribe", value), ONE_CLICK)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _fields(data: bytes) -> tuple[str, str, str]:
    """Three length-prefixed UTF-8 strings filling ``data`` exactly, or ValueError."""
    found = []
    at = 0
    for _ in range(3):
        (size,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + size > len(data):
            raise ValueError("truncated")
        found.append(data[at : at + size].decode("utf-8"))
        at += size
    if at != len(data):
        raise ValueError("trailing bytes")
    return found[0], found[1], found[2]

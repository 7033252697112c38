"""Herald's outbound side of SES receipts: SNS signing certificates and subscription confirmations.

Both are GETs of URLs an SNS message names, which the verifier has already
admitted (https, on a host of the allow-list: ``sns.<region>.amazonaws.com``,
or exactly the hosts of ``HERALD_SNS_CERT_HOSTS``). They still go through the
destination guard (``providers/httpxdoor.py``), so a public name that resolves
to a private address is refused; the hosts an operator named in
``HERALD_SNS_CERT_HOSTS`` are admitted wherever they resolve, since naming
them is the operator's choice (a test server on loopback, an internal mirror).
``HERALD_SNS_CA_FILE`` adds roots to the usual ones for such a server's TLS.
No redirects, no proxies from the environment, and bounded time and size.

A reply that cannot be read now (no connection, a timeout, a 5xx) is
``SnsUnreachable``: the endpoint answers 503 so that SNS retries. A
certificate URL answering 4xx is ``ReceiptRefused``: that message was not
signed with a certificate SNS serves.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

import httpx

from ..errors import RefusedDestination
from ..providers.httpapi import new_client
from ..providers.httpxdoor import GuardedTransport
from ..providers.ssrf import Allowance
from ..receipts.base import ReceiptRefused
from ..receipts.sns import MAX_CERTIFICATE

#: SNS answers a confirmation with a short XML document; nothing needs more.
MAX_CONFIRMATION_REPLY = 64 * 1024
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class SnsUnreachable(Exception):
    """The URL could not be read now; SNS's retry may find it."""


class SnsClient:
    """Fetches what SNS messages point to. ``named``: the hosts of HERALD_SNS_CERT_HOSTS."""

    def __init__(self, named: Sequence[str] = (), ca_file: str | None = None) -> None:
        self.allowance = Allowance(hosts=frozenset(host.rpartition(":")[0] or host
                                                   for host in named))  # fmt: skip
        self.context = httpx.create_ssl_context(trust_env=False)
        if ca_file:
            self.context.load_verify_locations(cafile=ca_file)

    async def certificate(self, url: str) -> bytes:
        """The PEM at ``url`` (``sns.Fetch``)."""
        status, body = await self._get(url, MAX_CERTIFICATE)
        if 400 <= status < 500:
            raise ReceiptRefused(f"the signing certificate URL answered {status}")
        return body

    async def confirm(self, url: str) -> None:
        """GET the ``SubscribeURL``: that is what confirms the subscription."""
        status, _ = await self._get(url, MAX_CONFIRMATION_REPLY)
        if status >= 400:
            raise SnsUnreachable(f"the SubscribeURL answered {status}")

    async def _get(self, url: str, limit: int) -> tuple[int, bytes]:
        """Status and body, if under ``limit`` bytes; ``SnsUnreachable`` if not now."""
        transport = GuardedTransport(self.allowance, ssl_context=self.context)
        try:
            async with (
                new_client(timeout=TIMEOUT, transport=transport) as client,
                client.stream("GET", url) as reply,
            ):
                if reply.status_code >= 500:
                    raise SnsUnreachable(f"{url} answered {reply.status_code}")
                body = bytearray()
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise ReceiptRefused(f"the reply is larger than {limit} bytes")
                return reply.status_code, bytes(body)
        except (httpx.HTTPError, RefusedDestination, ssl.SSLError, OSError) as exc:
            raise SnsUnreachable(f"cannot read {url}: {exc}") from exc

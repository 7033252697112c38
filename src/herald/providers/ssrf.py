"""Requests to URLs that tenants choose, kept away from Herald's own network.

A webhook URL or a Web Push endpoint comes from a client, so without a guard
Herald would POST wherever it is told: to ``127.0.0.1``, the cloud metadata
service at ``169.254.169.254``, or a database on the private network. Checking
the URL's text cannot work (``http://2130706433/``, ``http://0x7f.1/``,
``http://[::ffff:127.0.0.1]/`` and any DNS name can all mean loopback), and
checking the name's DNS answer before the request loses to DNS rebinding (the
name resolves to a public address for the check and to a private one for the
connection).

So the guard sits where the socket is opened: ``GuardedBackend`` is the
httpcore network backend that resolves the host itself, refuses the
connection if any answer is not a public unicast address, and then connects
to an address it checked, never resolving again. TLS and the ``Host`` header
still use the URL's name. ``Allowance`` lets an operator admit names or
networks (a webhook receiver on the private network, a test server).
Proxies from the environment are never used: through a proxy, the address
checked would be the proxy's.

Usage::

    transport = GuardedTransport(Allowance.parse("10.1.2.0/24, hooks.internal", "HERALD_X"))
    client = httpx.AsyncClient(transport=transport)
    # client.post(...) raises RefusedDestination for a private destination
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from ..errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Instance metadata services, named so the refusal says what was at stake.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "fd00:ec2::254")
)
#: Not globally routable, though Python's ``is_global`` says otherwise for them.
_ALSO_REFUSED = tuple(
    ipaddress.ip_network(n) for n in ("192.0.0.0/24", "64:ff9b:1::/48", "100::/64")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_-]{1,63})*$")


class RefusedDestination(Exception):
    """The destination is not public and not admitted: no connection was made."""


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be connected to, or None for a public unicast address.

    An IPv6 address that carries an IPv4 one (mapped, 6to4, NAT64) is judged by
    the IPv4 address, which is where the packets end up: on an IPv6-only host
    behind NAT64, every IPv4 destination looks like ``64:ff9b::a.b.c.d``.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return None if inner is None else f"{inner}, embedded in {address}"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address in _METADATA, "cloud metadata"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
        (any(address in network for network in _ALSO_REFUSED), "not globally routable"),
    )
    return next((reason for refused, reason in checks if refused), None)


@dataclass(frozen=True, slots=True)
class Allowance:
    """Names and networks an operator admits although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, value: str, variable: str) -> Allowance:
        """``"hooks.internal, 10.0.0.0/8, 192.168.1.7"``; ConfigError names ``variable``."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (part.strip() for part in value.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if not _HOSTNAME.match(name):
                raise ConfigError(f"{variable}: {entry!r} is neither a host name nor a network")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    def admits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def admits(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            candidates.append(address.ipv4_mapped)
        return any(a in network for a in candidates for network in self.networks)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, check every answer, connect to a checked address: no second lookup."""

    def __init__(
        self, allowance: Allowance, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._allowance = allowance
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        if not self._allowance.admits_host(host):
            for address in addresses:
                reason = refusal(address)
                if reason is not None and not self._allowance.admits(address):
                    shown = host if host == str(address) else f"{host} ({address})"
                    raise RefusedDestination(f"refused to connect to {shown}: {reason} address")
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise RefusedDestination("refused to connect to a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a ``GuardedBackend``.

    httpx takes no network backend, so the connection pool it builds is
    replaced by one that has the guard (same TLS context and limits).
    """

    def __init__(
        self,
        allowance: Allowance,
        *,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        **options: Any,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits, http2=http2, **options)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http2=http2,
            network_backend=GuardedBackend(allowance),
        )


async def _resolve(host: str, port: int, timeout: float | None) -> list[IPAddress]:
    """Every address ``host`` names, in the resolver's order, each once."""
    loop = asyncio.get_running_loop()
    try:
        answers = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
        )
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
    except (OSError, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
    return addresses

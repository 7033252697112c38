"""Where Herald connects on a tenant's behalf: one destination guard for every such connection.

A webhook or status callback URL, a Web Push endpoint and a chat (Apprise)
URL come from clients, so without a guard Herald would connect wherever it is
told: to ``127.0.0.1``, the cloud metadata service at ``169.254.169.254``, or
a database on the private network. Checking the URL's text cannot work
(``http://2130706433/``, ``http://0x7f.1/``, ``http://[::ffff:127.0.0.1]/``
and any DNS name can all mean loopback), and checking the name's DNS answer
before the request loses to DNS rebinding (the name resolves to a public
address for the check and to a private one for the connection).

So the guard sits where the socket is opened: ``Guard`` resolves the host
itself, refuses (``RefusedDestination``) if any answer is not a public
unicast address, and the connection then goes to an address it checked,
never resolving again. TLS and the ``Host`` header still use the URL's name.
``Allowance`` lets an operator admit names or networks (a receiver on the
private network, a test server). This module holds those rules; two doors
lead to the one guard:

- httpx (webhooks, status callbacks, Web Push): ``httpxdoor.GuardedTransport``,
  an httpx transport over httpcore's connection pool with a network backend
  that connects through the guard.
- requests (Apprise, behind every chat service): ``requestsdoor.RequestsDoor``.
  Apprise's plugins call ``requests.post`` in worker threads, so there is no
  client to hand a transport to; while the door is open, every
  ``requests.Session`` sends through the door's adapter.

Neither door follows redirects or uses proxies from the environment (through
a proxy, the address checked would be the proxy's). A caller is told the
same words (``withheld``) whether its destination was refused, has no
address or did not answer; the reason goes to the log, or errors would map
the private network for whoever asks. Credentials in a URL are shown as
``user:****@`` (``mask_credentials``).

Usage::

    guard = Guard(Allowance.parse("10.1.2.0/24, hooks.internal", "HERALD_X"))
    addresses = await guard.resolve_async("hooks.internal", 443, timeout=5.0)
    # RefusedDestination for a private destination; else connect to one of ``addresses``
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import ConfigError, RefusedDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: A blocking lookup, ``(host, port)`` to addresses; tests answer chosen names.
Resolver = Callable[[str, int], Iterable[str]]

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
#: getaddrinfo's "this name has no address": refused like a private address, so
#: that the two cannot be told apart.
_NO_SUCH_HOST = frozenset(
    getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)
)
#: The user information of a URL: ``scheme://`` up to the authority's last ``@``.
_USERINFO = re.compile(r"://([^\s/?#]*)@")


def withheld(host: str) -> str:
    """What a caller learns of a destination that was refused, unknown or unreachable."""
    return f"cannot reach {host}: it did not answer, or it is not an allowed destination"


def mask_credentials(text: str) -> str:
    """``rocket://user:pass@host/room`` as ``rocket://user:****@host/room``, anywhere in it."""
    if "@" not in text or "://" not in text:
        return text

    def mask(found: re.Match[str]) -> str:
        user, colon, _secret = found.group(1).partition(":")
        return f"://{user}:****@" if colon else "://****@"

    return _USERINFO.sub(mask, text)


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


@dataclass(frozen=True, slots=True)
class Guard:
    """Resolve once, refuse unless every answer is public or admitted, connect to what was checked.

    ``resolver`` replaces the system's lookup (tests use it to give a name a
    loopback address); ``None`` asks the system (the event loop's resolver in
    async code).
    """

    allowance: Allowance = field(default_factory=Allowance)
    resolver: Resolver | None = None

    def check(self, host: str, answers: Iterable[str]) -> list[IPAddress]:
        """The answers as addresses, each once, or RefusedDestination."""
        addresses: list[IPAddress] = []
        for answer in answers:
            address = ipaddress.ip_address(str(answer).partition("%")[0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise RefusedDestination(f"refused to connect to {host}: no such host")
        if self.allowance.admits_host(host):
            return addresses
        for address in addresses:
            reason = refusal(address)
            if reason is not None and not self.allowance.admits(address):
                shown = host if host == str(address) else f"{host} ({address})"
                raise RefusedDestination(f"refused to connect to {shown}: {reason} address")
        return addresses

    def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Blocking: the checked addresses of ``host``."""
        try:
            if self.resolver is not None:
                answers = list(self.resolver(host, port))
            else:
                found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                answers = [str(info[4][0]) for info in found]
        except (OSError, UnicodeError) as exc:
            if _no_such_host(exc):
                raise RefusedDestination(f"refused to connect to {host}: no such host") from exc
            raise
        return self.check(host, answers)

    async def resolve_async(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        """The checked addresses of ``host``, without blocking the event loop.

        RefusedDestination, or TimeoutError and OSError for a lookup that may work
        later: each door says those in its own library's errors.
        """
        loop = asyncio.get_running_loop()
        try:
            if self.resolver is not None:
                lookup = loop.run_in_executor(None, self.resolver, host, port)
                answers = [str(a) for a in await asyncio.wait_for(lookup, timeout)]
            else:
                found = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
                )
                answers = [str(info[4][0]) for info in found]
        except (OSError, UnicodeError) as exc:
            if _no_such_host(exc):
                raise RefusedDestination(f"refused to connect to {host}: no such host") from exc
            raise
        return self.check(host, answers)


def _no_such_host(exc: Exception) -> bool:
    """The name has no address (refused), as opposed to a lookup that may work later."""
    return isinstance(exc, UnicodeError) or (
        isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_HOST
    )

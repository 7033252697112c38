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
itself, refuses if any answer is not a public unicast address, and the
connection then goes to an address it checked, never resolving again. TLS
and the ``Host`` header still use the URL's name. ``Allowance`` lets an
operator admit names or networks (a receiver on the private network, a test
server). Two doors lead to the one guard:

- httpx (webhooks, status callbacks, Web Push): ``GuardedTransport``, whose
  httpcore network backend connects through the guard.
- requests (Apprise, behind every chat service): ``RequestsDoor``. Apprise's
  plugins call ``requests.post`` in worker threads, so there is no client to
  hand a transport to. While ``door.open()`` is active (a context variable,
  which Apprise copies into its threads), every ``requests.Session`` sends
  through the door's adapter, whose urllib3 connections connect through the
  guard. Outside it, requests behaves as it always does.

Neither door follows redirects or uses proxies from the environment (through
a proxy, the address checked would be the proxy's). A caller is told the
same words (``withheld``) whether its destination was refused, has no
address or did not answer; the reason goes to the log, or errors would map
the private network for whoever asks. Credentials in a URL are shown as
``user:****@`` (``mask_credentials``).

Usage::

    guard = Guard(Allowance.parse("10.1.2.0/24, hooks.internal", "HERALD_X"))
    client = httpx.AsyncClient(transport=GuardedTransport(guard))
    # client.post(...) raises RefusedDestination for a private destination
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from ..errors import ConfigError

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


class RefusedDestination(Exception):
    """The destination is not public and not admitted, or has no address: nothing was sent.

    Its text says why, for the log; a caller is told ``withheld(host)``.
    """


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
        """The checked addresses of ``host``, without blocking the event loop."""
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
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except (OSError, UnicodeError) as exc:
            if _no_such_host(exc):
                raise RefusedDestination(f"refused to connect to {host}: no such host") from exc
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        return self.check(host, answers)

    def connect(
        self,
        host: str,
        port: int,
        timeout: Any = None,
        source_address: tuple[str, int] | None = None,
        socket_options: Any = None,
    ) -> socket.socket:
        """Blocking: a TCP socket to a checked address of ``host``."""
        failure: OSError | None = None
        for address in self.resolve(host, port):
            try:
                return urllib3_connection.create_connection(
                    (str(address), port), timeout, source_address, socket_options
                )
            except OSError as exc:
                failure = exc
        assert failure is not None
        raise failure


def _no_such_host(exc: Exception) -> bool:
    """The name has no address (refused), as opposed to a lookup that may work later."""
    return isinstance(exc, UnicodeError) or (
        isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_HOST
    )


# -- the httpx door -------------------------------------------------------------


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses the guard checked."""

    def __init__(self, guard: Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve_async(host, port, timeout)
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
    """httpx's transport over a ``GuardedBackend`` (an ``Allowance`` means the system resolver).

    httpx takes no network backend, so the connection pool it builds is
    replaced by one that has the guard (same TLS context and limits).
    """

    def __init__(
        self,
        guard: Guard | Allowance,
        *,
        limits: httpx.Limits | None = None,
        http2: bool = False,
        **options: Any,
    ) -> None:
        guard = guard if isinstance(guard, Guard) else Guard(guard)
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits, http2=http2, **options)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http2=http2,
            network_backend=GuardedBackend(guard),
        )


# -- the requests door ----------------------------------------------------------


@dataclass
class Seen:
    """What happened at the guard during one ``RequestsDoor.open()``, for the caller's error."""

    host: str | None = None
    refused: str | None = None  # why the guard refused (for the log)
    unreachable: str | None = None  # why a checked address did not answer (for the log)
    redirected: bool = False  # a reply redirected, and the redirect was not followed


_OPEN: contextvars.ContextVar[tuple[RequestsDoor, Seen] | None] = contextvars.ContextVar(
    "herald_requests_door", default=None
)


class RequestsDoor:
    """requests' way through the guard, for libraries that call requests themselves.

    Usage::

        door = RequestsDoor(Guard(allowance))
        with door.open() as seen:
            requests.post(url)  # through the guard: no redirects, no proxies
        if seen.refused: ...
        door.close()
    """

    def __init__(self, guard: Guard) -> None:
        _install()
        self.guard = guard
        self.adapter: HTTPAdapter = _GuardedAdapter()

    @contextlib.contextmanager
    def open(self) -> Iterator[Seen]:
        """Guard every request made in this context, and in threads that copy it."""
        seen = Seen()
        token = _OPEN.set((self, seen))
        try:
            yield seen
        finally:
            _OPEN.reset(token)

    def close(self) -> None:
        self.adapter.close()


def _connect(conn: HTTPConnection) -> socket.socket:
    """urllib3's ``_new_conn`` through the open door's guard, in urllib3's own errors."""
    current = _OPEN.get()
    if current is None:  # only the door's adapter makes these connections, while it is open
        raise NewConnectionError(conn, "refused: no destination guard is open")
    door, seen = current
    seen.host = conn.host
    try:
        return door.guard.connect(
            conn._dns_host, conn.port, conn.timeout, conn.source_address, conn.socket_options
        )
    except RefusedDestination as exc:
        seen.refused = str(exc)
        raise NewConnectionError(conn, str(exc)) from exc
    except TimeoutError as exc:
        seen.unreachable = f"connecting to {conn.host} timed out"
        raise ConnectTimeoutError(conn, seen.unreachable) from exc
    except OSError as exc:
        seen.unreachable = f"cannot connect to {conn.host}: {exc}"
        raise NewConnectionError(conn, seen.unreachable) from exc


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        return _connect(self)  # TLS is then set up on it for the URL's name


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter with guarded connection pools, never through a proxy, never retrying."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        return super().send(request, stream, timeout, verify, cert, proxies=None)


_installed = False
_install_lock = threading.Lock()


def _install() -> None:
    """Send requests through the open door: two methods of ``requests.Session``.

    Both do what they always did while no door is open in the calling context.
    ``get_adapter`` is asked for every request a session sends (redirects
    included); ``get_redirect_target`` is how a session finds where to go next.
    """
    global _installed
    with _install_lock:
        if _installed:
            return
        get_adapter = requests.Session.get_adapter
        get_redirect_target = requests.Session.get_redirect_target

        def guarded_adapter(session: Any, url: str) -> BaseAdapter:
            current = _OPEN.get()
            if current is None:
                return get_adapter(session, url)
            if not url.lower().startswith(("http://", "https://")):
                raise requests.exceptions.InvalidSchema("only http:// and https:// are guarded")
            return current[0].adapter

        def no_redirect(session: Any, response: requests.Response) -> str | None:
            current = _OPEN.get()
            target = get_redirect_target(session, response)
            if current is None:
                return target
            if target is not None:
                current[1].redirected = True
            return None

        requests.Session.get_adapter = guarded_adapter  # type: ignore[method-assign,assignment]
        requests.Session.get_redirect_target = no_redirect  # type: ignore[method-assign,assignment]
        _installed = True

"""The requests door to the destination guard, for Apprise (every chat service).

Apprise's plugins call ``requests.post`` in worker threads, so there is no
client to hand a transport to. While ``door.open()`` is active (a context
variable, which Apprise copies into its threads), every ``requests.Session``
sends through the door's adapter, whose urllib3 connections connect through
the guard (``ssrf.Guard``) to an address it checked, TLS still set up for the
URL's name. Outside it, requests behaves as it always does. The adapter never
uses a proxy and never retries, and no redirect is followed.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from ..errors import RefusedDestination
from .ssrf import Guard


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


def _checked_socket(guard: Guard, conn: HTTPConnection) -> socket.socket:
    """Blocking: a TCP socket to an address of ``conn.host`` the guard checked."""
    failure: OSError | None = None
    for address in guard.resolve(conn._dns_host, conn.port):
        try:
            return urllib3_connection.create_connection(
                (str(address), conn.port), conn.timeout, conn.source_address, conn.socket_options
            )
        except OSError as exc:
            failure = exc
    assert failure is not None
    raise failure


def _connect(conn: HTTPConnection) -> socket.socket:
    """urllib3's ``_new_conn`` through the open door's guard, in urllib3's own errors."""
    current = _OPEN.get()
    if current is None:  # only the door's adapter makes these connections, while it is open
        raise NewConnectionError(conn, "refused: no destination guard is open")
    door, seen = current
    seen.host = conn.host
    try:
        return _checked_socket(door.guard, conn)
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

"""Watching where the HTTP stack connects: a counting listener, and a spy on every TCP connect.

httpcore's backend opens every TCP connection through ``anyio.connect_tcp``,
so the spy sees each address asked for, and the listener on 127.0.0.1 (and
::1 where there is one) counts what reaches it. A guard that works leaves
both untouched. Test modules import the ``listener`` and ``connects``
fixtures from here (as ``listener_fixture`` and ``connects_fixture``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
import pytest_asyncio


class Listener:
    """TCP on 127.0.0.1 (and ::1, one port), counting connections; answering ``200 ok``.

    With a TLS context it serves HTTPS, on 127.0.0.1 only.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.accepted = 0
        self.port = 0
        self.tls = tls
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                await writer.drain()
            writer.close()

        first = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=self.tls)
        self.port = first.sockets[0].getsockname()[1]
        self._servers.append(first)
        if self.tls is None:
            with contextlib.suppress(OSError):  # no IPv6 loopback: the connect spy still watches
                self._servers.append(await asyncio.start_server(answer, "::1", self.port))

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()


@pytest_asyncio.fixture(name="listener")
async def listener_fixture() -> AsyncIterator[Listener]:
    watched = Listener()
    await watched.start()
    yield watched
    await watched.stop()


@pytest.fixture(name="connects")
def connects_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every TCP connect the HTTP stack attempts, as (host, port)."""
    attempts: list[tuple[str, int]] = []
    real = anyio.connect_tcp

    async def spy(remote_host: str, remote_port: int, **options: Any) -> Any:
        attempts.append((str(remote_host), remote_port))
        return await real(remote_host, remote_port, **options)

    monkeypatch.setattr(anyio, "connect_tcp", spy)
    yield attempts

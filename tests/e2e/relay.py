"""A loopback TCP relay in front of Herald that can lose answers on purpose.

Each client connection carries one request: the relay forwards it to Herald
(``Connection: close``), reads the whole answer, and passes it back, unless
``lose`` says to drop it: then it closes the client's connection without a
byte, as a network that failed after the request arrived. Its event loop runs
in a thread of its own, so blocking and asyncio clients can both use it.

Usage::

    with LossyRelay(herald.port, lose=first("POST", "/api/notifications")) as relay:
        ...call relay.url...
        assert [r.answered for r in relay.requests] == [False, True]
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Relayed:
    method: str
    path: str
    headers: dict[str, str]
    answered: bool = False


Lose = Callable[[Relayed], bool]


def first(method: str, path: str) -> Lose:
    """Lose the answer to the first ``method path`` only."""
    lost = False

    def lose(request: Relayed) -> bool:
        nonlocal lost
        if lost or (request.method, request.path) != (method, path):
            return False
        lost = True
        return True

    return lose


class LossyRelay:
    def __init__(self, target_port: int, lose: Lose) -> None:
        self.target_port = target_port
        self.lose = lose
        self.requests: list[Relayed] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> LossyRelay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._relay, "127.0.0.1", 0)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request, headers = _parse(head)
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(request)
            answer = await self._forward(head, body)
            if not self.lose(request):
                writer.write(answer)
                await writer.drain()
                request.answered = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")[:-2]
        kept = [line for line in lines if not line.lower().startswith("connection:")]
        sent = "\r\n".join([*kept, "Connection: close", "", ""]).encode("latin-1") + body
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        try:
            upstream_writer.write(sent)
            await upstream_writer.drain()
            return await upstream_reader.read()  # to the end: Herald closes after answering
        finally:
            upstream_writer.close()


def _parse(head: bytes) -> tuple[Relayed, dict[str, str]]:
    first_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = first_line.split(" ", 2)
    headers = {}
    for line in lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return Relayed(method, target.split("?", 1)[0], headers), headers

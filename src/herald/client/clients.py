"""``Herald`` and ``AsyncHerald``: the same methods (``endpoints.Routes``), two ways to send.

Each is a thin transport over one ``httpx`` client: send a ``Call``, ask its
``Tries`` whether and when to send it again, sleep, and read the answer.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from .. import __version__
from .calls import Call
from .endpoints import AsyncSender, Routes, SyncSender
from .retrying import RetryPolicy

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def _connection(
    url: str, key: str, timeout: float | httpx.Timeout, tenant: str | None
) -> dict[str, Any]:
    """What both ``httpx`` clients are built with: base URL, credential, timeout."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json",
        "User-Agent": f"herald-client/{__version__}",
    }
    if tenant is not None:
        headers["X-Herald-Tenant"] = tenant
    return {
        "base_url": url.rstrip("/"),
        "headers": headers,
        "timeout": timeout,
        "follow_redirects": False,
    }


class Herald(SyncSender, Routes):
    """A blocking client for Herald's HTTP API.

    ``url`` is where Herald answers (``http://127.0.0.1:8000``), ``key`` an API
    key. ``timeout`` bounds each attempt (seconds, or an ``httpx.Timeout``);
    ``retry`` how often and how long a call is tried again (``RetryPolicy``);
    ``tenant`` acts for another tenant (an ``admin`` key). ``transport`` is
    passed to ``httpx.Client`` (a proxy, a test double).

    ::

        with Herald("http://127.0.0.1:8000", key) as herald:
            sent = herald.create_notification(
                type="EMAIL", recipient="ada@example.com", subject="Hi", message="Hello"
            )
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        tenant: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(**_connection(url, key, timeout, tenant), transport=transport)

    def _send(self, call: Call[T]) -> T:
        tries = call.tries(self.retry)
        pause: float | None
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, content=call.body,
                    headers=call.headers(),
                )  # fmt: skip
            except httpx.TransportError as error:
                pause = tries.after_error(error)
            else:
                pause = tries.after_answer(response)
                if pause is None:
                    return call.answer(response)
            time.sleep(pause)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


class AsyncHerald(AsyncSender, Routes):
    """``Herald`` for asyncio: every method returns an awaitable, ``iter_*`` an async iterator.

    ::

        async with AsyncHerald("http://127.0.0.1:8000", key) as herald:
            async for dead in herald.iter_dead_letters(type="EMAIL"):
                print(dead.id, dead.error)
    """

    def __init__(
        self,
        url: str,
        key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        tenant: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            **_connection(url, key, timeout, tenant), transport=transport
        )

    async def _send(self, call: Call[T]) -> T:
        tries = call.tries(self.retry)
        pause: float | None
        while True:
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, content=call.body,
                    headers=call.headers(),
                )  # fmt: skip
            except httpx.TransportError as error:
                pause = tries.after_error(error)
            else:
                pause = tries.after_answer(response)
                if pause is None:
                    return call.answer(response)
            await asyncio.sleep(pause)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

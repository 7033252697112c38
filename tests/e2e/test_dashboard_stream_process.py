"""``herald api`` stops at once on SIGTERM while dashboards hold event streams open.

uvicorn waits for every open response before it stops; an event stream never
ends by itself, so without its shutdown hook the process would wait out its
whole grace period (``HERALD_SHUTDOWN_GRACE`` + 5 s) with a dashboard open.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import AUTH
from tests.e2e.conftest import Herald

GRACE = 20


async def test_herald_api_stops_at_once_with_streams_open(herald: Herald) -> None:
    api = await herald.start_http("api", HERALD_SHUTDOWN_GRACE=GRACE)
    headers = {**AUTH, "Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=60) as client:
        opened = asyncio.Event()
        ended = asyncio.Event()

        async def listen() -> None:
            async with client.stream("GET", "/dashboard/stream") as answer:
                assert answer.status_code == 200
                async for line in answer.aiter_lines():
                    if line.startswith("retry:"):
                        opened.set()
            ended.set()

        listeners = [asyncio.create_task(listen()) for _ in range(3)]
        await herald.poll(lambda: opened.is_set(), 10, "a stream to open", watch=[api])
        started = time.monotonic()
        api.terminate()
        code = await api.wait_exit(timeout=GRACE)
        took = time.monotonic() - started
        assert code == 0, herald.describe()
        assert took < 5, f"herald api took {took:.1f}s to stop with streams open"
        await asyncio.wait_for(ended.wait(), 5)
        await asyncio.gather(*listeners, return_exceptions=True)

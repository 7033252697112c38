"""A worker's own ``GET /metrics`` (``HERALD_METRICS_PORT``): the admin key, and bounds.

The door runs in the test's process on a real SQLite store, and is spoken to
over real sockets, as Prometheus and an attacker would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from herald import metrics
from herald.access import Scope
from herald.errors import ConfigError
from herald.models import Channel
from herald.scrape import HEAD_LIMIT, MetricsDoor, open_door
from herald.store.sqlite import SQLiteStore
from tests.conftest import ADMIN_KEY, free_port, make_settings
from tests.scrape import Scrape


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "herald.db"))
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest_asyncio.fixture
async def door(tmp_path: Path, store: SQLiteStore) -> AsyncIterator[str]:
    """The door listening on a free loopback port: its URL."""
    settings = make_settings(tmp_path, metrics_port=free_port())
    opened = await open_door(settings, store)
    assert opened is not None
    try:
        yield f"http://127.0.0.1:{settings.metrics_port}"
    finally:
        await opened.close()


async def test_no_port_no_door(tmp_path: Path, store: SQLiteStore) -> None:
    assert await open_door(make_settings(tmp_path), store) is None


async def test_the_admin_key_reads_this_process_counters(door: str) -> None:
    metrics.created(Channel.PUSH)
    async with httpx.AsyncClient(base_url=door) as client:
        reply = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        by_header = await client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert by_header.status_code == 200
    found = Scrape(reply.text)
    assert found.count("notifications_created_total", type="PUSH") >= 1
    assert found.value("herald_dlq_size") is None, "the store's gauges are the API's to show"


async def test_other_callers_are_refused(door: str, store: SQLiteStore) -> None:
    sender, _ = await store.access.create_key("default", [Scope.SEND, Scope.READ])
    async with httpx.AsyncClient(base_url=door) as client:
        nobody = await client.get("/metrics")
        stranger = await client.get("/metrics", headers={"Authorization": "Bearer hk_guess"})
        weak = await client.get("/metrics", headers={"Authorization": f"Bearer {sender}"})
        elsewhere = await client.get("/", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        posted = await client.post("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert (nobody.status_code, stranger.status_code) == (401, 401)
    assert nobody.headers["www-authenticate"] == "Bearer"
    assert "notifications_" not in nobody.text + stranger.text + weak.text
    assert weak.status_code == 403
    assert elsewhere.status_code == 404
    assert posted.status_code == 405 and posted.headers["allow"] == "GET"


async def test_a_head_too_large_or_too_slow_is_cut(door: str) -> None:
    host, port = door.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metrics HTTP/1.1\r\nX-Padding: " + b"a" * HEAD_LIMIT + b"\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 431 ")
    writer.close()

    # One that never finishes its head holds nothing up: the next caller is answered.
    _, dawdler = await asyncio.open_connection(host, int(port))
    dawdler.write(b"GET /metrics HTTP/1.1\r\n")
    async with httpx.AsyncClient(base_url=door) as client:
        reply = await client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status_code == 200
    dawdler.close()


def test_without_auth_it_listens_on_loopback_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth="off", metrics_port=9464, metrics_host="0.0.0.0")
    with pytest.raises(ConfigError, match="HERALD_METRICS_HOST"):
        MetricsDoor(settings, SQLiteStore(str(tmp_path / "x.db")))

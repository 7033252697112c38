"""An in-process Herald (API and, unless told otherwise, the worker) on a free port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from herald.api.app import create_app
from herald.engine import Engine
from herald.httpserver import server_options
from tests import pg
from tests.conftest import AUTH, make_settings
from tests.integration.smtpsink import Server, Sink


@dataclass
class Running:
    client: httpx.AsyncClient
    engine: Engine
    url: str
    app: Any = None

    async def wait_status(self, notification_id: str, *statuses: str, timeout: float = 10) -> Any:
        """Poll GET /api/notifications/{id} until its status is one of ``statuses``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            reply = await self.client.get(f"/api/notifications/{notification_id}")
            data = reply.json()["data"]
            if data["notification"]["status"] in statuses:
                return data
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"still {data['notification']['status']}: {data['logs']}")
            await asyncio.sleep(0.02)


@asynccontextmanager
async def serve_app(app: Any, port: int, settings: Any = None) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1:``port`` (with Herald's server options when
    ``settings`` are given, as ``herald api`` runs it); yields its base URL."""
    options = server_options(settings) if settings is not None else {}
    options.update(host="127.0.0.1", port=port, log_level="warning")
    config = uvicorn.Config(app, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serve(tmp_path: Path, deliver: bool = True, **overrides: Any) -> AsyncIterator[Running]:
    settings = make_settings(tmp_path, **overrides)
    app = create_app(settings, deliver=deliver)
    async with (
        serve_app(app, settings.port, settings) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client,
    ):
        yield Running(client, app.state.engine, url, app)


Serve = Callable[..., Awaitable[Running]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``every_store`` run their in-process Herald on each store."""
    if "herald" in metafunc.fixturenames and metafunc.definition.get_closest_marker("every_store"):
        metafunc.parametrize("herald_store", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
def herald_store(request: pytest.FixtureRequest) -> str:
    """The store ``herald``'s instances use: SQLite unless the test is marked ``every_store``
    and this is its PostgreSQL run."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def database_url_for_herald(herald_store: str, tmp_path: Path) -> Any:
    """A fresh database of the kind ``herald_store`` names, for tests that build their own app."""
    if herald_store == "sqlite":
        yield f"sqlite:///{tmp_path / 'own.db'}"
        return
    with pg.throwaway_database() as url:
        yield url


@pytest_asyncio.fixture
async def herald(tmp_path: Path, herald_store: str) -> AsyncIterator[Callable[..., Any]]:
    """``async with herald(**settings) as h`` starts a Herald; several may run per test.

    Each instance has a database of its own: a SQLite file in its folder, or a
    throwaway PostgreSQL database dropped after the test.
    """
    counter = 0
    databases = contextlib.ExitStack()

    def start(deliver: bool = True, **overrides: Any) -> Any:
        nonlocal counter
        counter += 1
        folder = tmp_path / f"h{counter}"
        folder.mkdir()
        if herald_store == "postgres" and "database_url" not in overrides:
            overrides["database_url"] = databases.enter_context(pg.throwaway_database())
        return serve(folder, deliver, **overrides)

    with databases:
        yield start


@pytest.fixture
def smtp() -> Iterator[Server]:
    """A real SMTP server on loopback (``smtpsink.py``), stopped after the test."""
    server = Server(Sink())
    server.start()
    try:
        yield server
    finally:
        server.stop()

"""A live ``herald up`` per seed module and store, and a seed client's helpers.

Each seed module gets one ``herald up`` process per store (SQLite file, then a
throwaway PostgreSQL database), started with ``tests/e2e``'s runner: a clean
environment, a free port, the capture provider on every channel so nothing
leaves the machine, and teardown by the process's own pid. A module sets
``HERALD_ENV`` (a dict) to start its Herald with more variables.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import pg
from tests.conftest import AUTH
from tests.e2e.conftest import Herald, HeraldProcess

#: How long a seed client waits for what a worker does (a slow 2-core machine included).
DEADLINE = 30.0


@dataclass
class Live:
    """One running ``herald up`` and a client holding the admin key."""

    store: str
    runner: Herald
    process: HeraldProcess
    client: httpx.Client

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the store from outside; ``sql`` uses ``$1``-style parameters on both stores."""
        if self.store == "sqlite":
            for number in range(len(params), 0, -1):
                sql = sql.replace(f"${number}", "?")
        return self.runner.query(sql, params)


def start(runner: Herald, **env: str) -> HeraldProcess:
    """``herald up`` with ``env`` added, healthy, or the test fails with its log."""
    return pg.run(lambda: runner.start_http("up", **env))


@contextlib.contextmanager
def running(
    store: str, workdir: Path, env: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Live]:
    """A ``herald up`` on ``store`` in ``workdir``; its log is printed if a test failed."""
    failed_before = request.session.testsfailed
    with contextlib.ExitStack() as stack:
        runner: Herald
        if store == "postgres":
            from tests.e2e.pgherald import PgHerald

            runner = PgHerald(workdir, None, stack.enter_context(pg.throwaway_database()))
        else:
            runner = Herald(workdir, None)
        stack.callback(runner.cleanup)  # runs before the database is dropped
        process = start(runner, **env)
        client = stack.enter_context(httpx.Client(base_url=process.url, headers=AUTH, timeout=10))
        try:
            yield Live(store, runner, process, client)
        finally:
            if request.session.testsfailed > failed_before:
                print(runner.describe())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    """This seed module's ``herald up``, once per store."""
    env = getattr(request.module, "HERALD_ENV", {})
    workdir = tmp_path_factory.mktemp(
        f"{request.module.__name__.rpartition('.')[2]}-{request.param}"
    )
    with running(str(request.param), workdir, env, request) as herald:
        yield herald


@pytest.fixture
def client(live: Live) -> httpx.Client:
    return live.client


def wait_for(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {result!r})")
        time.sleep(0.1)


def status_of(client: httpx.Client, notification_id: str) -> str:
    """Seed 004's ``GET /api/notifications/:id`` → ``data.notification.status``."""
    answer = client.get(f"/api/notifications/{notification_id}")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["data"]["notification"]["status"])


def wait_status(client: httpx.Client, notification_id: str, *wanted: str) -> str:
    """Wait until the notification's status is one of ``wanted``; return it."""
    found: list[str] = []

    def reached() -> bool:
        found[:] = [status_of(client, notification_id)]
        return found[0] in wanted

    wait_for(reached, f"{notification_id} to be {' or '.join(wanted)} (is {found})")
    return found[0]

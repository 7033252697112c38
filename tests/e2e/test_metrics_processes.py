"""Metrics across processes, as Prometheus scrapes them.

* ``herald up --api-workers 2 --delivery-workers 1``: a scrape of either API
  process shows the worker's processing histogram and sent counter, and both
  API processes' counts added up; a worker that dies keeps its counts and
  loses its live gauges; the private metrics directory goes with the
  supervisor.
* ``herald api`` and ``herald worker`` run by hand: the worker answers
  scrapes itself on ``HERALD_METRICS_PORT``, to the admin key only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUTH
from tests.e2e.test_supervisor import children
from tests.scrape import Scrape

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOTAL = 10
EMAIL = {"type": "EMAIL", "subject": "s", "message": "hello"}


def metrics_dir(process) -> Path:
    """The directory the supervisor made for its children's metrics (from its log)."""
    for line in process.log_path.read_text(errors="replace").splitlines():
        if '"supervisor_started"' in line:
            return Path(json.loads(line)["metrics_dir"])
    raise AssertionError(f"no supervisor_started line\n{process.describe()}")


async def scrape(url: str) -> tuple[str, Scrape]:
    """One scrape on a connection of its own (the kernel picks the API process)."""
    async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
        reply = await client.get("/api/metrics")
    assert reply.status_code == 200, reply.text
    return reply.headers["x-herald-instance"], Scrape(reply.text)


async def test_one_scrape_shows_every_process(herald) -> None:
    up = await herald.start_http("up", "--api-workers", "2", "--delivery-workers", "1")
    folder: Path | None = None
    try:
        await herald.poll(lambda: len(children(up)) == 3, 15, "three children", watch=[up])
        folder = metrics_dir(up)
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, "private to the supervisor's user"
        for n in range(TOTAL):
            async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
                reply = await client.post(
                    "/api/notifications", json={**EMAIL, "recipient": f"u{n}@example.com"}
                )
            assert reply.status_code == 201, reply.text
        await herald.poll(lambda: herald.status_counts() == {"SENT": TOTAL}, 30,
                          f"{TOTAL} SENT", watch=[up])  # fmt: skip

        def whole(found: Scrape) -> bool:
            return (
                found.count("notifications_sent_total", type="EMAIL", provider="smtp") == TOTAL
                and found.count("notification_processing_duration_seconds_count",
                                type="EMAIL", outcome="sent") == TOTAL
                and found.count("notifications_created_total", type="EMAIL") == TOTAL
                and found.count("herald_claims_total") >= TOTAL
                and found.count("http_requests_total", method="POST",
                                route="/api/notifications", status="201") == TOTAL
                and found.value("herald_workers") == 1
            )  # fmt: skip

        seen: dict[str, Scrape] = {}

        async def both_whole() -> bool:
            instance, found = await scrape(up.url)
            if whole(found):
                seen[instance] = found
            return len(seen) == 2

        await herald.poll(both_whole, 30, "both API processes scraping every process",
                          watch=[up])  # fmt: skip

        # A worker that dies: its live gauge goes, what it counted stays counted.
        worker = children(up)["worker-1"]
        assert (folder / f"gauge_livesum_{worker}.db").exists()
        os.kill(worker, signal.SIGKILL)
        await herald.poll(lambda: not (folder / f"gauge_livesum_{worker}.db").exists(), 15,
                          "the dead worker's live gauges dropped", watch=[up])  # fmt: skip
        assert (folder / f"counter_{worker}.db").exists()
        _, after = await scrape(up.url)
        assert after.count("notifications_sent_total", type="EMAIL", provider="smtp") == TOTAL

        up.terminate()
        assert await up.wait_exit(30) == 0, herald.describe()
        assert not folder.exists(), "the supervisor removes its metrics directory"
    finally:  # the runner kills the supervisor only; its children and folder are ours
        for pid in children(up).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


async def test_a_worker_on_its_own_answers_scrapes(herald, free_port) -> None:
    api = await herald.start_http("api")
    port = free_port()
    worker = herald.start("worker", HERALD_METRICS_PORT=port)
    door = f"http://127.0.0.1:{port}/metrics"
    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10) as client:
        reply = await client.post("/api/notifications", json={**EMAIL, "recipient": "a@b.example"})
        assert reply.status_code == 201, reply.text

        async def sent() -> Scrape | None:
            try:
                found = await client.get(door)
            except httpx.TransportError:  # not listening yet
                return None
            assert found.status_code == 200, found.text
            scraped = Scrape(found.text)
            counted = scraped.count("notifications_sent_total", type="EMAIL", provider="smtp")
            return scraped if counted == 1 else None

        on_worker = await herald.poll(sent, 20, "the worker's scrape counting the send",
                                      watch=[api, worker])  # fmt: skip
        assert on_worker.count("notification_processing_duration_seconds_count",
                               type="EMAIL", outcome="sent") == 1  # fmt: skip
        on_api = Scrape((await client.get("/api/metrics")).text)
        assert on_api.count("notifications_created_total", type="EMAIL") == 1
        assert on_api.count("notifications_sent_total", type="EMAIL", provider="smtp") == 0
        assert on_api.value("herald_workers") == 1
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(door)).status_code == 401

"""Seed 001's multi-server layout with real parts: HAProxy before three Herald APIs.

``deploy/haproxy.cfg`` itself is used, with its ports moved to free ones:
three `herald api` processes and a `herald worker` share one PostgreSQL
database, HAProxy balances round-robin and checks GET /api/health. Clients
POST through HAProxy; ``X-Herald-Instance`` shows every instance serving.
Then one instance is SIGKILLed: once HAProxy's health check has noticed, the
other two serve every request, and every notification answered 201 (before,
during or after) is stored and delivered.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUTH, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
LANES = 16


@dataclass
class Answer:
    sent: float  # time.monotonic() when the request left
    status: int  # 0: no HTTP answer at all
    instance: str | None
    notification_id: str | None


def haproxy() -> str:
    found = shutil.which("haproxy")
    if found:
        return found
    message = "haproxy is not installed (Debian package haproxy; `make test` installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def config_for(lb_port: int, api_ports: list[int]) -> str:
    """The shipped configuration with its ports replaced by ours."""
    text = CONFIG.read_text()
    moves = {"127.0.0.1:8000": lb_port, **{f"127.0.0.1:{5001 + i}": p for i, p in
                                           enumerate(api_ports)}}  # fmt: skip
    for old, port in moves.items():
        assert text.count(old) == 1, f"{CONFIG} should name {old} once"
        text = text.replace(old, f"127.0.0.1:{port}")
    return text


def start_haproxy(executable: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground (``-db``), its log and alerts going to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen([executable, "-db", "-f", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip


async def test_haproxy_spreads_load_and_routes_around_a_dead_instance(
    pg_herald, smtp_server, tmp_path
) -> None:
    executable = haproxy()
    apis = [
        await pg_herald.start_http("api", HERALD_INSTANCE=f"api{i}", HERALD_PORT=free_port())
        for i in (1, 2, 3)
    ]
    worker = pg_herald.start("worker")
    lb_port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(config_for(lb_port, [a.port for a in apis]))
    lb_log = tmp_path / "haproxy.log"
    lb = start_haproxy(executable, config, lb_log)
    try:
        await _exercise(pg_herald, apis, worker, lb, lb_port, lb_log)
    finally:
        if lb.poll() is None:
            lb.terminate()
        lb.wait(timeout=10)


async def _exercise(pg_herald, apis, worker, lb, lb_port, lb_log) -> None:
    base = f"http://127.0.0.1:{lb_port}"

    def lb_up() -> bool:
        assert lb.poll() is None, lb_log.read_text()
        try:
            return httpx.get(base + "/api/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    await pg_herald.poll(lb_up, 15, "HAProxy to answer /api/health")
    answers: list[Answer] = []
    stop = False

    async def fire(client: httpx.AsyncClient, lane: int) -> None:
        n = 0
        while not stop:
            n += 1
            body = {"type": "EMAIL", "recipient": f"l{lane}-{n}@example.com", "subject": "s",
                    "message": "through haproxy"}  # fmt: skip
            sent = time.monotonic()
            try:
                reply = await client.post("/api/notifications", json=body)
            except httpx.TransportError:
                answers.append(Answer(sent, 0, None, None))
                continue
            created = reply.json()["data"]["_id"] if reply.status_code == 201 else None
            answers.append(Answer(sent, reply.status_code,
                                  reply.headers.get("x-herald-instance"), created))  # fmt: skip

    async with httpx.AsyncClient(base_url=base, headers=AUTH, timeout=10) as client:
        lanes = [asyncio.create_task(fire(client, lane)) for lane in range(LANES)]
        await pg_herald.poll(lambda: len(answers) >= 600, 30, "600 answers through HAProxy",
                             watch=[*apis, worker])  # fmt: skip
        spread = Counter(a.instance for a in answers)
        victim = apis[1]
        victim.kill()
        killed = time.monotonic()
        await pg_herald.poll(lambda: b"api2 is DOWN" in lb_log.read_bytes(), 15,
                             "HAProxy's health check to notice the dead instance")  # fmt: skip
        noticed = time.monotonic()
        await asyncio.sleep(2.0)
        stop = True
        await asyncio.gather(*lanes)

    after = [a for a in answers if a.sent > noticed]
    gap = [a for a in answers if killed <= a.sent <= noticed]
    print(
        f"before the kill {dict(spread)}; noticed after {noticed - killed:.2f}s; "
        f"in between {Counter(a.status for a in gap)}; "
        f"after {Counter(a.instance for a in after)}"
    )
    assert set(spread) == {"api1", "api2", "api3"}, spread
    assert min(spread.values()) >= 0.2 * sum(spread.values()), f"uneven spread: {spread}"
    assert len(after) >= 100, "too little load after the health check noticed"
    assert all(a.status == 201 for a in after), Counter(a.status for a in after)
    assert {a.instance for a in after} == {"api1", "api3"}
    assert not [a for a in answers if a.status == 500]

    created = {a.notification_id for a in answers if a.notification_id}
    stored = {r[0] for r in pg_herald.query("SELECT id FROM notifications")}
    assert created <= stored, f"{len(created - stored)} acknowledged notifications lost"
    await pg_herald.poll(
        lambda: pg_herald.status_counts() == {"SENT": len(stored)},
        60,
        "every notification SENT",
        interval=0.2,
        watch=[worker],
    )

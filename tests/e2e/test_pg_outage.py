"""PostgreSQL goes away under load, comes back, and Herald carries on by itself.

`herald api` and `herald worker` run on a throwaway database while 24 clients
POST notifications. For two seconds the database refuses new connections and
every connection to it is terminated with ``pg_terminate_backend`` (the shared
server itself keeps running). Then it accepts connections again.

* During the outage the API answers 503 with Retry-After, never 500, and no
  201 that was not committed: every notification answered 201 is in the store.
* Afterwards the same processes, never restarted, take new notifications and
  deliver every acknowledged one; leases left by the cut are swept.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
import pytest

from tests import pg
from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

OUTAGE = 2.0  # seconds
LANES = 24


def email(n: int) -> dict[str, str]:
    return {"type": "EMAIL", "recipient": f"u{n}@example.com", "subject": "s", "message": f"{n}"}


async def test_connections_cut_under_load(pg_herald, smtp_server) -> None:
    url = pg_herald.database_url
    env = {"HERALD_LEASE_SECONDS": 3, "HERALD_SWEEP_INTERVAL": 0.5, "HERALD_SMTP_TIMEOUT": 2}
    api = await pg_herald.start_http("api", **env)
    worker = pg_herald.start("worker", **env)
    created: set[str] = set()
    statuses: Counter[int] = Counter()
    during: Counter[int] = Counter()  # answers to requests sent while the database was out
    odd: list[str] = []
    state = {"stop": False, "out": False, "n": 0}

    async def fire(client: httpx.AsyncClient) -> None:
        while not state["stop"]:
            state["n"] += 1
            out = state["out"]
            try:
                reply = await client.post("/api/notifications", json=email(state["n"]))
            except httpx.TransportError as exc:
                odd.append(f"transport error: {exc!r}")
                continue
            statuses[reply.status_code] += 1
            if out:
                during[reply.status_code] += 1
            if reply.status_code == 201:
                created.add(reply.json()["data"]["_id"])
            elif reply.status_code == 503:
                if reply.headers.get("retry-after") != "1":
                    odd.append(f"503 without Retry-After: {reply.headers}")
                await asyncio.sleep(0.01)  # as a client told to retry would
            else:
                odd.append(f"{reply.status_code}: {reply.text[:200]}")

    limits = httpx.Limits(max_connections=LANES)
    async with httpx.AsyncClient(
        base_url=api.url, headers=AUTH, timeout=15, limits=limits
    ) as client:
        lanes = [asyncio.create_task(fire(client)) for _ in range(LANES)]
        await pg_herald.poll(lambda: len(created) >= 300, 20, "load before the outage",
                             watch=[api, worker])  # fmt: skip
        before = len(created)

        await pg.allow_connections(url, False)
        state["out"] = True
        cut, ends = 0, time.monotonic() + OUTAGE
        while time.monotonic() < ends:
            cut += await pg.cut_connections(url)
            await asyncio.sleep(0.1)
        health = await client.get("/api/health")
        await pg.allow_connections(url, True)
        state["out"] = False

        await pg_herald.poll(lambda: len(created) >= before + 300, 30,
                             "new notifications accepted after the outage",
                             watch=[api, worker])  # fmt: skip
        state["stop"] = True
        await asyncio.gather(*lanes)

    print(f"answers {dict(statuses)}; during the outage {dict(during)}; {cut} backends cut")
    assert cut > 0, "no connection was cut"
    assert health.status_code == 503, health.text
    assert during[503] > 0, "the API never said 503 while the database was out"
    assert statuses[500] == 0 and not odd, odd[:5]

    # Nothing acknowledged is lost, and the worker delivers it all without a restart.
    stored = {r[0] for r in pg_herald.query("SELECT id FROM notifications")}
    assert created <= stored, f"{len(created - stored)} acknowledged notifications lost"

    def all_sent() -> bool:
        counts = pg_herald.status_counts()
        return counts.get("SENT", 0) == len(stored) and len(counts) == 1

    await pg_herald.poll(all_sent, 60, "every stored notification SENT", interval=0.2,
                         watch=[api, worker])  # fmt: skip
    assert created <= set(smtp_server.sink.received)
    assert (await asyncio.to_thread(httpx.get, api.url + "/api/health")).status_code == 200

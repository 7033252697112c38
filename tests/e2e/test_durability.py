"""What the API acknowledges is kept, and what cannot be delivered is accounted for.

* Every 201 is durable: an API process SIGKILLed under concurrent load loses
  none of the notifications it had answered 201 for.
* ``herald api`` and ``herald worker`` as separate processes on one SQLite
  file deliver everything exactly once.
* A server that keeps answering 451 walks a notification through the whole
  retry ladder into the DLQ, with one audit row per step; a 550 sends it there
  after one attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def email(recipient: str, n: int = 0) -> dict[str, Any]:
    return {
        "type": "EMAIL",
        "recipient": recipient,
        "subject": f"e2e {n}",
        "message": f"message number {n}",
    }


def at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()


async def test_every_201_survives_sigkill_of_the_api(herald) -> None:
    lanes = 32
    api = await herald.start_http("api")
    created: dict[str, str] = {}  # id -> recipient
    statuses: Counter[int] = Counter()
    unexpected: list[str] = []
    state = {"killed": False, "inflight": 0}

    async def fire(client: httpx.AsyncClient, lane: int) -> None:
        n = 0
        while not state["killed"]:
            recipient = f"lane{lane}-{n}@example.com"
            n += 1
            state["inflight"] += 1
            try:
                response = await client.post("/api/notifications", json=email(recipient, n))
            except httpx.TransportError as exc:
                if not state["killed"]:
                    unexpected.append(f"{recipient}: {exc!r}")
                return
            finally:
                state["inflight"] -= 1
            statuses[response.status_code] += 1
            if response.status_code == 201:
                data = response.json()["data"]
                if data["recipient"] != recipient or data["status"] != "QUEUED":
                    unexpected.append(f"{recipient}: odd 201 body {data}")
                created[data["_id"]] = recipient
            elif response.status_code != 503:  # 503 "try again" is an honest answer
                unexpected.append(f"{recipient}: {response.status_code} {response.text[:200]}")

    limits = httpx.Limits(max_connections=lanes, max_keepalive_connections=lanes)
    async with httpx.AsyncClient(
        base_url=api.url, headers=AUTH, timeout=10.0, limits=limits
    ) as client:
        tasks = [asyncio.create_task(fire(client, lane)) for lane in range(lanes)]
        started = time.monotonic()
        try:
            await herald.poll(
                lambda: len(created) >= 200 and time.monotonic() - started >= 1.0,
                20,
                "200 notifications accepted",
                interval=0.01,
                watch=[api],
            )
            inflight_at_kill = state["inflight"]
            accepted_before_kill = len(created)
            api.kill()  # no await between the kill and the flag: no lane starts a request
            state["killed"] = True
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
        finally:
            for task in tasks:
                task.cancel()

    assert not unexpected, unexpected[:10]
    assert inflight_at_kill > 0, "no request was in flight when the API was killed"
    late = len(created) - accepted_before_kill
    print(
        f"{len(created)} answered 201 ({late} read after the kill), "
        f"{inflight_at_kill} in flight at the kill, statuses {dict(statuses)}"
    )

    again = await herald.start_http("api")
    missing: list[str] = []
    wrong: list[str] = []
    gate = asyncio.Semaphore(32)

    async def check(client: httpx.AsyncClient, notification_id: str, recipient: str) -> None:
        async with gate:
            response = await client.get(f"/api/notifications/{notification_id}")
        if response.status_code == 404:
            missing.append(notification_id)
        elif response.status_code != 200:
            wrong.append(f"{notification_id}: {response.status_code} {response.text[:200]}")
        elif response.json()["data"]["notification"]["recipient"] != recipient:
            wrong.append(f"{notification_id}: stored with another recipient")

    async with httpx.AsyncClient(base_url=again.url, headers=AUTH, timeout=10.0) as client:
        await asyncio.gather(*(check(client, i, r) for i, r in created.items()))
    assert not missing, f"{len(missing)} of {len(created)} acknowledged notifications lost"
    assert not wrong, wrong[:10]


async def test_api_and_worker_processes_share_one_database(herald, smtp_server) -> None:
    count = 200
    api = await herald.start_http("api")
    worker = herald.start("worker", HERALD_WORKER_CONCURRENCY=32, HERALD_SMTP_POOL_SIZE=8)
    gate = asyncio.Semaphore(16)
    ids: list[str] = []

    async with httpx.AsyncClient(base_url=api.url, headers=AUTH, timeout=10.0) as client:

        async def post(n: int) -> None:
            async with gate:
                response = await client.post(
                    "/api/notifications", json=email(f"split{n}@example.com", n)
                )
            assert response.status_code == 201, response.text
            ids.append(response.json()["data"]["_id"])

        await asyncio.gather(*(post(n) for n in range(count)))
        assert len(set(ids)) == count

        async def all_sent() -> bool:
            response = await client.get("/api/notifications/stats/system")
            response.raise_for_status()
            return response.json()["data"]["byStatus"].get("SENT", 0) == count

        await herald.poll(all_sent, 25, f"all {count} to be SENT", watch=[api, worker])

        stats = (await client.get("/api/notifications/stats/system")).json()["data"]
        assert stats["total"] == count
        assert {k: v for k, v in stats["byStatus"].items() if v} == {"SENT": count}

        listed: list[dict[str, Any]] = []
        for page in (1, 2, 3):
            response = await client.get(
                "/api/notifications", params={"status": "SENT", "limit": 100, "page": page}
            )
            response.raise_for_status()
            data = response.json()["data"]
            assert data["pagination"]["totalItems"] == count
            listed.extend(data["notifications"])
    assert sorted(n["_id"] for n in listed) == sorted(ids)
    assert all(n["provider"] == "smtp" and n["attempts"] == 1 for n in listed)

    received = smtp_server.sink.received
    assert set(received) == set(ids)
    assert all(n == 1 for n in received.values()), "a notification was delivered twice"


async def test_refusals_end_in_the_dlq_with_a_full_audit_trail(herald, smtp_server) -> None:
    sink = smtp_server.sink
    sink.reply = lambda recipient: (
        "451 4.3.0 Try again later"
        if recipient.startswith("temp")
        else "550 5.1.1 No such user"
        if recipient.startswith("perm")
        else None
    )
    backoff = (0.1, 0.2)  # before attempts 2 and 3; attempt 1 is immediate
    stages = (0.2, 0.2)  # retry-1 and retry-2, one attempt each
    up = await herald.start_http(
        "up",
        HERALD_RETRY_BACKOFF="0,0.1,0.2",
        HERALD_RETRY_1_DELAY_MS=200,
        HERALD_RETRY_2_DELAY_MS=200,
    )

    async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10.0) as client:
        ids = {}
        for kind in ("temp", "perm"):
            response = await client.post("/api/notifications", json=email(f"{kind}@example.com"))
            assert response.status_code == 201, response.text
            ids[kind] = response.json()["data"]["_id"]

        async def detail(kind: str) -> dict[str, Any]:
            response = await client.get(f"/api/notifications/{ids[kind]}")
            response.raise_for_status()
            return response.json()["data"]

        async def both_failed() -> bool:
            found = [await detail(kind) for kind in ids]
            return all(d["notification"]["status"] == "FAILED" for d in found)

        await herald.poll(both_failed, 20, "both notifications to fail", watch=[up])
        temp, perm = await detail("temp"), await detail("perm")

    # 451: five attempts (three quick, one per stage), then the DLQ.
    note, logs = temp["notification"], temp["logs"]
    assert note["queue"] == "dlq"
    assert note["attempts"] == 5
    assert "451" in (note["error"] or "")
    steps = [e for e in logs if e["status"] not in ("PENDING", "QUEUED")]
    assert [e["status"] for e in steps] == ["PROCESSING", "RETRYING"] * 4 + [
        "PROCESSING",
        "FAILED",
    ], [e["status"] for e in logs]
    assert logs[-1]["status"] == "FAILED"
    processing = [e for e in steps if e["status"] == "PROCESSING"]
    failures = [e for e in steps if e["status"] != "PROCESSING"]
    assert [e["metadata"]["attempt"] for e in processing] == [1, 2, 3, 4, 5]
    assert [e["metadata"]["attempt"] for e in failures] == [1, 2, 3, 4, 5]
    assert [e["metadata"]["queue"] for e in failures] == [
        "email",
        "email",
        "retry-1",
        "retry-2",
        "dlq",
    ]
    assert failures[-1]["metadata"]["permanent"] is False
    # Each retry waited at least its delay (jitter only adds).
    for delay, failed, retried in zip(
        (*backoff, *stages), failures[:-1], processing[1:], strict=True
    ):
        assert at(retried) - at(failed) >= delay - 0.002, (delay, failed, retried)
    assert sink.attempts[ids["temp"]] == 5
    assert sink.received[ids["temp"]] == 0

    # 550: permanent, one attempt.
    note, logs = perm["notification"], perm["logs"]
    assert note["queue"] == "dlq"
    assert note["attempts"] == 1
    assert "550" in (note["error"] or "")
    steps = [e["status"] for e in logs if e["status"] not in ("PENDING", "QUEUED")]
    assert steps == ["PROCESSING", "FAILED"], [e["status"] for e in logs]
    assert logs[-1]["metadata"]["permanent"] is True
    assert sink.attempts[ids["perm"]] == 1
    assert sink.received[ids["perm"]] == 0

    # `herald up` shuts down cleanly on SIGTERM, like `herald worker`.
    up.terminate()
    assert await up.wait_exit(timeout=15) == 0, up.describe()

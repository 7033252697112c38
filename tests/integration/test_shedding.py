"""Load shedding by priority: a deep backlog refuses LOW and MEDIUM, never HIGH or CRITICAL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytestmark = pytest.mark.every_store

THRESHOLD = 40


def note(priority: str, n: int = 0) -> dict[str, Any]:
    return {"type": "EMAIL", "recipient": f"u{n}@example.com", "subject": "s", "message": "m",
            "priority": priority}  # fmt: skip


async def health_becomes(h: Any, status: str, timeout: float = 10) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        body: dict[str, Any] = (await h.client.get("/api/health")).json()
        if body["status"] == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_low_and_medium_are_shed_until_the_backlog_falls(herald: Any) -> None:
    async with herald(deliver=False, shed_backlog=THRESHOLD) as h:
        bulk = {"notifications": [note("LOW", n) for n in range(THRESHOLD)]}
        assert (await h.client.post("/api/notifications/bulk", json=bulk)).status_code == 201
        health = await health_becomes(h, "degraded")
        assert "HERALD_SHED_BACKLOG" in health["services"]["admission"]

        for priority in ("LOW", "MEDIUM"):
            for door in ({}, {"Idempotency-Key": f"k-{priority}"}):  # fast path, framework
                shed = await h.client.post("/api/notifications", json=note(priority), headers=door)
                assert shed.status_code == 503, shed.text
                assert shed.headers["retry-after"] == "5"
                assert "LOW and MEDIUM" in shed.json()["message"]
        for priority in ("HIGH", "CRITICAL"):
            taken = await h.client.post("/api/notifications", json=note(priority))
            assert taken.status_code == 201
        mixed = {"notifications": [note("HIGH"), note("LOW")]}
        assert (await h.client.post("/api/notifications/bulk", json=mixed)).status_code == 503
        signup = {"email": "x@example.com", "username": "x", "userId": 1}
        welcome = await h.client.post("/api/signups", json=signup)
        assert welcome.status_code in (201, 503)  # by the welcome email's priority
        stored = await h.client.get("/api/notifications/stats/system")
        assert stored.json()["data"]["total"] == THRESHOLD + 2 + (welcome.status_code == 201)

        listed = await h.client.get("/api/notifications", params={"limit": 100})
        for item in listed.json()["data"]["notifications"][: THRESHOLD // 2]:
            assert (
                await h.client.post(f"/api/notifications/{item['id']}/cancel")
            ).status_code == 200
        await health_becomes(h, "healthy")
        assert (await h.client.post("/api/notifications", json=note("LOW"))).status_code == 201

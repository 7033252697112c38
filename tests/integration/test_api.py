"""The HTTP API against a running Herald: seed 004 shapes, errors, health, mailbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from herald.api.schemas import NotificationOut
from tests.scrape import Scrape

pytestmark = pytest.mark.every_store

EMAIL = {
    "type": "EMAIL",
    "recipient": "test@example.com",
    "subject": "Test",
    "message": "Hello World",
    "priority": "HIGH",
}


async def test_seed_004_curl_example_round_trip(herald: Any) -> None:
    async with herald() as h:
        reply = await h.client.post("/api/notifications", json=EMAIL)
        assert reply.status_code == 201
        body = reply.json()
        assert body["success"] is True
        assert body["message"] == "Notification created and queued successfully"
        data = body["data"]
        NotificationOut.model_validate(data)
        assert data["status"] == "QUEUED" and data["priority"] == "HIGH"
        assert data["retryCount"] == 0 and data["maxRetries"] == 5
        assert reply.headers["x-herald-instance"] == h.engine.settings.instance

        detail = await h.wait_status(data["_id"], "SENT")
        note = detail["notification"]
        NotificationOut.model_validate(note)
        assert note["provider"] == "capture" and note["sentAt"] and note["processingTimeMs"] >= 0
        assert [log["status"] for log in detail["logs"]] == [
            "PENDING",
            "QUEUED",
            "PROCESSING",
            "SENT",
        ]
        assert detail["logs"][-1]["message"] == "Successfully sent via capture"

        mailbox = (await h.client.get("/api/mailbox")).json()["data"]["messages"]
        assert [(m["recipient"], m["subject"], m["message"]) for m in mailbox] == [
            ("test@example.com", "Test", "Hello World")
        ]


async def test_validation_errors_name_the_field(herald: Any) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.post(
            "/api/notifications",
            json={
                "type": "EMAIL",
                "recipient": "nobody",
                "subject": "a\r\nBcc: x@y.z",
                "message": "",
            },
        )
        assert reply.status_code == 422
        fields = {e["field"] for e in reply.json()["errors"]}
        assert fields == {"recipient", "subject", "message"}
        assert reply.json()["success"] is False

        broken = await h.client.post(
            "/api/notifications", content=b'{"type": ', headers={"content-type": "application/json"}
        )
        assert broken.status_code == 400 and broken.json()["errors"][0]["field"] == "body"

        not_object = await h.client.post("/api/notifications", json=[1, 2])
        assert not_object.status_code == 422

        listing = await h.client.get("/api/notifications", params={"limit": 101, "status": "LOST"})
        assert listing.status_code == 422
        assert {e["field"] for e in listing.json()["errors"]} == {"query.limit", "query.status"}

        assert (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"
        ] == 0


async def test_oversized_bodies_get_413(herald: Any) -> None:
    async with herald(deliver=False, max_body_bytes=4096) as h:
        big = {**EMAIL, "message": "x" * 5000}
        reply = await h.client.post("/api/notifications", json=big)
        assert reply.status_code == 413 and "4096" in reply.json()["message"]

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        streamed = await h.client.post("/api/notifications", content=chunks())
        assert streamed.status_code == 413


async def test_unknown_ids_are_404(herald: Any) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.get("/api/notifications/0123456789abcdef0123456789abcdef")
        assert reply.status_code == 404 and reply.json()["success"] is False
        assert (await h.client.get("/api/notifications/%20weird")).status_code == 404
        assert (await h.client.get("/api/nothing-here")).status_code == 404


async def test_list_filters_and_pagination(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for i in range(7):
            priority = "LOW" if i % 2 else "CRITICAL"
            reply = await h.client.post("/api/notifications", json={**EMAIL, "priority": priority})
            assert reply.status_code == 201
        sms = {"type": "SMS", "recipient": "+14155550123", "message": "code 1234"}
        assert (await h.client.post("/api/notifications", json=sms)).status_code == 201

        reply = await h.client.get(
            "/api/notifications",
            params={"page": 2, "limit": 2, "type": "EMAIL", "status": "QUEUED"},
        )
        data = reply.json()["data"]
        assert data["pagination"] == {
            "currentPage": 2,
            "totalPages": 4,
            "totalItems": 7,
            "itemsPerPage": 2,
        }
        assert len(data["notifications"]) == 2
        low = (await h.client.get("/api/notifications", params={"priority": "LOW"})).json()["data"]
        assert low["pagination"]["totalItems"] == 3


async def test_system_stats_shape(herald: Any) -> None:
    async with herald() as h:
        ids = []
        for _ in range(3):
            ids.append(
                (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]["_id"]
            )
        for notification_id in ids:
            await h.wait_status(notification_id, "SENT")
        data = (await h.client.get("/api/notifications/stats/system")).json()["data"]
        assert data["total"] == 3 and data["byStatus"]["SENT"] == 3
        assert data["byType"]["EMAIL"] == 3 and data["byPriority"]["HIGH"] == 3
        assert set(data["queueDepth"]) >= {"email", "sms", "push", "retry-1", "retry-2", "dlq"}
        assert data["successRate"] == 100.0 and data["averageProcessingTime"] >= 0


async def test_scheduled_notification_waits(herald: Any) -> None:
    async with herald() as h:
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=200)
        when = later.strftime("%Y-%m-%dT%H:%M:%SZ")
        reply = await h.client.post("/api/notifications", json={**EMAIL, "scheduledAt": when})
        data = reply.json()["data"]
        assert reply.status_code == 201 and data["status"] == "SCHEDULED"
        assert data["scheduledAt"] == when.replace("Z", ".000Z")
        await asyncio.sleep(0.2)
        again = (await h.client.get(f"/api/notifications/{data['_id']}")).json()["data"]
        assert again["notification"]["status"] == "SCHEDULED"


async def test_health_and_store_outage(herald: Any) -> None:
    async with herald() as h:
        reply = await h.client.get("/api/health")
        body = reply.json()
        assert reply.status_code == 200 and body["status"] == "healthy"
        assert body["services"] == {"database": "connected", "worker": "running"}
        assert body["uptime"] >= 0 and body["timestamp"].endswith("Z")

        await h.engine.stop()  # the store is gone: health and writes must say so, not 500
        down = await h.client.get("/api/health")
        assert down.status_code == 503 and down.json()["services"]["database"] == "disconnected"
        refused = await h.client.post("/api/notifications", json=EMAIL)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        listing = await h.client.get("/api/notifications")
        assert listing.status_code == 503


async def test_openapi_documents_the_routes(herald: Any) -> None:
    async with herald(deliver=False) as h:
        spec = (await h.client.get("/openapi.json")).json()
        paths = spec["paths"]
        for path in (
            "/api/notifications",
            "/api/notifications/{notification_id}",
            "/api/notifications/stats/system",
            "/api/health",
            "/api/mailbox",
        ):
            assert path in paths, path
        post = paths["/api/notifications"]["post"]
        assert set(post["responses"]) >= {"201", "400", "413", "422", "503"}
        assert (await h.client.get("/docs")).status_code == 200


async def test_every_201_has_its_row(herald: Any) -> None:
    async with herald(deliver=False) as h:

        async def post(i: int) -> httpx.Response:
            return await h.client.post("/api/notifications", json={**EMAIL, "message": f"m{i}"})

        replies = await asyncio.gather(*(post(i) for i in range(200)))
        assert {r.status_code for r in replies} == {201}
        ids = {r.json()["data"]["_id"] for r in replies}
        assert len(ids) == 200
        stats = (await h.client.get("/api/notifications/stats/system")).json()["data"]
        assert stats["total"] == 200


async def test_prometheus_metrics(herald: Any) -> None:
    async with herald() as h:
        start = Scrape((await h.client.get("/api/metrics")).text)
        created = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]
        await h.wait_status(created["_id"], "SENT")
        await h.client.post("/api/notifications", json={**EMAIL, "recipient": "bad"})
        reply = await h.client.get("/api/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    end = Scrape(text)  # (each sample once)

    def grown(name: str, **labels: str) -> float:
        return end.count(name, **labels) - start.count(name, **labels)

    assert grown("notifications_created_total", type="EMAIL") == 1
    assert grown("notifications_sent_total", type="EMAIL", provider="capture") == 1
    assert grown("notification_processing_duration_seconds_count", type="EMAIL", outcome="sent")
    assert 'queue_depth{queue="email"} 0.0' in text
    assert 'http_requests_total{method="POST",route="/api/notifications",status="201"}' in text
    assert 'http_requests_total{method="POST",route="/api/notifications",status="422"}' in text

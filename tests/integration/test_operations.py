"""Operations an operator needs: queues, bulk, scheduling, cancel, DLQ, idempotency, retention."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
import pytest

from herald.models import Channel, Dead, NewNotification, Priority, Sent
from herald.store.base import Store

pytestmark = pytest.mark.every_store

EMAIL = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}
FAILING = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}


async def test_seed_003_notify_examples(herald: Any) -> None:
    async with herald() as h:
        email = await h.client.post("/api/notify", json={
            "type": "email", "to": "user@example.com", "subject": "Test Email",
            "message": "This is a test email notification.",
        })  # fmt: skip
        sms = await h.client.post("/api/notify", json={
            "type": "sms", "to": "+1234567890", "message": "This is a test SMS notification.",
        })  # fmt: skip
        for reply in (email, sms):
            assert reply.status_code == 202, reply.text
            body = reply.json()
            assert set(body) == {"status", "messageId"} and body["status"] == "queued"
        await h.wait_status(sms.json()["messageId"], "SENT")
        bad = await h.client.post("/api/notify", json={"type": "fax", "to": "x", "message": "m"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "type"


async def test_queue_health_pause_and_resume(herald: Any) -> None:
    async with herald() as h:
        paused = await h.client.post("/api/queue/mail/pause")
        assert paused.status_code == 200
        assert paused.json()["data"] == {"queue": "email", "paused": True, "lanes": ["email"]}
        created = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]
        await asyncio.sleep(0.4)
        health = (await h.client.get("/api/queue-health")).json()["data"]
        assert health["queues"]["email"] == {
            "waiting": 1, "active": 0, "delayed": 0, "completed": 0, "failed": 0, "paused": True
        }  # fmt: skip
        assert health["status"] == "degraded"
        note = (await h.client.get(f"/api/notifications/{created['_id']}")).json()["data"]
        assert note["notification"]["status"] == "QUEUED", "a paused queue was claimed from"

        assert (await h.client.post("/api/queue/email/resume")).status_code == 200
        await h.wait_status(created["_id"], "SENT")
        health = (await h.client.get("/api/queue-health")).json()["data"]
        assert (
            health["queues"]["email"]["completed"] == 1 and not health["queues"]["email"]["paused"]
        )
        assert (await h.client.post("/api/queue/nowhere/pause")).status_code == 404
        stats = (await h.client.get("/api/notification-stats")).json()["data"]
        assert stats["byStatus"]["SENT"] == 1


async def test_bulk_accepts_valid_items_and_names_invalid_ones(herald: Any) -> None:
    async with herald(deliver=False) as h:
        items = [EMAIL, {**EMAIL, "recipient": "nope"}, {**EMAIL, "priority": "HIGH"},
                 {"type": "SMS", "message": "no recipient"}]  # fmt: skip
        reply = await h.client.post("/api/notifications/bulk", json={"notifications": items})
        assert reply.status_code == 201
        data = reply.json()["data"]
        assert (data["accepted"], data["rejected"], data["atomic"]) == (2, 2, False)
        by_index = {r["index"]: r for r in data["results"]}
        assert by_index[0]["status"] == "accepted" and by_index[0]["notificationStatus"] == "QUEUED"
        assert by_index[1]["errors"] == [
            {"field": "recipient", "message": by_index[1]["errors"][0]["message"]}
        ]
        assert by_index[3]["status"] == "rejected"
        assert {e["field"] for e in by_index[3]["errors"]} == {"recipient"}
        stored = (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"
        ]
        assert stored == 2

        atomic = await h.client.post(
            "/api/notifications/bulk?atomic=true", json={"notifications": items}
        )
        assert atomic.status_code == 422 and atomic.json()["data"]["accepted"] == 0
        too_many = await h.client.post(
            "/api/notifications/bulk", json={"notifications": [EMAIL] * 1001}
        )
        assert too_many.status_code == 422
        total = (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"
        ]
        assert total == 2, "an atomic or oversized request stored something"

        big = await h.client.post("/api/notifications/bulk", json={"notifications": [EMAIL] * 1000})
        assert big.status_code == 201 and big.json()["data"]["accepted"] == 1000


async def test_delay_seconds_and_cancel_before_delivery(herald: Any) -> None:
    async with herald() as h:
        reply = await h.client.post("/api/notifications", json={**EMAIL, "delaySeconds": 1})
        data = reply.json()["data"]
        assert data["status"] == "SCHEDULED"
        cancelled = await h.client.post(f"/api/notifications/{data['_id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "CANCELLED"
        again = await h.client.post(f"/api/notifications/{data['_id']}/cancel")
        assert again.status_code == 409
        await asyncio.sleep(1.5)  # past its time: it must not be delivered
        detail = (await h.client.get(f"/api/notifications/{data['_id']}")).json()["data"]
        assert detail["notification"]["status"] == "CANCELLED"
        assert detail["logs"][-1]["status"] == "CANCELLED"
        assert (await h.client.get("/api/mailbox")).json()["data"]["messages"] == []

        both = await h.client.post("/api/notifications", json={
            **EMAIL, "delaySeconds": 5, "scheduledAt": "2026-12-31T00:00:00Z"
        })  # fmt: skip
        assert both.status_code == 422 and both.json()["errors"][0]["field"] == "delaySeconds"
        unknown = await h.client.post("/api/notifications/0123456789abcdef0123456789abcdef/cancel")
        assert unknown.status_code == 404


async def test_dlq_list_replay_once_and_delete(herald: Any) -> None:
    async with herald(**FAILING) as failing:
        ids = []
        for i in range(3):
            note = await failing.client.post(
                "/api/notifications", json={**EMAIL, "message": f"m{i}"}
            )
            ids.append(note.json()["data"]["_id"])
        for notification_id in ids:
            await failing.wait_status(notification_id, "FAILED")
        database = failing.engine.settings.database_url
    async with herald(database_url=database) as h:
        dead = (
            await h.client.get("/api/dlq", params={"type": "EMAIL", "error": "INJECTED"})
        ).json()
        assert dead["data"]["pagination"]["totalItems"] == 3
        assert (await h.client.get("/api/dlq", params={"type": "SMS"})).json()["data"][
            "notifications"
        ] == []

        replay = await h.client.post(
            "/api/dlq/replay", json={"ids": ids[:2]}, headers={"X-Herald-Actor": "alice"}
        )
        assert replay.json()["data"]["replayed"] == 2
        for notification_id in ids[:2]:
            detail = await h.wait_status(notification_id, "SENT")
            assert detail["notification"]["attempts"] == 1, "the ladder restarts on replay"
            # The audit names the authenticated key, never a header the client chose.
            assert any("by admin-key" in log["message"] for log in detail["logs"])
            assert not any("alice" in log["message"] for log in detail["logs"])
        again = await h.client.post("/api/dlq/replay", json={"ids": ids[:2]})
        assert again.json()["data"]["replayed"] == 0, "only dead letters are replayed"
        await asyncio.sleep(0.2)
        mailbox = (await h.client.get("/api/mailbox")).json()["data"]["messages"]
        assert sorted(m["notificationId"] for m in mailbox) == sorted(ids[:2]), (
            "delivered once each"
        )

        assert (await h.client.delete(f"/api/dlq/{ids[2]}")).status_code == 200
        assert (await h.client.get(f"/api/notifications/{ids[2]}")).status_code == 404
        assert (await h.client.delete(f"/api/dlq/{ids[2]}")).status_code == 404
        neither = await h.client.post("/api/dlq/replay", json={})
        assert neither.status_code == 422


async def test_idempotency_key_under_parallel_requests(herald: Any) -> None:
    async with herald(deliver=False) as h:
        headers = {"Idempotency-Key": "order-42"}

        async def post() -> httpx.Response:
            return await h.client.post("/api/notifications", json=EMAIL, headers=headers)

        replies = await asyncio.gather(*(post() for _ in range(50)))
        assert {r.status_code for r in replies} == {201}
        assert len({r.content for r in replies}) == 1, "every repeat gets the first answer"
        assert sum(r.headers.get("idempotent-replayed") == "true" for r in replies) == 49
        total = (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"
        ]
        assert total == 1

        different = await h.client.post(
            "/api/notifications", json={**EMAIL, "message": "other"}, headers=headers
        )
        assert different.status_code == 422
        assert different.json()["errors"][0]["field"] == "header.idempotency-key"

        bulk_headers = {"Idempotency-Key": "bulk-1"}
        first = await h.client.post("/api/notifications/bulk", json={"notifications": [EMAIL] * 3},
                                    headers=bulk_headers)  # fmt: skip
        second = await h.client.post("/api/notifications/bulk", json={"notifications": [EMAIL] * 3},
                                     headers=bulk_headers)  # fmt: skip
        assert first.content == second.content and second.status_code == 201
        total = (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"
        ]
        assert total == 4


async def test_an_idempotency_key_compares_the_document_not_its_bytes(herald: Any) -> None:
    """A client whose JSON library orders keys differently on its retry, escapes other
    characters or indents, sends the same request: it gets the first answer."""
    body = {**EMAIL, "message": "café", "metadata": {"order": 42, "tags": {"b": 1, "a": [2, 3]}}}
    respelled = (
        '{\n  "metadata": {"tags": {"a": [2, 3], "b": 1}, "order": 42},\n'
        '  "message": "caf\\u00e9", "subject": "s", "recipient": "a@example.com",\n'
        '  "type": "EMAIL"\n}'
    )
    assert orjson.loads(respelled) == body
    async with herald(deliver=False) as h:
        headers = {"Idempotency-Key": "order-43", "Content-Type": "application/json"}
        first = await h.client.post("/api/notifications", content=orjson.dumps(body),
                                    headers=headers)  # fmt: skip
        assert first.status_code == 201, first.text
        again = await h.client.post("/api/notifications", content=respelled, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
        other = {**body, "metadata": {"order": 42.5, "tags": {"b": 1, "a": [2, 3]}}}
        changed = await h.client.post("/api/notifications", json=other, headers=headers)
        assert changed.status_code == 422, "a value changed: another request"
        assert changed.json()["errors"][0]["field"] == "header.idempotency-key"


async def test_retention_removes_old_sent_and_keeps_failed(store: Store) -> None:
    items = [
        NewNotification(Channel.EMAIL, f"u{i}@example.com", "b", subject="s", priority=Priority.LOW)
        for i in range(4)
    ]
    created = await store.create(items)
    claims = {c.id: c for c in await store.claim(10, 30)}
    now = time.time()
    await store.complete([
        Sent(claims[created[0].id], "capture", "m0", 1.0, now),
        Sent(claims[created[1].id], "capture", "m1", 1.0, now),
        Dead(claims[created[2].id], "capture", "gone", True, now),
    ])  # fmt: skip
    assert await store.clean(now - 3600) == 0, "nothing is old yet"
    assert await store.clean(now + 1) == 2
    left = {
        n.id: n.status.value
        for n in (
            await store.find(
                "default",
                __import__("herald.store.base", fromlist=["ListFilter"]).ListFilter(),
                1,
                10,
            )
        ).items
    }
    assert left == {created[2].id: "FAILED", created[3].id: "PROCESSING"}
    assert await store.audit("default", created[0].id) == []

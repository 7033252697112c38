"""A client written from a seed's document works against Herald: the fields it reads
are there and true, the names it uses are understood (issue "Seed fidelity")."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from herald.models import Channel, NewNotification, Priority, Retry
from tests.conftest import AUTH
from tests.integration.test_two_doors import Case, call, two_doors

pytestmark = pytest.mark.every_store

EMAIL = {"type": "EMAIL", "recipient": "seed@example.com", "subject": "Hi", "message": "Hello"}
LANES = ("email", "sms", "push", "webhook", "chat", "retry-1", "retry-2", "dlq")


# -- fields the seeds read ----------------------------------------------------------


async def test_job_id_is_the_notification_id_at_both_doors(herald: Any, tmp_path: Path) -> None:
    """Seed 002 answers a create with ``{jobId}``: both doors, the plain and the model's."""
    async with two_doors(herald, tmp_path) as (fast, framework, _):
        headers = {**AUTH, "Content-Type": "application/json"}
        # The fast path reads the plain body; a scheduledAt sends it through the model.
        plain = orjson.dumps(EMAIL)
        later = datetime.now(UTC) + timedelta(hours=1)
        modelled = orjson.dumps({**EMAIL, "scheduledAt": later.isoformat()})
        for door in (fast, framework):
            for body in (plain, modelled):
                reply = await call(door, Case("create", headers, body))
                assert reply.status_code == 201, (door.name, reply.text)
                data = reply.json()["data"]
                assert data["jobId"] == data["id"] == data["_id"], (door.name, data)
                assert await door.engine.store.get("default", data["jobId"]) is not None


async def test_job_id_in_each_item_of_the_bulk_answer(herald: Any) -> None:
    async with herald(deliver=False) as h:
        # All plain (the quick reading), then one invalid item (the model's reading).
        for items in ([EMAIL, EMAIL], [EMAIL, {**EMAIL, "recipient": "nobody"}]):
            reply = await h.client.post("/api/notifications/bulk", json={"notifications": items})
            assert reply.status_code == 201, reply.text
            results = reply.json()["data"]["results"]
            assert results[0]["jobId"] == results[0]["id"] is not None
            for item in results:
                assert item["jobId"] == item["id"], item
            got = await h.client.get(f"/api/notifications/{results[0]['jobId']}")
            assert got.status_code == 200


async def test_queue_depth_has_seed_004s_queues_with_true_counts(herald: Any) -> None:
    async with herald(deliver=False) as h:
        store = h.engine.store

        def new(priority: Priority, delay: float | None = None) -> NewNotification:
            at = None if delay is None else time.time() + delay
            return NewNotification(Channel.EMAIL, "seed@example.com", "m", "s",
                                   priority=priority, scheduled_at=at)  # fmt: skip

        # Three claimed: two fail and wait to be retried (in retry-1, and in their own
        # lane's quick backoff), one stays in flight: waiting in no queue.
        await store.create([new(Priority.HIGH), new(Priority.LOW), new(Priority.MEDIUM)])
        claims = {c.priority: c for c in await store.claim(3, 60)}
        now = time.time()
        failed = [
            Retry(claims[Priority.HIGH], "fault", "boom", now + 300, 1, "retry-1", now),
            Retry(claims[Priority.LOW], "fault", "boom", now + 1, 0, "email", now),
        ]
        assert await store.complete(failed) == 2
        # Waiting for a first attempt: three normal (one delayed), two high.
        waiting = [Priority.LOW, Priority.MEDIUM, Priority.HIGH, Priority.CRITICAL]
        await store.create([new(Priority.LOW, delay=3600), *(new(p) for p in waiting)])

        for path in ("/api/notifications/stats/system", "/api/notification-stats"):
            data = (await h.client.get(path)).json()["data"]
            depth = data["queueDepth"]
            assert (depth["notifications"], depth["high_priority"], depth["retry"]) == (3, 2, 2)
            assert data["byStatus"]["RETRYING"] == 2 and data["byStatus"]["PROCESSING"] == 1
            # Herald's own per-lane figures stay beside them (waiting, delayed and active).
            assert depth["email"] == 7 and depth["retry-1"] == 1
            assert set(LANES) <= set(depth)


async def test_max_retries_is_what_the_ladder_really_allows(herald: Any) -> None:
    """Every attempt fails: the attempts made before FAILED are the first plus maxRetries.
    SMS climbs seed 004's ladder (3 retries), EMAIL a custom one (4 retries)."""
    settings = {
        "email_providers": ["fault"], "sms_providers": ["fault"], "fault_failure_rate": 1,
        "retry_backoff": ["0", "0", "0"], "retry_1_delay_ms": 0, "retry_2_delay_ms": 0,
        "sms_retry_policy": "seed004", "retry_scale": 0.001,
    }  # fmt: skip
    sms = {"type": "SMS", "recipient": "+14155550123", "message": "Your code is 1"}
    async with herald(**settings) as h:
        for body, retries in ((EMAIL, 4), (sms, 3)):
            created = (await h.client.post("/api/notifications", json=body)).json()["data"]
            assert created["maxRetries"] == retries, created
            detail = await h.wait_status(created["id"], "FAILED")
            shown = detail["notification"]
            attempts = [log for log in detail["logs"] if log["status"] == "PROCESSING"]
            assert shown["attempts"] == len(attempts) == shown["maxRetries"] + 1, detail["logs"]
            listed = await h.client.get("/api/notifications", params={"type": body["type"]})
            assert listed.json()["data"]["notifications"][0]["maxRetries"] == retries


# -- names the seeds use ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "lanes"),
    [
        ("mail", {"email"}),  # seed 000
        ("retry1", {"retry-1"}),  # seed 001
        ("retry2", {"retry-2"}),
        ("notifications", {"email", "sms", "push", "webhook", "chat"}),  # seed 004
        ("retry", {"retry-1", "retry-2"}),
        ("notifications_dlq", {"dlq"}),
    ],
)
async def test_each_seed_queue_name_pauses_its_lanes(
    herald: Any, name: str, lanes: set[str]
) -> None:
    async with herald(deliver=False) as h:

        async def paused() -> set[str]:
            health = (await h.client.get("/api/queue-health")).json()["data"]["queues"]
            return {lane for lane in LANES if health[lane]["paused"]}

        reply = await h.client.post(f"/api/queue/{name}/pause")
        assert reply.status_code == 200, reply.text
        assert set(reply.json()["data"]["lanes"]) == lanes
        assert await paused() == lanes
        assert (await h.client.post(f"/api/queue/{name.upper()}/resume")).status_code == 200
        assert await paused() == set()


async def test_high_priority_is_no_lane_and_says_so(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for action in ("pause", "resume"):
            reply = await h.client.post(f"/api/queue/high_priority/{action}")
            assert reply.status_code == 422, reply.text
            assert "priority is served inside each lane" in reply.json()["message"]
        health = (await h.client.get("/api/queue-health")).json()["data"]["queues"]
        assert not any(health[lane]["paused"] for lane in LANES)
        assert (await h.client.post("/api/queue/nowhere/pause")).status_code == 404


async def test_queue_health_lists_mail_with_the_email_lanes_counts(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await h.client.post("/api/notifications", json=EMAIL)
        await h.client.post("/api/queue/email/pause")
        queues = (await h.client.get("/api/queue-health")).json()["data"]["queues"]
        assert queues["mail"] == queues["email"]
        assert queues["mail"]["waiting"] == 1 and queues["mail"]["paused"] is True


async def test_lowercase_types_and_statuses_are_read(herald: Any) -> None:
    async with herald(deliver=False) as h:
        lower = {**EMAIL, "type": "email"}
        created = await h.client.post("/api/notifications", json=lower)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["type"] == "EMAIL"
        sms = {"type": "sms", "recipient": "+14155550123", "message": "m"}
        bulk = await h.client.post("/api/notifications/bulk", json={"notifications": [lower, sms]})
        assert bulk.status_code == 201 and bulk.json()["data"]["accepted"] == 2, bulk.text

        async def total(**params: str) -> int:
            reply = await h.client.get("/api/notifications", params=params)
            assert reply.status_code == 200, (params, reply.text)
            return int(reply.json()["data"]["pagination"]["totalItems"])

        assert await total(type="email") == await total(type="EMAIL") == 2
        assert await total(type="sms", status="queued") == 1
        for word in ("delivered", "sent", "failed", "retrying", "pending", "queued"):
            assert await total(status=word) == await total(status=word.upper())
        assert await total(status="queued") == 3
        assert (await h.client.get("/api/dlq", params={"type": "email"})).status_code == 200
        refused = await h.client.get("/api/notifications", params={"status": "lost"})
        assert refused.status_code == 422


@pytest.mark.parametrize(
    ("spelt", "name", "data"),
    [
        ("reset_password", "reset-password",
         {"username": "u", "email": "u@example.com", "userId": 1, "resetToken": "abc123"}),
        ("friend_request", "friend-request",
         {"fromUserId": 1, "fromUsername": "u", "toUserId": 2, "toEmail": "f@example.com"}),
    ],
)  # fmt: skip
async def test_seed_001s_underscored_event_types_are_herald_s_hyphenated_ones(
    herald: Any, spelt: str, name: str, data: dict[str, Any]
) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.post("/api/events", json={"type": spelt, "data": data})
        assert reply.status_code == 201, reply.text
        assert reply.json()["data"]["event"]["type"] == name
        for asked in (spelt, name):
            listed = (await h.client.get("/api/events", params={"type": asked})).json()["data"]
            assert [e["type"] for e in listed["events"]] == [name], asked
        unknown = await h.client.post("/api/events", json={"type": "lost_thing", "data": data})
        assert unknown.status_code == 422

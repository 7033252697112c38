"""A real worker on each named retry policy, shortened by HERALD_RETRY_SCALE: the attempts'
real spacing, the history's words, the DLQ at the end; maxRetries through the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

pytestmark = pytest.mark.every_store

#: Seed 002's ladder (retries after 2, 4, 8 s) at a fifth: 0.4, 0.8, 1.6 s.
SEED002_FAST = {
    "retry_policy": "seed002",
    "retry_scale": 0.2,
    "email_providers": ["fault"],
    "fault_failure_rate": 1.0,  # every attempt fails, transiently
    "sms_providers": ["fault"],
}
EMAIL = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}


def at(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["timestamp"]).timestamp()


#: Each named policy, the scale that makes it short, and its retries as (wait, lane) at
#: that scale: seed 000 climbs to the retry-1 and retry-2 stages, the others stay on
#: the channel's lane.
LADDERS = {
    "seed000": (0.001, [(0.001, "email"), (0.002, "email"), (0.004, "email"),
                        (0.3, "retry-1"), (1.8, "retry-2")]),
    "seed002": (0.2, [(0.4, "email"), (0.8, "email"), (1.6, "email")]),
    "seed003": (0.02, [(0.1, "email"), (0.3, "email"), (0.9, "email")]),
    "seed004": (0.01, [(0.05, "email"), (0.25, "email"), (1.25, "email")]),
}  # fmt: skip


@pytest.mark.parametrize("policy", sorted(LADDERS))
async def test_each_policy_spaces_real_attempts_then_parks_in_the_dlq(
    herald: Any, policy: str
) -> None:
    scale, ladder = LADDERS[policy]
    settings = {**SEED002_FAST, "retry_policy": policy, "retry_scale": scale}
    async with herald(**settings) as h:
        created = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]
        assert created["maxRetries"] == len(ladder)
        detail = await h.wait_status(created["_id"], "FAILED", timeout=20)
    note, logs = detail["notification"], detail["logs"]
    assert note["queue"] == "dlq" and note["attempts"] == len(ladder) + 1
    statuses = [log["status"] for log in logs]
    assert statuses == ["PENDING", "QUEUED", *["PROCESSING", "RETRYING"] * len(ladder),
                        "PROCESSING", "FAILED"]  # fmt: skip
    retries = [log for log in logs if log["status"] == "RETRYING"]
    assert [(r["metadata"]["retryInSeconds"], r["metadata"]["queue"]) for r in retries] == ladder
    # Each retry is claimed when its wait is over, not before, and soon after.
    starts = [at(log) for log in logs if log["status"] == "PROCESSING"]
    for retry, (wait, _), started in zip(retries, ladder, starts[1:], strict=True):
        waited = started - at(retry)
        assert wait - 0.002 <= waited <= wait + 0.5, (wait, waited)
    assert "retries exhausted" in logs[-1]["message"] and "moved to dlq" in logs[-1]["message"]


async def test_seed002s_history_says_each_wait(herald: Any) -> None:
    async with herald(**SEED002_FAST) as h:
        created = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]
        detail = await h.wait_status(created["_id"], "FAILED", timeout=15)
    retries = [log for log in detail["logs"] if log["status"] == "RETRYING"]
    assert [r["message"].rsplit("; ", 1)[1] for r in retries] == [
        "retry in 0.4s on email", "retry in 0.8s on email", "retry in 1.6s on email"
    ]  # fmt: skip


async def test_max_retries_and_a_channels_own_policy(herald: Any) -> None:
    settings = {**SEED002_FAST, "sms_retry_policy": "seed004", "retry_scale": 0.05}
    async with herald(**settings) as h:
        one = {**EMAIL, "maxRetries": 1}
        sms = {"type": "SMS", "recipient": "+14155550123", "message": "m"}
        capped = (await h.client.post("/api/notifications", json=one)).json()["data"]
        texted = (await h.client.post("/api/notifications", json=sms)).json()["data"]
        capped_detail = await h.wait_status(capped["_id"], "FAILED", timeout=15)
        sms_detail = await h.wait_status(texted["_id"], "FAILED", timeout=15)
        over = await h.client.post("/api/notifications", json={**sms, "maxRetries": 4})
        bulk = await h.client.post("/api/notifications/bulk", json={
            "notifications": [{**sms, "maxRetries": 3}, {**EMAIL, "maxRetries": 4}]
        })  # fmt: skip
    assert capped_detail["notification"]["attempts"] == 2, "one retry, as it asked"
    sms_retries = [log for log in sms_detail["logs"] if log["status"] == "RETRYING"]
    # Seed 004's ladder (5, 25, 125 s) at a twentieth, on the sms queue.
    assert [r["metadata"]["retryInSeconds"] for r in sms_retries] == [0.25, 1.25, 6.25]
    assert over.status_code == 422
    assert over.json()["errors"] == [
        {"field": "maxRetries", "message": "must be between 0 and 3, the retries of the SMS "
         "retry policy"}
    ]  # fmt: skip
    assert bulk.status_code == 201
    results = bulk.json()["data"]["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["errors"][0]["field"] == "maxRetries"

"""Seed 002's client: the BullMQ queue service (email, SMS, push, webhook).

Read from the seed: ``POST /api/notifications`` answers ``{ jobId }``; single
and bulk adds, delayed (scheduled) jobs and priorities; queue metrics
``waiting``, ``active``, ``completed``, ``failed`` and ``delayed``; pause and
resume; cleaning old jobs; 3 attempts on a 2, 4, 8 s ladder (Herald:
``HERALD_RETRY_POLICY=seed002``, which makes ``maxRetries`` 3). Herald keeps
``jobId`` inside its envelope (``data.jobId``), as README says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tests.seeds.conftest import wait_for, wait_status

HERALD_ENV = {"HERALD_RETRY_POLICY": "seed002"}

JOBS = [
    {"type": "email", "recipient": "user@example.com", "subject": "Hi", "message": "Hello"},
    {"type": "sms", "recipient": "+14155550123", "message": "Hello"},
    {"type": "push", "recipient": "device-token-0123456789", "message": "Hello"},
    {"type": "webhook", "recipient": "https://hooks.example.com/in", "message": "{}"},
]


def lane(client: httpx.Client, name: str) -> dict[str, Any]:
    answer = client.get("/api/queue-health")
    assert answer.status_code == 200, answer.text
    counts: dict[str, Any] = answer.json()["data"]["queues"][name]
    return counts


def add(client: httpx.Client, job: Mapping[str, object]) -> str:
    answer = client.post("/api/notifications", json=job)
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert data["jobId"] == data["_id"]
    assert data["maxRetries"] == 3
    return str(data["jobId"])


def test_each_channel_gets_a_job_id_and_completes(client: httpx.Client) -> None:
    completed_before = lane(client, "email")["completed"]
    assert isinstance(completed_before, int)
    ids = [add(client, job) for job in JOBS]
    for job_id in ids:
        wait_status(client, job_id, "SENT")
    for name in ("email", "sms", "push", "webhook"):
        counts = lane(client, name)
        assert {"waiting", "active", "completed", "failed", "delayed"} <= set(counts)
    assert lane(client, "email")["completed"] == completed_before + 1


def test_bulk_add_answers_a_job_id_per_item(client: httpx.Client) -> None:
    answer = client.post("/api/notifications/bulk", json={"notifications": JOBS[:2]})
    assert answer.status_code in (200, 201, 207), answer.text
    items = answer.json()["data"]["results"]
    assert len(items) == 2
    for item in items:
        wait_status(client, item["jobId"], "SENT")


def test_a_delayed_job_waits_in_delayed(client: httpx.Client) -> None:
    job_id = add(client, {**JOBS[2], "delaySeconds": 3600, "priority": "HIGH"})
    assert (
        client.get(f"/api/notifications/{job_id}").json()["data"]["notification"]["status"]
        == "SCHEDULED"
    )
    assert lane(client, "push")["delayed"] >= 1
    assert client.post(f"/api/notifications/{job_id}/cancel").status_code == 200


def test_pause_holds_jobs_and_resume_releases_them(client: httpx.Client) -> None:
    assert client.post("/api/queue/sms/pause").status_code == 200
    try:
        job_id = add(client, JOBS[1])
        wait_for(lambda: lane(client, "sms")["waiting"], "the job to wait in the paused queue")
        assert lane(client, "sms")["paused"] is True
    finally:
        assert client.post("/api/queue/sms/resume").status_code == 200
    wait_status(client, job_id, "SENT")


def test_clean_removes_completed_jobs(client: httpx.Client) -> None:
    job_id = add(client, JOBS[3])
    wait_status(client, job_id, "SENT")
    answer = client.post(
        "/api/queue/webhook/clean", json={"status": "completed", "olderThan": 0, "limit": 1000}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["removed"] >= 1
    assert client.get(f"/api/notifications/{job_id}").status_code == 404
    assert lane(client, "webhook")["completed"] == 0

"""Seed 004's client: the notification API with history, statistics and metrics.

Read from the seed's "API Documentation": every route, the create body and
its validation rules, the answers' fields, the PENDING → QUEUED → PROCESSING →
SENT logs, ``queueDepth.notifications``/``.high_priority``/``.retry``, and the
Prometheus names. Herald runs seed 004's ladder (``HERALD_RETRY_POLICY=seed004``:
5, 25, 125 s), so ``maxRetries`` is the seed's 3. Intended differences (README,
"What a client written from a seed reads and names"): health reports
``services.database`` instead of ``mongodb`` and ``rabbitmq``.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pytest

from tests.seeds.conftest import wait_status

HERALD_ENV = {"HERALD_RETRY_POLICY": "seed004"}

CREATE = {
    "type": "EMAIL",
    "recipient": "user@example.com",
    "subject": "Welcome to WaveCom",
    "message": "Thank you for signing up!",
    "priority": "HIGH",
    "metadata": {"userId": "12345", "campaign": "onboarding"},
}


def create(client: httpx.Client, body: Mapping[str, object]) -> dict[str, object]:
    answer = client.post("/api/notifications", json=body)
    assert answer.status_code == 201, answer.text
    data: dict[str, object] = answer.json()["data"]
    return data


def test_create_answers_the_documented_fields(client: httpx.Client) -> None:
    answer = client.post("/api/notifications", json=CREATE)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["success"] is True
    assert body["message"] == "Notification created and queued successfully"
    data = body["data"]
    for field in ("type", "recipient", "subject", "message", "priority", "metadata"):
        assert data[field] == CREATE[field], field
    assert data["_id"]
    assert data["status"] == "QUEUED"
    assert data["retryCount"] == 0
    assert data["maxRetries"] == 3
    assert data["createdAt"] and data["updatedAt"]


def test_status_and_logs_after_sending(client: httpx.Client) -> None:
    notification_id = str(create(client, CREATE)["_id"])
    wait_status(client, notification_id, "SENT")
    answer = client.get(f"/api/notifications/{notification_id}")
    assert answer.status_code == 200
    data = answer.json()["data"]
    notification = data["notification"]
    assert notification["_id"] == notification_id
    assert notification["status"] == "SENT"
    assert notification["retryCount"] == 0
    assert notification["maxRetries"] == 3
    assert notification["sentAt"]
    assert notification["processingTimeMs"] is not None
    assert notification["providerMessageId"]
    logs = data["logs"]
    assert [log["status"] for log in logs] == ["PENDING", "QUEUED", "PROCESSING", "SENT"]
    assert [log["message"] for log in logs][:3] == [
        "Notification created", "Added to queue", "Worker started processing",
    ]  # fmt: skip
    for log in logs:
        assert log["notificationId"] == notification_id
        assert log["_id"] is not None and log["timestamp"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": None}, "type"),
        ({"type": "FAX"}, "type"),
        ({"recipient": "not-an-address"}, "recipient"),
        ({"subject": None}, "subject"),
        ({"message": ""}, "message"),
        ({"message": "x" * 5001}, "message"),
        ({"priority": "URGENT"}, "priority"),
        ({"metadata": "not an object"}, "metadata"),
    ],
)
def test_validation_rules(client: httpx.Client, change: dict[str, object], field: str) -> None:
    body = {k: v for k, v in {**CREATE, **change}.items() if v is not None}
    answer = client.post("/api/notifications", json=body)
    assert answer.status_code == 422, answer.text
    assert field in [error["field"] for error in answer.json()["errors"]]


def test_defaults_and_other_types(client: httpx.Client) -> None:
    email = create(client, {k: v for k, v in CREATE.items() if k != "priority"})
    assert email["priority"] == "MEDIUM"
    sms = create(client, {"type": "SMS", "recipient": "+14155550123", "message": "Hi"})
    push = create(client, {"type": "PUSH", "recipient": "device-token-0123456789", "message": "Hi"})
    for created in (email, sms, push):
        wait_status(client, str(created["_id"]), "SENT")


def test_list_with_the_documented_query(client: httpx.Client) -> None:
    sent = create(client, CREATE)
    wait_status(client, str(sent["_id"]), "SENT")
    answer = client.get(
        "/api/notifications", params={"page": 1, "limit": 10, "status": "SENT", "type": "EMAIL"}
    )
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["notifications"]
    for item in data["notifications"]:
        assert item["type"] == "EMAIL" and item["status"] == "SENT"
        assert {"_id", "recipient", "priority", "createdAt"} <= set(item)
    pagination = data["pagination"]
    assert pagination["currentPage"] == 1
    assert pagination["itemsPerPage"] == 10
    assert pagination["totalItems"] >= len(data["notifications"])
    assert pagination["totalPages"] == -(-pagination["totalItems"] // 10)
    assert client.get("/api/notifications", params={"limit": 101}).status_code == 422


def test_system_statistics(client: httpx.Client) -> None:
    scheduled = {**CREATE, "priority": "CRITICAL", "delaySeconds": 3600}
    before = client.get("/api/notifications/stats/system").json()["data"]
    waiting = create(client, scheduled)
    answer = client.get("/api/notifications/stats/system")
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["total"] == before["total"] + 1
    for status in ("PENDING", "QUEUED", "PROCESSING", "SENT", "FAILED", "RETRYING"):
        assert isinstance(data["byStatus"][status], int), status
    assert {"EMAIL", "SMS", "PUSH"} <= set(data["byType"])
    assert set(data["byPriority"]) == {"LOW", "MEDIUM", "HIGH", "CRITICAL"}
    assert data["byPriority"]["CRITICAL"] == before["byPriority"]["CRITICAL"] + 1
    depth = data["queueDepth"]
    assert depth["high_priority"] == before["queueDepth"]["high_priority"] + 1
    assert isinstance(depth["notifications"], int) and isinstance(depth["retry"], int)
    assert isinstance(data["averageProcessingTime"], int | float)
    assert 0 <= data["successRate"] <= 100
    assert client.post(f"/api/notifications/{waiting['_id']}/cancel").status_code == 200


def test_health(client: httpx.Client) -> None:
    answer = client.get("/api/health")
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "healthy"
    assert body["timestamp"]
    assert body["uptime"] > 0
    # Herald's one store stands for the seed's mongodb and rabbitmq lines.
    assert body["services"]["database"] == "connected"


def test_prometheus_metrics(client: httpx.Client) -> None:
    create(client, CREATE)
    answer = client.get("/api/metrics")
    assert answer.status_code == 200
    text = answer.text
    for name in (
        'notifications_created_total{type="EMAIL"}',
        "# TYPE notifications_sent_total counter",
        "# TYPE notifications_failed_total counter",
        "notification_processing_duration_seconds_bucket{",
        'queue_depth{queue="email"}',
        "http_requests_total{",
        "http_request_duration_seconds",
    ):
        assert name in text, name

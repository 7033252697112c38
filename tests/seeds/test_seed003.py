"""Seed 003's client: ``POST /api/notify`` for email, SMS and push.

Read from the seed: the body ``{type, to, subject, message}`` with lowercase
types, the answer ``{"status": "queued", "messageId"}``, and statuses sent,
failed and retrying. Herald answers ``202``, and a client follows its message
at ``GET /api/notifications/{messageId}`` (README, API table). Its monitoring
SQL, over Herald's schema, is tested in ``test_seed003_sql.py``.
"""

from __future__ import annotations

import httpx
import pytest

from tests.seeds.conftest import wait_status

EXAMPLES = [
    {"type": "email", "to": "user@example.com", "subject": "Welcome!",
     "message": "Hello, thank you for joining."},
    {"type": "email", "to": "user@example.com", "subject": "Test Email",
     "message": "This is a test email notification."},
    {"type": "sms", "to": "+1234567890", "message": "This is a test SMS notification."},
    {"type": "push", "to": "device-token-0123456789", "message": "Hello from push."},
]  # fmt: skip


@pytest.mark.parametrize("body", EXAMPLES, ids=lambda b: b["type"])
def test_notify_queues_and_sends(client: httpx.Client, body: dict[str, str]) -> None:
    answer = client.post("/api/notify", json=body)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "queued"
    message_id = answer.json()["messageId"]
    assert message_id
    wait_status(client, message_id, "SENT")
    notification = client.get(f"/api/notifications/{message_id}").json()["data"]["notification"]
    assert notification["type"] == body["type"].upper()
    assert notification["message"] == body["message"]


def test_an_unknown_type_is_refused(client: httpx.Client) -> None:
    answer = client.post("/api/notify", json={"type": "fax", "to": "x", "message": "m"})
    assert answer.status_code == 422
    assert "type" in answer.text

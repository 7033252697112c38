"""Seed 000's client: the fan-out email system (signups, logins, resets; mail queue).

The seed documents its routes and request bodies, and that a delivered email
ends "delivered" in its tracking (Herald's SENT: README, "Lowercase words"),
with the mail queue, Retry-1, Retry-2 and the DLQ. It documents no answer
shapes beyond that, so the client reads Herald's documented ones.
"""

from __future__ import annotations

import httpx

from tests.seeds.conftest import wait_for, wait_status

SIGNUP = {
    "username": "testuser",
    "email": "test@example.com",
    "firstName": "Test",
    "lastName": "User",
    "userId": 12345,
}
LOGIN = {
    "username": "testuser",
    "email": "test@example.com",
    "userId": 12345,
    "ipAddress": "192.168.1.1",
    "userAgent": "Mozilla/5.0...",
}
RESET = {
    "username": "testuser",
    "email": "test@example.com",
    "userId": 12345,
    "resetToken": "abc123def456",
}


def queues(client: httpx.Client) -> dict[str, dict[str, object]]:
    answer = client.get("/api/queue-health")
    assert answer.status_code == 200, answer.text
    found: dict[str, dict[str, object]] = answer.json()["data"]["queues"]
    return found


def email_of(answer: httpx.Response) -> str:
    """The id of the email a seed route queued (a signup's welcome email, or the event's)."""
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    if "welcomeEmail" in data:
        return str(data["welcomeEmail"]["notificationId"])
    (only,) = data["notificationIds"]
    return str(only)


def test_health(client: httpx.Client) -> None:
    answer = client.get("/api/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "healthy"


def test_signup_login_and_reset_each_send_an_email(client: httpx.Client) -> None:
    sent_before = client.get("/api/notification-stats").json()["data"]["byStatus"]["SENT"]
    ids = [
        email_of(client.post("/api/signups", json=SIGNUP)),
        email_of(client.post("/api/logins", json=LOGIN)),
        email_of(client.post("/api/reset-passwords", json=RESET)),
    ]
    for notification_id in ids:
        # The seed's "delivered" (the SMTP server took it) is Herald's SENT.
        wait_status(client, notification_id, "SENT")
    stats = client.get("/api/notification-stats")
    assert stats.status_code == 200
    assert stats.json()["data"]["byStatus"]["SENT"] == sent_before + 3
    assert stats.json()["data"]["byType"]["EMAIL"] >= 3


def test_queue_health_names_the_seeds_queues(client: httpx.Client) -> None:
    lanes = queues(client)
    for name in ("mail", "retry-1", "retry-2", "dlq"):
        assert name in lanes, name
        assert {"waiting", "active", "delayed", "completed", "failed"} <= set(lanes[name])
    assert lanes["mail"] == lanes["email"]


def test_pausing_the_mail_queue_holds_its_email_until_resumed(client: httpx.Client) -> None:
    paused = client.post("/api/queue/mail/pause")
    assert paused.status_code == 200, paused.text
    try:
        assert queues(client)["mail"]["paused"] is True
        held = email_of(client.post("/api/logins", json=LOGIN))
        wait_for(lambda: queues(client)["mail"]["waiting"], "the login alert to wait in mail")
        assert (
            client.get(f"/api/notifications/{held}").json()["data"]["notification"]["status"]
            == "QUEUED"
        )
    finally:
        resumed = client.post("/api/queue/mail/resume")
    assert resumed.status_code == 200, resumed.text
    assert queues(client)["mail"]["paused"] is False
    wait_status(client, held, "SENT")

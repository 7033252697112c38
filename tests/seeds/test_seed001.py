"""Seed 001's client: signups with welcome-email tracking, behind three servers.

Read from the seed: each route, the Signups collection's fields (``userId``,
``username``, ``email``, ``emailVerified``, ``welcomeEmail.status``,
``.attempts``, ``.messageId``, ``.deliveryHistory``), the queues ``mail``,
``retry1``, ``retry2`` and ``dlq``, and "server identification headers".
Herald's intended difference: what the seed called ``delivered`` (the SMTP
server took the message) is ``sent``; ``delivered`` waits for a receipt.
"""

from __future__ import annotations

import re

import httpx

from tests.seeds.conftest import Live, wait_for

SIGNUP = {
    "username": "ada",
    "email": "ada@example.com",
    "firstName": "Ada",
    "lastName": "Lovelace",
    "userId": 1815,
    "password": "correct horse battery staple",
}


def welcome(client: httpx.Client, signup_id: object) -> dict[str, object]:
    answer = client.get(f"/api/signups/{signup_id}/welcome-email-status")
    assert answer.status_code == 200, answer.text
    data: dict[str, object] = answer.json()["data"]
    return data


def test_signup_tracks_its_welcome_email_until_sent(live: Live) -> None:
    client = live.client
    created = client.post("/api/signups", json=SIGNUP)
    assert created.status_code == 201, created.text
    signup = created.json()["data"]
    assert signup["userId"] == 1815
    assert signup["username"] == "ada"
    assert signup["email"] == "ada@example.com"
    assert signup["emailVerified"] is False
    assert "password" not in signup
    assert signup["welcomeEmail"]["status"] in ("pending", "queued", "sending", "sent")

    def sent() -> dict[str, object] | None:
        email = welcome(client, 1815)["welcomeEmail"]
        assert isinstance(email, dict)
        return email if email["status"] == "sent" else None

    email = wait_for(sent, "the welcome email to be sent")  # the seed's "delivered"
    assert email["attempts"] == 1
    assert email["messageId"]
    assert [entry["status"] for entry in email["deliveryHistory"]] == [
        "PENDING", "QUEUED", "PROCESSING", "SENT",
    ]  # fmt: skip
    assert welcome(client, signup["_id"])["welcomeEmail"] == email  # by id or by userId

    listed = client.get("/api/signups", params={"page": 1, "limit": 10})
    assert listed.status_code == 200
    assert signup["_id"] in [s["_id"] for s in listed.json()["data"]["signups"]]
    failed = client.get("/api/signups/welcome-emails/failed")
    assert failed.status_code == 200
    assert signup["_id"] not in [s["_id"] for s in failed.json()["data"]["signups"]]
    statistics = client.get("/api/signups/statistics").json()["data"]
    assert statistics["totalSignups"] >= 1
    assert statistics["welcomeEmails"]["sent"] >= 1


def test_verify_with_the_token_from_the_welcome_email(live: Live) -> None:
    client = live.client
    body = {**SIGNUP, "userId": 1816, "username": "byron", "email": "byron@example.com"}
    created = client.post("/api/signups", json=body)
    assert created.status_code == 201, created.text
    email_id = created.json()["data"]["welcomeEmail"]["notificationId"]
    # The API redacts a message holding a secret: read the token from what was "sent".
    rows = wait_for(
        lambda: live.query("SELECT body FROM mailbox WHERE notification_id = $1", email_id),
        "the welcome email in the capture mailbox",
    )
    match = re.search(r"/api/signups/verify/([A-Za-z0-9_-]+)", rows[0][0])
    assert match, rows[0][0]
    token = match.group(1)

    verified = client.post(f"/api/signups/verify/{token}")
    assert verified.status_code == 200, verified.text
    assert welcome(client, 1816)["emailVerified"] is True
    assert client.post(f"/api/signups/verify/{token}").status_code == 409
    assert client.post(f"/api/signups/verify/{token[::-1]}x").status_code == 404


def test_the_other_services_queue_an_email(client: httpx.Client) -> None:
    calls = {
        "/api/logins": {"username": "ada", "email": "ada@example.com", "userId": 1815,
                        "ipAddress": "203.0.113.9", "userAgent": "curl/8"},
        "/api/reset-passwords": {"username": "ada", "email": "ada@example.com",
                                 "userId": 1815, "resetToken": "abc123def456"},
        "/api/purchases": {"userId": 1815, "email": "ada@example.com", "orderId": "A-1",
                           "items": [{"name": "Engine", "quantity": 1, "price": 12.5}],
                           "total": 12.5, "currency": "GBP"},
        "/api/friend-requests": {"fromUserId": 1815, "fromUsername": "ada",
                                 "toUserId": 1816, "toEmail": "byron@example.com"},
    }  # fmt: skip
    for path, body in calls.items():
        answer = client.post(path, json=body)
        assert answer.status_code == 201, (path, answer.text)
        assert answer.json()["success"] is True
        assert len(answer.json()["data"]["notificationIds"]) == 1, path


def test_health_names_the_server_that_answered(client: httpx.Client) -> None:
    answer = client.get("/api/health")
    assert answer.status_code == 200
    assert answer.headers["X-Herald-Instance"]


def test_retry_queues_by_the_seeds_names(client: httpx.Client) -> None:
    for seed_name, lane in (("retry1", "retry-1"), ("retry2", "retry-2"), ("dlq", "dlq")):
        paused = client.post(f"/api/queue/{seed_name}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["data"]["lanes"] == [lane]
        assert client.get("/api/queue-health").json()["data"]["queues"][lane]["paused"] is True
        assert client.post(f"/api/queue/{seed_name}/resume").status_code == 200
        assert client.get("/api/queue-health").json()["data"]["queues"][lane]["paused"] is False

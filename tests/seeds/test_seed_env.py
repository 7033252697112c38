"""Each seed's ``.env`` (``env/seedNNN.env``) as ``herald up``'s environment.

Herald starts with the file's variables (plus an admin key, a free port and
a SQLite file of its own), and the client checks what they turned on: the
providers and their channels (``GET /api/providers``), the lanes
(``GET /api/queue-health``), the retry ladder a notification gets
(``maxRetries``) and the receipt endpoint a Twilio token opens. Variables
Herald does not read (Redis, MongoDB, RabbitMQ, ports of the seeds' own
servers) must not stop it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.seeds.conftest import running, wait_status

ENV_DIR = Path(__file__).parent / "env"
LANES = {"email", "sms", "push", "webhook", "chat", "retry-1", "retry-2", "dlq"}
SMTP = {"smtp": ["EMAIL"]}

#: What each file turns on: providers built (name: the channels it serves; capture is
#: always built), a capture rate limit, the maxRetries of a notification, receipts.
#: Seed 003's TWILIO_* turn Twilio on for SMS.
EXPECTED: dict[str, dict[str, Any]] = {
    "seed000": {"providers": SMTP, "maxRetries": 5},
    "seed001": {"providers": SMTP, "maxRetries": 5},
    "seed002": {"providers": {}, "maxRetries": 3, "rate": 10},
    "seed003": {"providers": {**SMTP, "twilio": ["SMS"]}, "maxRetries": 5, "twilio_receipts": True},
    "seed004": {"providers": {}, "maxRetries": 3},
}


def read_env(path: Path) -> dict[str, str]:
    """``NAME=value`` lines; blank lines and ``#`` comments skipped."""
    variables = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def test_every_seed_has_an_env_file() -> None:
    assert sorted(p.stem for p in ENV_DIR.glob("*.env")) == sorted(EXPECTED)


@pytest.mark.parametrize("seed", sorted(EXPECTED))
def test_seed_env_turns_on(seed: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    expected = EXPECTED[seed]
    env = read_env(ENV_DIR / f"{seed}.env")
    assert not {"HERALD_PORT", "HERALD_DATABASE_URL", "HERALD_ADMIN_KEY"} & set(env)
    with running("sqlite", tmp_path, env, request) as live:
        client: httpx.Client = live.client
        health = client.get("/api/health")
        assert health.status_code == 200, health.text
        assert health.json()["services"]["worker"] == "running"

        answer = client.get("/api/providers")
        assert answer.status_code == 200, answer.text
        providers = {p["name"]: p for p in answer.json()["data"]}
        channels = {name: p["channels"] for name, p in providers.items() if name != "capture"}
        for name, served in expected["providers"].items():
            assert channels.pop(name) == served, name
        assert not channels, f"unexpected providers: {channels}"
        assert providers["capture"]["ratePerSecond"] == expected.get("rate")

        queues = client.get("/api/queue-health").json()["data"]["queues"]
        assert set(queues) >= LANES
        assert not [name for name, counts in queues.items() if counts["paused"]]

        # A push notification goes to capture whatever the file says: its ladder is the file's.
        push = {"type": "PUSH", "recipient": "device-token-0123456789", "message": "Hi"}
        created = client.post("/api/notifications", json=push)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["maxRetries"] == expected["maxRetries"]
        wait_status(client, created.json()["data"]["_id"], "SENT")

        receipt = client.post("/api/receipts/twilio", data={"MessageSid": "SMfake"})
        assert receipt.status_code == (401 if expected.get("twilio_receipts") else 404)

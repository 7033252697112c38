"""Seed 003's monitoring SQL, as README gives it for Herald's PostgreSQL schema.

The queries are read from README (between ``<!-- seed003-sql -->`` markers) and
run as written on the database of a live ``herald up``, after it delivered
two emails, dead-lettered two SMS (a failing provider and ``maxRetries: 0``)
and left one SMS waiting for its retry (seed 004's ladder, scaled to minutes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.seeds.conftest import Live, running, wait_status

README = Path(__file__).parents[2] / "README.md"

ENV = {
    "HERALD_SMS_PROVIDERS": "fault",
    "HERALD_FAULT_FAILURE_RATE": "1",
    "HERALD_FAULT_ERROR": "transient",
    "HERALD_SMS_RETRY_POLICY": "seed004",
    "HERALD_RETRY_SCALE": "100",  # the first retry waits 500 s: RETRYING for the test
}


def queries() -> dict[str, str]:
    """README's queries by the comment above each."""
    block = re.search(r"<!-- seed003-sql -->\n```sql\n(.*?)```\n<!-- /seed003-sql -->",
                      README.read_text(), re.DOTALL)  # fmt: skip
    assert block, "README lost its seed 003 SQL block"
    found = {}
    for statement in block.group(1).split(";"):
        title, _, sql = statement.strip().partition("\n")
        if title:
            found[title.removeprefix("-- ")] = sql
    return found


def create(client: httpx.Client, body: Mapping[str, object]) -> str:
    answer = client.post("/api/notifications", json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["data"]["_id"])


@pytest.fixture
def herald(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Live]:
    with running("postgres", tmp_path, ENV, request) as live:
        yield live


def test_readme_queries_count_what_herald_did(herald: Live) -> None:
    client = herald.client
    email = {"type": "EMAIL", "recipient": "ann@example.com", "subject": "Hi", "message": "m"}
    sms = {"type": "SMS", "recipient": "+14155550123", "message": "code 1234"}
    sent = [create(client, email) for _ in range(2)]
    failed = [create(client, {**sms, "maxRetries": 0}) for _ in range(2)]
    retrying = create(client, sms)
    for notification_id in sent:
        wait_status(client, notification_id, "SENT")
    for notification_id in failed:
        wait_status(client, notification_id, "FAILED")
    wait_status(client, retrying, "RETRYING")

    sql = queries()
    assert set(sql) == {"Check notification status", "View failed notifications"}
    by_status = herald.query(sql["Check notification status"])
    assert by_status == [("email", "sent", 2), ("sms", "failed", 2), ("sms", "retrying", 1)]

    rows = herald.query(sql["View failed notifications"])
    assert [row[0] for row in rows] == failed[::-1]  # newest first
    for _id, kind, receiver, message, status, retries, error, created, updated in rows:
        assert (kind, receiver, message, status, retries) == (
            "sms", "+14155550123", "code 1234", "failed", 0,
        )  # fmt: skip
        assert error
        assert created <= updated

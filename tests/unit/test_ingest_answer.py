"""The ingest answer's quick presentation (``ingest._shown``) is ``present.notification``.

Both doors answer a 201 through ``_shown``, while every other route presents a
notification with ``present.notification``: the two must give the same dict
for any row, fresh from ``create`` or long delivered, down to the bytes.
"""

from __future__ import annotations

import dataclasses
import math

import orjson
import pytest

from herald.api import present
from herald.api.ingest import _shown
from herald.models import DEFAULT_TENANT, Channel, NewNotification, Notification, Priority, Status
from herald.retry import Ladder, Policy
from herald.store import records

#: A channel with a ladder of its own, so that each row's retries are its channel's.
POLICY = Policy(Ladder(), {Channel.WEBHOOK: Ladder(backoff=(0.0, 2.0), stages=())})

NOW = 1_764_770_400.1239996  # a fraction that rounds up into the next millisecond


def new(**changes: object) -> NewNotification:
    item = NewNotification(
        Channel.EMAIL, "ada@example.com", "Hello", "Hi", None, Priority.MEDIUM, {}, None, None,
        DEFAULT_TENANT, None,
    )  # fmt: skip
    return dataclasses.replace(item, **changes)  # type: ignore[arg-type]


FRESH = {
    "plain": new(),
    "metadata": new(metadata={"order": "1", "hook": "https://u:p@example.com/x", "n": [1, {}]}),
    "sensitive": new(metadata={"sensitive": True}, html="<p>code 123</p>"),
    "html": new(html="<a href='https://user:secret@example.com'>x</a>"),
    "credentials": new(
        recipient="https://u:p@hooks.example.com/a",
        channel=Channel.WEBHOOK,
        body="see rocket://bot:pw@chat.example.com/room",
    ),
    "callback": new(callback_url="https://u:p@example.com/cb"),
    "scheduled": new(scheduled_at=NOW + 3600),
    "due": new(scheduled_at=NOW - 5, priority=Priority.CRITICAL),
}


@pytest.mark.parametrize("case", sorted(FRESH))
def test_fresh_rows(case: str) -> None:
    row = records.fresh(FRESH[case], NOW)
    assert orjson.dumps(_shown(row, POLICY)) == orjson.dumps(present.notification(row, POLICY))


def delivered(**changes: object) -> Notification:
    row = records.fresh(new(metadata={"sensitive": False}), NOW)
    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


LATER = {
    "sent": delivered(
        status=Status.SENT,
        attempts=2,
        sent_at=NOW + 2.5,
        updated_at=NOW + 2.5,
        provider="smtp",
        provider_message_id="<m@x>",
        processing_ms=12.34567,
    ),
    "failed": delivered(
        status=Status.FAILED,
        attempts=4,
        failed_at=NOW + 9,
        updated_at=NOW + 9,
        last_error="550 https://a:b@relay.example.com refused",
    ),
    "odd times": delivered(updated_at=math.nan, scheduled_at=math.inf),
}


@pytest.mark.parametrize("case", sorted(LATER))
def test_later_rows(case: str) -> None:
    shown = orjson.dumps(_shown(LATER[case], POLICY))
    assert shown == orjson.dumps(present.notification(LATER[case], POLICY))

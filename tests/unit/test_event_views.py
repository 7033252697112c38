"""Event answers mask credentials in recipient URLs, as notification answers do."""

from __future__ import annotations

from herald.api import eventviews
from herald.events import EventRecord


def test_an_events_recipient_url_is_shown_without_its_password() -> None:
    record = EventRecord(
        id="e1", tenant_id="default", type="deploy", recipient="rocket://bot:hunter2@chat.example/ops",
        data={}, notification_ids=(), verifiable=False, verified_at=None, created_at=0.0,
    )  # fmt: skip
    shown = eventviews.event(record)
    assert "hunter2" not in repr(shown)
    assert shown["recipient"] == "rocket://bot:****@chat.example/ops"

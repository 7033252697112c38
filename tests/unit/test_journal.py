"""The delivery journal: one JSON line per outcome, masked, and cheap to write."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from herald.delivery.journal import Journal
from herald.models import Channel, Claim, Priority


def claim(attempt: int = 1) -> Claim:
    return Claim("n1", "acme", Channel.WEBHOOK, "https://hooks.example/in", None, "{}", None, {},
                 Priority.MEDIUM, attempt, "token", 0.0)  # fmt: skip


class Writes:
    """A logger that keeps each write it is handed, as structlog's loggers are handed them."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def __call__(self, *args: Any) -> Writes:  # the logger factory, too
        return self

    def msg(self, message: str) -> None:
        self.writes.append(message)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for text in self.writes for line in text.splitlines()]


@pytest.fixture
def written() -> Iterator[Writes]:
    saved = structlog.get_config()
    writes = Writes()
    structlog.configure(
        logger_factory=writes, wrapper_class=structlog.make_filtering_bound_logger(0)
    )
    try:
        yield writes
    finally:
        structlog.configure(**saved)


async def test_the_lines_of_one_turn_go_out_in_one_write(written: Writes) -> None:
    journal = Journal()
    journal.record(claim(), "sent", "webhook", 0.0123, None)
    journal.record(claim(2), "retry", "webhook", 0.5, "500 from https://ann:s3cret@hooks.example")
    assert written.writes == [], "written when the turn ends, not at once"
    await asyncio.sleep(0)
    assert len(written.writes) == 1
    sent, retry = written.lines()
    assert sent == {
        "event": "delivery", "notificationId": "n1", "tenant": "acme", "channel": "WEBHOOK",
        "provider": "webhook", "attempt": 1, "outcome": "sent", "durationMs": 12.3,
        "error": None, "level": "info", "timestamp": sent["timestamp"],
    }  # fmt: skip
    assert sent["timestamp"].endswith("Z")
    assert retry["level"] == "warning" and retry["attempt"] == 2
    assert retry["error"] == "500 from https://ann:****@hooks.example"


async def test_lines_below_the_level_are_not_made(written: Writes) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    journal = Journal()
    journal.record(claim(), "sent", "webhook", 0.01, None)
    journal.record(claim(), "dead", "webhook", 0.01, "410 gone")
    journal.flush()
    assert [line["outcome"] for line in written.lines()] == ["dead"]

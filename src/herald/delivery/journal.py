"""The delivery journal: one JSON log line per attempt's outcome, event ``delivery``.

::

    {"event": "delivery", "notificationId": "0190…", "tenant": "acme", "channel": "EMAIL",
     "provider": "smtp", "attempt": 1, "outcome": "sent", "durationMs": 41.2, "error": null,
     "level": "info", "timestamp": "2025-01-01T12:00:00.000000Z"}

``outcome`` is the processing histogram's word (``sent``, ``retry``, ``dead``,
``deferred``, ``suppressed``); a retry or a dead letter is logged at warning.
``error`` is masked as the provider errors kept on the row are.

It runs once per send, so it does without structlog's processors: each line
is one orjson call when the outcome is known, and the lines of one turn of
the event loop go out in one write, through the logger structlog writes with
(``logs.py``), in its shape. A line through structlog took about 18 us (its
processors, the standard library's json, a flush per line); this about 2.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import structlog

from ..models import Claim
from ..providers.ssrf import mask_credentials

_WARNED = frozenset({"retry", "dead"})
_TAILS = {level: f',"level":"{level}","timestamp":"'.encode() for level in ("info", "warning")}
_STAMP = structlog.processors.TimeStamper(fmt="iso", utc=True)


class Journal:
    def __init__(self) -> None:
        probe = structlog.get_logger("herald.worker").bind()
        self._levels = {
            name: probe.is_enabled_for(number)
            for name, number in (("info", logging.INFO), ("warning", logging.WARNING))
        }
        self._lines: list[tuple[str, bytes]] = []
        self._scheduled = False

    def record(
        self, claim: Claim, outcome: str, provider: str | None, seconds: float,
        error: str | None,
    ) -> None:  # fmt: skip
        level = "warning" if outcome in _WARNED else "info"
        if not self._levels[level]:
            return
        line = orjson.dumps({
            "event": "delivery", "notificationId": claim.id, "tenant": claim.tenant_id,
            "channel": claim.channel, "provider": provider, "attempt": claim.attempts,
            "outcome": outcome, "durationMs": int(seconds * 1_000_000) / 1000,
            "error": None if error is None else mask_credentials(error),
        })  # fmt: skip
        self._lines.append((level, line))
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write the lines recorded so far, in one write."""
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        stamp = _STAMP(None, "", {})["timestamp"].encode() + b'"}'
        text = b"\n".join(line[:-1] + _TAILS[level] + stamp for level, line in lines)
        out = structlog.get_config()["logger_factory"]()
        out.msg(text if isinstance(out, structlog.BytesLogger) else text.decode())

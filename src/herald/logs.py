"""Structured logging: one JSON object per line, each with a stable ``event`` name.

Everything a Herald process writes goes out in that one shape: Herald's own
structlog lines, and the standard library's records (uvicorn, asyncio,
warnings, any library) rendered by the same processors, with the
``logger`` they came from. A line logged while an HTTP request is handled
carries its ``request_id`` (``REQUEST_ID``, set by ``api/accesslog.py``).

httpx logs every request's full URL at ``info``, and a webhook's or a chat
service's URL is a credential (Slack's, Telegram's tokens are in the path):
its loggers, and httpcore's, pass warnings and errors only, whatever the level.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
import structlog
from structlog.types import EventDict, Processor, WrappedLogger

#: The request being handled, bound into every line logged meanwhile.
REQUEST_ID: ContextVar[str | None] = ContextVar("herald_request_id", default=None)
#: Libraries whose lines below a warning would carry URLs with credentials in them.
QUIET = ("httpx", "httpcore")

_second = (-1, "")  # the last whole second formatted, and its text


def timestamp(now: float) -> str:
    """``2026-01-31T12:00:00.123456Z``, the date and time formatted once a second.

    structlog's ``TimeStamper`` (through ``datetime``) took three times as long (1.8 us
    and 0.6, measured), which the access log would pay on every request.
    """
    global _second
    second = int(now)
    cached, text = _second
    if second != cached:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = (second, text)
    return f"{text}.{int((now - second) * 1_000_000):06d}Z"


def _stamped(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = timestamp(time.time())
    return event_dict


def _request_id(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    request_id = REQUEST_ID.get()
    if request_id is not None:
        event_dict.setdefault("request_id", request_id)
    return event_dict


def dumps(value: Any, **_: Any) -> str:
    """JSON for a line: orjson, or the standard library for what orjson refuses (an
    integer beyond 64 bits, a lone surrogate), so that logging never raises."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, default=str, separators=(",", ":"))


def level_number(level: str) -> int:
    return logging.getLevelNamesMapping().get(level.upper(), logging.INFO)


def configure(level: str = "info") -> None:
    numeric = level_number(level)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _request_id,
        structlog.processors.add_log_level,
        _stamped,
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer(serializer=dumps)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Lines)]:
        root.removeHandler(handler)  # configured before, in this process
    handler = _Lines(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    sys.excepthook = _uncaught


class _Lines(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler ``configure`` installs (and replaces when called again)."""


_crash = structlog.get_logger("herald")


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """An exception nothing caught ends the process as one JSON line, not a bare traceback."""
    _crash.critical("uncaught_exception", exc_info=(kind, exc, tb))

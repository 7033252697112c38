"""The access log's parts: which request ids are kept, route templates, times, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from herald import logs
from herald.api.accesslog import AccessLog, given
from herald.api.app import create_app
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"abc-123", "abc-123"),
        (b"0f1e2d3c-aaaa-4bbb-8ccc-123456789abc", "0f1e2d3c-aaaa-4bbb-8ccc-123456789abc"),
        (b"Root=1-5759e988;Parent=53995c3f;Sampled=1", "Root=1-5759e988;Parent=53995c3f;Sampled=1"),
        (b"a+b/c=d@e.f:g_h", "a+b/c=d@e.f:g_h"),
        (b"x" * 128, "x" * 128),
        (b"x" * 129, None),
        (b"", None),
        (b"two words", None),
        (b"a\tb", None),
        (b"a\r\nSet-Cookie: x=1", None),
        (b"caf\xc3\xa9", None),
        (b"<script>", None),
        (b"a,b", None),
    ],
)
def test_which_request_ids_are_kept(sent: bytes, kept: str | None) -> None:
    assert given([(b"host", b"h"), (b"x-request-id", sent)]) == kept


def test_the_last_request_id_sent_counts() -> None:
    assert given([(b"x-request-id", b"first"), (b"x-request-id", b"second")]) == "second"
    assert given([(b"x-request-id", b"first"), (b"x-request-id", b"bad one")]) is None
    assert given([(b"host", b"h")]) is None


def test_routes_the_router_never_saw_get_their_template(tmp_path: Path) -> None:
    """A request refused at the guard, or served by the ingest fast path, is logged with
    the template of the route that would have served it, as the router matches it."""
    settings = make_settings(tmp_path)
    layer = AccessLog(lambda *_: None, settings, create_app(settings).routes)

    def template(method: str, path: str) -> str:
        return layer.template({"type": "http", "method": method, "path": path})

    assert template("POST", "/api/notifications") == "/api/notifications"
    assert template("GET", "/api/notifications/abc") == "/api/notifications/{notification_id}"
    # Two routes match the path; the one taking the method is the router's choice.
    assert template("GET", "/api/notifications/bulk") == "/api/notifications/{notification_id}"
    assert template("POST", "/api/notifications/bulk") == "/api/notifications/bulk"
    assert template("GET", "/u/a-signed-token") == "/u/{token}"
    assert template("GET", "/dashboard/static/x.css") == "/dashboard/static/{path}"
    assert template("GET", "/api/nothing/here") == "unmatched"
    # Only templates without parameters are remembered, so paths with ids never pile up.
    assert set(layer._known.values()) == {"/api/notifications", "/api/notifications/bulk"}


@pytest.mark.parametrize("at", [0.0, 1_780_000_000.0, 1_780_000_000.5, 1_780_000_000.999999])
def test_timestamps_are_structlogs_iso_format_to_the_microsecond(at: float) -> None:
    expected = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert logs.timestamp(at) == expected


def test_a_value_orjson_refuses_still_makes_a_line() -> None:
    for value in ({"n": 2**70}, {"text": "lone \udc80 surrogate"}, {"path": Path("/x")}):
        assert json.loads(logs.dumps(value)).keys() == value.keys()

"""The two doors to ``POST /api/notifications`` answer every request alike.

The ingest fast path (``ingest.IngestFastPath``) and the framework's route
(``notifications.create_notification``) are two implementations of one
behaviour. Two Heralds share one database, one with the fast path and one
built with ``create_app(fast_path=False)``; every request below goes to both,
and the answers must have the same status, the same headers that clients read
and the same body (a 201's id and times aside). The cases reach every status
either door gives: 201, 400, 401, 403, 413, 415, 422, 429 and 503.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from herald.access import Scope
from herald.api.app import create_app
from tests.conftest import AUTH, make_settings
from tests.integration.conftest import serve_app

pytestmark = pytest.mark.every_store

PATH = "/api/notifications"
MAX_BYTES = 4096
#: The headers a client acts on; both doors must send each with the same value, or neither.
COMPARED = (
    "content-type",
    "retry-after",
    "www-authenticate",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "content-security-policy",
    "x-herald-instance",
    "idempotent-replayed",
    "x-request-id",
)
#: Fields of a stored notification that differ between two creations of it.
PER_ROW = frozenset({"_id", "id", "jobId", "scheduledAt", "createdAt", "updatedAt"})
EMAIL = {"type": "EMAIL", "recipient": "doors@example.com", "subject": "Hi", "message": "Hello"}
JSON = {"Content-Type": "application/json"}


@dataclass
class Door:
    name: str
    url: str
    engine: Any
    rated: str  # a key of its own allowed 1 request an hour


@dataclass
class Case:
    """One request: headers and body, or a factory for a streamed body."""

    name: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[], AsyncIterator[bytes]] | None = None


def streamed(size: int) -> Callable[[], AsyncIterator[bytes]]:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "EMAIL", "message": "'
        for _ in range(size // 1000):
            yield b"x" * 1000
        yield b'"}'

    return chunks


@asynccontextmanager
async def two_doors(
    herald: Any, tmp_path: Path
) -> AsyncIterator[tuple[Door, Door, dict[str, str]]]:
    """The fast door, the framework door and the secrets of keys both accept."""
    # Budgets are kept in the store, which the doors share: generous ones, so that each
    # door answers for itself (a 503 below is the door's, not the guard's).
    settings: dict[str, Any] = {"instance": "doors", "max_body_bytes": MAX_BYTES,
                                "anonymous_rate_limit": "10000/min",
                                "api_rate_limit": "1000000/h"}  # fmt: skip
    async with herald(deliver=False, **settings) as fast:
        access = fast.engine.store.access

        async def key(scope: Scope, rate: str | None = None) -> str:
            secret, _ = await access.create_key("default", {scope}, name="k", rate_limit=rate)
            return secret

        secrets = {"admin": AUTH["Authorization"].removeprefix("Bearer "),
                   "read": await key(Scope.READ), "send": await key(Scope.SEND)}  # fmt: skip
        # The second Herald, on the same database, leaves the fast path out.
        shared = make_settings(tmp_path, database_url=fast.engine.settings.database_url, **settings)
        app = create_app(shared, deliver=False, fast_path=False)
        async with serve_app(app, shared.port) as url:
            yield (
                Door("fast", fast.url, fast.engine, await key(Scope.SEND, "1/h")),
                Door("framework", url, app.state.engine, await key(Scope.SEND, "1/h")),
                secrets,
            )


async def call(door: Door, case: Case) -> httpx.Response:
    """``case`` sent to ``door``, with an ``X-Request-Id`` of the case's own: both doors must
    answer with it, and keep it on what they store (``requestId``)."""
    content = case.body() if callable(case.body) else case.body
    request_id = uuid.uuid5(uuid.NAMESPACE_URL, case.name).hex
    async with httpx.AsyncClient(base_url=door.url, timeout=10) as client:
        return await client.post(
            PATH, content=content, headers={"X-Request-Id": request_id, **case.headers}
        )


def normalised(reply: httpx.Response, own: str = "") -> Any:
    """The body, without what differs between two creations: ids, times and ``own`` words."""
    text = reply.text.replace(own, "…") if own else reply.text
    if reply.status_code == 429:
        # Seconds to the end of the same window: a second may tick between the two doors.
        text = re.sub(r"retry in \d+ s", "retry in … s", text)
    try:
        body = orjson.loads(text)
    except ValueError:
        return text
    data = body.get("data") if isinstance(body, dict) else None
    if reply.status_code == 201 and isinstance(data, dict):
        body["data"] = {k: ("…" if k in PER_ROW and v is not None else v) for k, v in data.items()}
    return body


def assert_alike(
    case: str, fast: httpx.Response, framework: httpx.Response, own: tuple[str, str] = ("", "")
) -> None:
    assert fast.status_code == framework.status_code, (case, fast.text, framework.text)
    for name in COMPARED:
        mine, theirs = fast.headers.get(name), framework.headers.get(name)
        if name == "retry-after" and fast.status_code == 429 and mine and theirs:
            # Seconds to the end of the same window: a second may tick between the two.
            assert abs(int(mine) - int(theirs)) <= 1, (case, mine, theirs)
            continue
        assert mine == theirs, (case, name, mine, theirs)
    assert normalised(fast, own[0]) == normalised(framework, own[1]), (
        case,
        fast.text,
        framework.text,
    )


def cases(secrets: dict[str, str]) -> list[Case]:
    admin = {"Authorization": f"Bearer {secrets['admin']}"}
    sender = {"Authorization": f"Bearer {secrets['send']}"}
    valid = orjson.dumps(EMAIL)
    ignoring = orjson.dumps({**EMAIL, "category": "news", "ignoreSuppression": True})
    not_ignoring = orjson.dumps({**EMAIL, "ignoreSuppression": False})
    not_a_bool = orjson.dumps({**EMAIL, "ignoreSuppression": "yes"})
    found = [
        Case("valid", {**admin, **JSON}, valid),
        Case("scheduled", {**admin, **JSON}, orjson.dumps({**EMAIL, "delaySeconds": 3600})),
        Case("missing field", {**admin, **JSON}, orjson.dumps({"type": "EMAIL", "message": "m"})),
        Case("bad email", {**admin, **JSON}, orjson.dumps({**EMAIL, "recipient": "nobody"})),
        Case("bad enum", {**admin, **JSON}, orjson.dumps({**EMAIL, "priority": "URGENT"})),
        Case("lowercase type", {**admin, **JSON}, orjson.dumps({**EMAIL, "type": "email"})),
        Case("not JSON", {**admin, **JSON}, b'{"type": '),
        Case("empty body", {**admin, **JSON}, b""),
        Case("JSON array", {**admin, **JSON}, b"[1, 2]"),
        Case("JSON string", {**admin, **JSON}, b'"EMAIL"'),
        Case("NUL character", {**admin, **JSON}, orjson.dumps({**EMAIL, "message": "a\x00b"})),
        Case("no credential", JSON, valid),
        Case("wrong key", {"Authorization": "Bearer hk_not-a-key", **JSON}, valid),
        Case("X-API-Key", {"X-API-Key": secrets["admin"], **JSON}, valid),
        Case("key without send", {"Authorization": f"Bearer {secrets['read']}", **JSON}, valid),
        Case("no credential, not JSON", {"Content-Type": "text/plain"}, valid),
        Case("oversized", {**admin, **JSON}, orjson.dumps({**EMAIL, "message": "x" * MAX_BYTES})),
        Case("streamed", {**admin, **JSON}, streamed(1000)),
        Case("oversized text", {**admin, "Content-Type": "text/plain"}, b"x" * (MAX_BYTES + 1)),
        Case("category", {**admin, **JSON}, orjson.dumps({**EMAIL, "category": "newsletter"})),
        Case("bad category", {**admin, **JSON}, orjson.dumps({**EMAIL, "category": "News!"})),
        Case("long category", {**admin, **JSON}, orjson.dumps({**EMAIL, "category": "x" * 65})),
        Case("ignoreSuppression", {**admin, **JSON}, ignoring),
        Case("ignoreSuppression, no manage", {**sender, **JSON}, ignoring),
        Case("ignoring false, no manage", {**sender, **JSON}, not_ignoring),
        Case("ignoreSuppression not a bool", {**admin, **JSON}, not_a_bool),
        # The default policy (seed 000's ladder) gives 5 retries.
        Case("maxRetries", {**admin, **JSON}, orjson.dumps({**EMAIL, "maxRetries": 2})),
        Case("maxRetries beyond", {**admin, **JSON}, orjson.dumps({**EMAIL, "maxRetries": 6})),
        Case("maxRetries < 0", {**admin, **JSON}, orjson.dumps({**EMAIL, "maxRetries": -1})),
        Case("maxRetries text", {**admin, **JSON}, orjson.dumps({**EMAIL, "maxRetries": "x"})),
    ]
    for kind in (
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.x+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
    ):
        headers = {**admin, **({"Content-Type": kind} if kind else {})}
        found.append(Case(f"content type {kind}", headers, valid))
    return found


async def test_every_request_gets_the_same_answer_from_both_doors(
    herald: Any, tmp_path: Path
) -> None:
    async with two_doors(herald, tmp_path) as (fast, framework, secrets):
        statuses = set()
        for case in cases(secrets):
            fast_reply, framework_reply = await call(fast, case), await call(framework, case)
            assert_alike(case.name, fast_reply, framework_reply)
            statuses.add(fast_reply.status_code)
        # The cases reach every answer the doors give, or the comparison proves little.
        assert statuses == {201, 400, 401, 403, 413, 415, 422}


async def test_ignore_suppression_needs_manage_at_both_doors(herald: Any, tmp_path: Path) -> None:
    async with two_doors(herald, tmp_path) as (fast, framework, secrets):
        body = orjson.dumps({**EMAIL, "category": "news", "ignoreSuppression": True})
        for door in (fast, framework):
            refused = await call(door, Case("no manage", {
                "Authorization": f"Bearer {secrets['send']}", **JSON}, body))  # fmt: skip
            assert refused.status_code == 403, (door.name, refused.text)
            assert "'manage'" in refused.json()["message"]
            taken = await call(door, Case("admin", {
                "Authorization": f"Bearer {secrets['admin']}", **JSON}, body))  # fmt: skip
            assert taken.status_code == 201, (door.name, taken.text)
            data = taken.json()["data"]
            assert (data["category"], data["ignoreSuppression"]) == ("news", True)
            stored = await door.engine.store.get("default", data["id"])
            assert (stored.category, stored.ignore_suppression) == ("news", True)


async def test_idempotency_keys_and_budgets_alike(herald: Any, tmp_path: Path) -> None:
    async with two_doors(herald, tmp_path) as (fast, framework, secrets):
        admin = {"Authorization": f"Bearer {secrets['admin']}", **JSON}
        key = {door.name: str(uuid.uuid4()) for door in (fast, framework)}
        own = (key["fast"], key["framework"])  # the keys differ: the doors share a store

        def keyed(door: Door, body: Any) -> Case:
            return Case(
                "idempotent", {**admin, "Idempotency-Key": key[door.name]}, orjson.dumps(body)
            )

        first = [await call(door, keyed(door, EMAIL)) for door in (fast, framework)]
        assert_alike("with Idempotency-Key", *first, own)
        assert first[0].status_code == 201
        again = [await call(door, keyed(door, EMAIL)) for door in (fast, framework)]
        assert_alike("repeated", *again, own)
        assert again[0].headers["idempotent-replayed"] == "true"
        assert again[0].json()["data"]["id"] == first[0].json()["data"]["id"]
        # The same document, its keys in another order and other whitespace: a repeat.
        respelled_body = orjson.dumps(dict(reversed(EMAIL.items())), option=orjson.OPT_INDENT_2)
        respelled = [
            await call(door, Case("reordered", {**admin, "Idempotency-Key": key[door.name]},
                                  respelled_body))
            for door in (fast, framework)
        ]  # fmt: skip
        assert_alike("same document, other bytes", *respelled, own)
        assert respelled[0].status_code == 201, respelled[0].text
        assert respelled[0].headers["idempotent-replayed"] == "true"
        changed = [await call(door, keyed(door, {**EMAIL, "message": "other"}))
                   for door in (fast, framework)]  # fmt: skip
        assert_alike("same key, other body", *changed, own)
        assert changed[0].status_code == 422
        odd = Case("odd key", {**admin, "Idempotency-Key": "k" * 300}, orjson.dumps(EMAIL))
        assert_alike("overlong key", await call(fast, odd), await call(framework, odd))

        def rated(door: Door) -> Case:
            return Case("rated", {"Authorization": f"Bearer {door.rated}", **JSON},
                        orjson.dumps(EMAIL))  # fmt: skip

        allowed = [await call(door, rated(door)) for door in (fast, framework)]
        assert_alike("within the budget", *allowed)
        assert allowed[0].status_code == 201
        refused = [await call(door, rated(door)) for door in (fast, framework)]
        assert_alike("over the budget", *refused)
        assert refused[0].status_code == 429 and refused[0].headers["retry-after"]


async def test_a_store_outage_is_the_same_503_at_both_doors(herald: Any, tmp_path: Path) -> None:
    async with two_doors(herald, tmp_path) as (fast, framework, secrets):
        case = Case("valid", {"Authorization": f"Bearer {secrets['admin']}", **JSON},
                    orjson.dumps(EMAIL))  # fmt: skip
        assert_alike("store up", await call(fast, case), await call(framework, case))
        for door in (fast, framework):
            await door.engine.store.close()  # the store is gone; the key is known already
        replies = await call(fast, case), await call(framework, case)
        assert_alike("store down", *replies)
        assert replies[0].status_code == 503 and replies[0].headers["retry-after"] == "1"


async def test_a_streamed_body_too_large_is_413_at_both_doors(herald: Any, tmp_path: Path) -> None:
    async with two_doors(herald, tmp_path) as (fast, framework, secrets):
        headers = {"Authorization": f"Bearer {secrets['admin']}", **JSON}
        case = Case("oversized, streamed", headers, streamed(2 * MAX_BYTES))
        replies = await call(fast, case), await call(framework, case)
        assert replies[0].status_code == 413
        assert_alike(case.name, *replies)

"""``X-Request-Id``: the caller's (when it is a safe one) or a new one, returned on every
answer and kept on every notification the request created, by every door and store."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest

from herald.events import NewEvent
from herald.models import Channel, NewNotification, new_id
from herald.store.base import Store
from tests.integration.test_events import LOGIN, SMS_TEMPLATE, TWO_TARGETS
from tests.integration.test_seed_routes import LOGIN as SEED_LOGIN
from tests.integration.test_seed_routes import SIGNUP

pytestmark = pytest.mark.every_store

GENERATED = re.compile(r"^[0-9a-f]{32}$")
EMAIL = {"type": "EMAIL", "recipient": "ids@example.com", "subject": "Hi", "message": "Hello"}
MODELLED = {**EMAIL, "maxRetries": 1}  # read by the model, not by intake


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def kept(h: Any) -> Counter[str | None]:
    """How many notifications each request id is kept on (one tenant's, at most 100)."""
    listed = await h.client.get("/api/notifications", params={"limit": 100})
    return Counter(n["requestId"] for n in listed.json()["data"]["notifications"])


async def test_every_door_that_creates_keeps_the_callers_request_id(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await h.client.post("/api/templates", json=SMS_TEMPLATE)
        await h.client.post("/api/event-types", json=TWO_TARGETS)
        sign_in = {"type": "sign-in", "recipient": "ids@example.com",
                   "data": {**LOGIN["data"], "user": {"phone": "+14155550123"}}}  # fmt: skip
        notify = {"type": "sms", "to": "+14155550123", "message": "Hello"}
        # The request id each request sends: (path, body, other headers, notifications made).
        sent: dict[str, tuple[str, dict[str, Any], dict[str, str], int]] = {
            "fast-path": ("/api/notifications", EMAIL, {}, 1),
            "framework-route": ("/api/notifications", MODELLED, {}, 1),
            "idempotent": ("/api/notifications", EMAIL, {"Idempotency-Key": "once"}, 1),
            "bulk:plain": ("/api/notifications/bulk", {"notifications": [EMAIL] * 3}, {}, 3),
            "bulk:modelled": ("/api/notifications/bulk", {"notifications": [EMAIL, MODELLED]}, {},
                              2),
            "event/fan-out": ("/api/events", sign_in, {}, 2),
            "seed=notify": ("/api/notify", notify, {}, 1),
            "seed@signup": ("/api/signups", SIGNUP, {}, 1),
            "seed+login": ("/api/logins", SEED_LOGIN, {}, 1),
        }  # fmt: skip
        for request_id, (path, body, headers, _) in sent.items():
            reply = await h.client.post(
                path, json=body, headers={"X-Request-Id": request_id, **headers}
            )
            assert reply.status_code in (201, 202), (request_id, reply.text)
            assert reply.headers["x-request-id"] == request_id
        assert await kept(h) == {request_id: made for request_id, (*_, made) in sent.items()}

        # The answer to a create shows it too, as does the notification's own page.
        reply = await h.client.post(
            "/api/notifications", json=EMAIL, headers={"X-Request-Id": "r1"}
        )
        assert reply.json()["data"]["requestId"] == "r1"
        shown = await h.client.get(f"/api/notifications/{reply.json()['data']['id']}")
        assert shown.json()["data"]["notification"]["requestId"] == "r1"
        page = await h.client.get(f"/dashboard/notifications/{reply.json()['data']['id']}")
        assert "<code>r1</code>" in page.text


async def test_a_request_without_a_usable_id_gets_a_new_one(herald: Any) -> None:
    async with herald(deliver=False) as h:
        longest = "a" * 128
        kept_as_sent = await h.client.post(
            "/api/notifications", json=EMAIL, headers={"X-Request-Id": longest}
        )
        assert kept_as_sent.headers["x-request-id"] == longest
        made: list[str] = []
        refused: list[bytes | None] = [None, b"", b"a" * 129, b"two words", b"tab\there",
                                       b"caf\xc3\xa9", b"<script>", b'"quoted"']  # fmt: skip
        for sent in refused:
            headers = {} if sent is None else {"X-Request-Id": sent}
            reply = await h.client.post("/api/notifications", json=EMAIL, headers=headers)
            assert reply.status_code == 201, (sent, reply.text)
            assert GENERATED.match(reply.headers["x-request-id"]), sent
            assert reply.json()["data"]["requestId"] == reply.headers["x-request-id"]
            made.append(reply.headers["x-request-id"])
        assert len(set(made)) == len(refused)  # each a new one
        assert await kept(h) == Counter({longest: 1, **dict.fromkeys(made, 1)})

        # Answers that create nothing carry one as well: a refusal, a 404, the health check.
        for reply in (
            await h.client.get("/api/health"),
            await h.client.get("/api/no-such-route"),
            await h.client.get("/api/notifications", headers={"Authorization": "Bearer nope"}),
        ):
            assert GENERATED.match(reply.headers["x-request-id"]), reply.status_code

        # Bytes HTTP client libraries do not send, written by hand: a control character
        # (the server refuses the request before Herald sees it) and bytes that are no text.
        status, _ = await raw_get(h.url, b"X-Request-Id: a\x01b")
        assert status == 400
        status, head = await raw_get(h.url, b"X-Request-Id: \xff\xfe")
        assert status == 200 and GENERATED.match(head[b"x-request-id"].decode())


async def raw_get(url: str, header: bytes) -> tuple[int, dict[bytes, bytes]]:
    """``GET /api/health`` with ``header`` written as is; the status and headers answered."""
    where = urlsplit(url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n"
                     b"Connection: close\r\n\r\n")  # fmt: skip
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    lines = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
    headers = dict(line.lower().split(b": ", 1) for line in lines[1:] if b": " in line)
    return int(lines[0].split()[1]), headers


def note(request_id: str | None, n: int = 0, key: str | None = None) -> NewNotification:
    return NewNotification(Channel.EMAIL, f"user{n}@example.com", "body", subject="s",
                           idempotency_key=key, request_id=request_id)  # fmt: skip


async def test_every_store_keeps_the_request_id_of_what_it_creates(store: Store) -> None:
    [single] = await store.create([note("one")])
    many = await store.create_many([note("bulk", n) for n in range(3)])
    keyed = await store.create_many([note("keyed", 0, key="k0"), note("keyed", 1, key="k1")])
    event = NewEvent(new_id(), "default", "login", "user0@example.com", {}, {}, None, time.time())
    _, fanned = await store.create_event(event, [note("event", n) for n in range(2)])
    [untold] = await store.create([note(None)])
    assert single.request_id == "one"
    expected = {single.id: "one", untold.id: None}
    expected.update({note_id: "bulk" for note_id, _ in many})
    expected.update({note_id: "keyed" for note_id, _ in keyed})
    expected.update({n.id: "event" for n in fanned})
    for note_id, request_id in expected.items():
        stored = await store.get("default", note_id)
        assert stored is not None and stored.request_id == request_id, note_id

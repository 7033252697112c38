"""Events and event types: fan-out, one transaction, links, definitions from three places."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from herald.api.eventschemas import EventAccepted, EventDetail, EventList, EventTypeOut
from herald.api.schemas import Envelope
from herald.events import EventFilter, NewEvent
from herald.models import Channel, NewNotification, Status
from herald.store.base import ListFilter, Store

LOGIN = {
    "type": "login",
    "recipient": "test@example.com",
    "data": {"username": "testuser", "ipAddress": "192.168.1.1", "userAgent": "Mozilla/5.0"},
}
SMS_TEMPLATE = {"name": "alert-sms", "channel": "SMS", "text": "Sign-in from {{ ipAddress }}"}
TWO_TARGETS = {
    "name": "sign-in",
    "description": "Email and SMS on each sign-in",
    "targets": [
        {"channel": "EMAIL", "template": "login-alert", "priority": "HIGH"},
        {"channel": "SMS", "template": "alert-sms", "recipientField": "user.phone"},
    ],
}


def rows(h: Any, sql: str) -> list[Any]:
    with sqlite3.connect(h.engine.settings.sqlite_path) as conn:
        return conn.execute(sql).fetchall()


async def test_an_event_fans_out_and_links_its_notifications(herald: Any) -> None:
    async with herald() as h:
        reply = await h.client.post("/api/events", json=LOGIN)
        assert reply.status_code == 201, reply.text
        accepted = Envelope[EventAccepted].model_validate(reply.json()).data
        assert accepted.event.type == "login" and accepted.event.verified is None
        assert accepted.event.notificationIds == accepted.notificationIds
        [nid] = accepted.notificationIds

        detail = await h.client.get(f"/api/events/{accepted.event.id}")
        shown = Envelope[EventDetail].model_validate(detail.json()).data
        assert [n.id_ for n in shown.notifications] == [nid]
        assert shown.notifications[0].template == {
            "name": "login-alert", "version": 0, "locale": "en"
        }  # fmt: skip

        sent = await h.wait_status(nid, "SENT")
        note = sent["notification"]
        assert note["metadata"]["event"] == {"id": accepted.event.id, "type": "login"}
        assert "192.168.1.1" in note["message"] and note["priority"] == "HIGH"
        assert (await h.client.get("/api/events/nope")).status_code == 404


async def test_a_201_means_event_notifications_and_links_are_committed(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await h.client.post("/api/templates", json=SMS_TEMPLATE)
        await h.client.post("/api/event-types", json=TWO_TARGETS)
        data = {**LOGIN["data"], "user": {"phone": "+14155550123"}}  # type: ignore[dict-item]
        body = {"type": "sign-in", "recipient": "test@example.com", "data": data}
        reply = await h.client.post("/api/events", json=body)
        assert reply.status_code == 201, reply.text
        ids = reply.json()["data"]["notificationIds"]
        event_id = reply.json()["data"]["event"]["id"]
        # Another connection sees all of it: it was committed before the answer.
        links = rows(h, "SELECT event_id, position, notification_id FROM event_notifications")
        assert links == [(event_id, 0, ids[0]), (event_id, 1, ids[1])]
        stored = rows(h, "SELECT channel, recipient FROM notifications ORDER BY id")
        assert stored == [("EMAIL", "test@example.com"), ("SMS", "+14155550123")]


async def test_a_missing_variable_in_any_target_stores_nothing(herald: Any) -> None:
    async with herald(deliver=False) as h:
        sms = {**SMS_TEMPLATE, "text": "{{ ipAddress }} {{ city }}"}
        await h.client.post("/api/templates", json=sms)
        await h.client.post("/api/event-types", json=TWO_TARGETS)
        data = {**LOGIN["data"], "user": {"phone": "+14155550123"}}  # type: ignore[dict-item]
        reply = await h.client.post(
            "/api/events", json={"type": "sign-in", "recipient": "a@example.com", "data": data}
        )
        assert reply.status_code == 422
        assert reply.json()["errors"] == [
            {"field": "data.city", "message": "is required by template 'alert-sms'"}
        ]
        assert rows(h, "SELECT count(*) FROM notifications") == [(0,)]
        assert rows(h, "SELECT count(*) FROM events") == [(0,)]


async def test_refusals_name_the_field(herald: Any) -> None:
    async with herald(deliver=False) as h:
        unknown = await h.client.post("/api/events", json={**LOGIN, "type": "nope"})
        assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "type"
        bad_to = await h.client.post("/api/events", json={**LOGIN, "recipient": "not-mail"})
        assert bad_to.status_code == 422 and bad_to.json()["errors"][0]["field"] == "recipient"
        nobody = await h.client.post("/api/events", json={**LOGIN, "recipient": None})
        assert nobody.status_code == 422
        assert nobody.json()["errors"][0]["field"] == "recipient"
        from_data = {**LOGIN, "recipient": None, "data": {**LOGIN["data"], "email": "d@x.io"}}  # type: ignore[dict-item]
        assert (await h.client.post("/api/events", json=from_data)).status_code == 201
        huge = await h.client.post("/api/events", json={**LOGIN, "data": {"n": 2**70}})
        assert huge.status_code == 422


async def test_list_events_by_type_with_pagination(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for _ in range(3):
            await h.client.post("/api/events", json=LOGIN)
        reset = {"username": "u", "email": "u@example.com", "userId": 1, "resetToken": "t0k3n!"}
        await h.client.post("/api/reset-passwords", json=reset)
        page = await h.client.get("/api/events", params={"type": "login", "limit": 2})
        listed = Envelope[EventList].model_validate(page.json()).data
        assert len(listed.events) == 2 and listed.pagination.totalItems == 3
        assert listed.pagination.totalPages == 2
        everything = (await h.client.get("/api/events")).json()["data"]
        assert everything["pagination"]["totalItems"] == 4
        assert everything["events"][0]["type"] == "reset-password"  # newest first
        assert everything["events"][0]["data"]["resetToken"] == "[redacted]"


async def test_event_types_crud_and_layers(herald: Any, tmp_path: Path) -> None:
    path = tmp_path / "types.json"
    from_file = {"name": "digest", "targets": [{"template": "login-alert", "priority": "LOW"}]}
    path.write_text(json.dumps({"eventTypes": [from_file]}))
    async with herald(deliver=False, event_types_file=str(path)) as h:
        listing = (await h.client.get("/api/event-types")).json()["data"]["eventTypes"]
        sources = {t["name"]: t["source"] for t in listing}
        assert sources == {"signup": "builtin", "login": "builtin", "reset-password": "builtin",
                           "purchase": "builtin", "friend-request": "builtin",
                           "digest": "file"}  # fmt: skip
        for t in listing:
            EventTypeOut.model_validate(t)
        fired = await h.client.post("/api/events", json={**LOGIN, "type": "digest"})
        assert fired.status_code == 201

        created = await h.client.post("/api/event-types", json=TWO_TARGETS)
        assert created.status_code == 201 and created.json()["data"]["source"] == "api"
        assert (await h.client.post("/api/event-types", json=TWO_TARGETS)).status_code == 409
        taken = {**TWO_TARGETS, "name": "login"}
        assert (await h.client.post("/api/event-types", json=taken)).status_code == 409
        got = await h.client.get("/api/event-types/sign-in")
        assert got.json()["data"]["targets"][1]["recipientField"] == "user.phone"

        replace = {"targets": [{"template": "login-alert", "priority": "CRITICAL"}]}
        put = await h.client.put("/api/event-types/login", json=replace)
        assert put.status_code == 200 and put.json()["data"]["source"] == "api"
        login = (await h.client.post("/api/events", json=LOGIN)).json()["data"]
        nid = login["notificationIds"][0]
        note = (await h.client.get(f"/api/notifications/{nid}")).json()["data"]["notification"]
        assert note["priority"] == "CRITICAL"

        uncovered = await h.client.delete("/api/event-types/login")
        assert uncovered.json()["data"]["now"]["source"] == "builtin"
        assert (await h.client.delete("/api/event-types/login")).status_code == 409
        assert (await h.client.delete("/api/event-types/digest")).status_code == 409
        assert (await h.client.delete("/api/event-types/sign-in")).json()["data"]["now"] is None
        assert (await h.client.delete("/api/event-types/sign-in")).status_code == 404
        assert (await h.client.get("/api/event-types/sign-in")).status_code == 404
        assert (await h.client.put("/api/event-types/nope", json=replace)).status_code == 404
        bad = {**TWO_TARGETS, "name": "x", "targets": [{"template": "t", "channel": "FAX"}]}
        assert (await h.client.post("/api/event-types", json=bad)).status_code == 422


async def test_create_event_is_one_transaction(store: Store) -> None:
    """If the event's row cannot be written, its notifications are not kept either."""
    item = NewNotification(Channel.EMAIL, "a@example.com", "body", subject="s")
    event = NewEvent("e1", "default", "login", "a@example.com", {"k": 1}, {}, None, 1.0)
    record, [note] = await store.create_event(event, [item])
    assert record.notification_ids == (note.id,)
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own integrity error
        await store.create_event(event, [item, item])  # the same event id again
    assert (await store.find(event.tenant_id, ListFilter(), 1, 10)).total == 1
    found = await store.find_events("default", EventFilter(type="login"), 1, 10)
    assert [e.id for e in found.items] == ["e1"] and found.items[0].data == {"k": 1}
    assert await store.get_event("other-tenant", "e1") is None
    by_status = await store.find_events("default", EventFilter(primary_status=Status.QUEUED), 1, 10)
    assert by_status.total == 1

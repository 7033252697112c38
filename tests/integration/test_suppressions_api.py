"""The suppression list and categories over HTTP, on every store: read, add, remove, refuse."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from herald.access import Scope
from herald.api.suppressions import Reason
from herald.store.receipts import REASONS

pytestmark = pytest.mark.every_store

ANN = "ann@example.com"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def key_for(h: Any, tenant: str, *scopes: Scope) -> dict[str, str]:
    secret, _ = await h.engine.store.access.create_key(tenant, set(scopes), name=f"{tenant}-ops")
    return bearer(secret)


async def listed(h: Any, headers: dict[str, str] | None = None, **query: Any) -> dict[str, Any]:
    reply = await h.client.get("/api/suppressions", params=query, headers=headers or {})
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


async def test_an_entry_is_added_listed_and_removed(herald: Any) -> None:
    async with herald(deliver=False) as h:
        body = {"recipient": "  Ann@Example.COM ", "detail": "asked by phone"}
        added = await h.client.post("/api/suppressions", json=body)
        assert added.status_code == 201, added.text
        assert added.json()["data"] == {"added": 1, "received": 1}

        again = await h.client.post(
            "/api/suppressions", json={"recipient": ANN, "reason": "bounce"}
        )
        assert again.status_code == 201 and again.json()["data"]["added"] == 0
        assert "1 already listed" in again.json()["message"]

        [entry] = (await listed(h))["suppressions"]
        assert entry["recipient"] == ANN and entry["category"] is None
        assert entry["reason"] == "manual" and entry["detail"] == "asked by phone"
        assert entry["notificationId"] is None and entry["createdAt"].endswith("Z")

        news = {"recipient": ANN, "category": "newsletter", "reason": "unsubscribe"}
        assert (await h.client.post("/api/suppressions", json=news)).status_code == 201
        assert (await listed(h, recipient=ANN))["pagination"]["totalItems"] == 2

        gone = await h.client.delete(f"/api/suppressions/{ANN}", params={"category": "newsletter"})
        assert gone.status_code == 200 and gone.json()["data"] == {"removed": 1}
        [left] = (await listed(h))["suppressions"]
        assert left["category"] is None

        gone = await h.client.delete("/api/suppressions/ANN@example.com")
        assert gone.status_code == 200 and gone.json()["data"] == {"removed": 1}
        again_gone = await h.client.delete(f"/api/suppressions/{ANN}")
        assert again_gone.status_code == 404 and ANN in again_gone.json()["message"]
        assert (await listed(h))["suppressions"] == []


async def test_an_entry_added_here_stops_delivery(herald: Any) -> None:
    async with herald() as h:
        assert (
            await h.client.post("/api/suppressions", json={"recipient": ANN})
        ).status_code == 201
        sent = await h.client.post("/api/notifications", json={
            "type": "EMAIL", "recipient": ANN, "subject": "Hi", "message": "m"})  # fmt: skip
        assert sent.status_code == 201, sent.text
        await h.wait_status(sent.json()["data"]["id"], "SUPPRESSED")
        assert await h.engine.store.mailbox("default", 10) == []


async def test_items_add_many_and_pages_hold_them(herald: Any) -> None:
    async with herald(deliver=False) as h:
        items = [{"recipient": f"user{n:02d}@example.com",
                  "reason": "bounce" if n % 5 == 0 else "manual"} for n in range(25)]  # fmt: skip
        added = await h.client.post("/api/suppressions", json={"items": items})
        assert added.status_code == 201 and added.json()["data"] == {"added": 25, "received": 25}

        last = await listed(h, page=3, limit=10)
        assert len(last["suppressions"]) == 5
        assert last["pagination"] == {"currentPage": 3, "totalPages": 3, "totalItems": 25,
                                      "itemsPerPage": 10}  # fmt: skip
        pages = [await listed(h, page=n, limit=10) for n in (1, 2, 3)]
        seen = [s["recipient"] for p in pages for s in p["suppressions"]]
        assert sorted(seen) == sorted(i["recipient"] for i in items), "every entry, once"

        bounced = await listed(h, reason="bounce")
        assert {s["recipient"] for s in bounced["suppressions"]} == {
            f"user{n:02d}@example.com" for n in (0, 5, 10, 15, 20)
        }
        one = await listed(h, recipient=" USER07@example.com")
        assert [s["recipient"] for s in one["suppressions"]] == ["user07@example.com"]


LONG = "x" * 600
REFUSED_BODIES = [
    ({}, "recipient"),
    ({"recipient": ""}, "recipient"),
    ({"recipient": "   "}, "recipient"),
    ({"recipient": f"{LONG}@example.com"}, "recipient"),
    ({"recipient": "a\x07b@example.com"}, "recipient"),
    ({"recipient": ANN, "category": "News Letter"}, "category"),
    ({"recipient": ANN, "category": "n" * 65}, "category"),
    ({"recipient": ANN, "reason": "spam"}, "reason"),
    ({"recipient": ANN, "detail": "d" * 501}, "detail"),
    ({"recipient": ANN, "notificationId": "x"}, "notificationId"),
    ({"items": []}, "items"),
    ({"items": [{"recipient": ANN}] * 1001}, "items"),
    ({"items": [{"recipient": ANN}, {"recipient": ""}]}, "items.1.recipient"),
    ({"items": [{"recipient": ANN, "category": "Bad!"}]}, "items.0.category"),
    ({"items": [{"recipient": ANN}], "recipient": ANN}, "recipient"),
]


@pytest.mark.parametrize(("body", "field"), REFUSED_BODIES)
async def test_a_bad_entry_is_refused_naming_its_field(
    herald: Any, body: dict[str, Any], field: str
) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.post("/api/suppressions", json=body)
        assert reply.status_code == 422, reply.text
        assert field in [e["field"] for e in reply.json()["errors"]], reply.json()
        assert (await listed(h))["pagination"]["totalItems"] == 0, "nothing of it stored"


async def test_bad_queries_and_names_are_refused_naming_them(herald: Any) -> None:
    async with herald(deliver=False) as h:
        cases = [
            ("GET", "/api/suppressions?reason=spam", None, "query.reason"),
            ("GET", "/api/suppressions?limit=101", None, "query.limit"),
            ("GET", f"/api/suppressions?recipient={LONG}", None, "query.recipient"),
            ("DELETE", f"/api/suppressions/{ANN}?category=Bad!", None, "query.category"),
            ("DELETE", f"/api/suppressions/{LONG}", None, "path.recipient"),
            ("PUT", "/api/categories/Not%20a%20slug", {"unsubscribable": True}, "path.name"),
            ("PUT", "/api/categories/news", {}, "unsubscribable"),
            ("PUT", "/api/categories/news", {"unsubscribable": "maybe"}, "unsubscribable"),
            ("PUT", "/api/categories/news", {"unsubscribable": True, "description": "d" * 501},
             "description"),
        ]  # fmt: skip
        for method, url, body, field in cases:
            reply = await h.client.request(method, url, json=body)
            assert reply.status_code == 422, (url, reply.text)
            assert field in [e["field"] for e in reply.json()["errors"]], (url, reply.json())
        assert (await h.client.get("/api/categories")).json()["data"]["categories"] == []


async def test_another_tenant_neither_sees_nor_removes_the_entries(herald: Any) -> None:
    async with herald(deliver=False) as h:
        alpha = await key_for(h, "alpha", Scope.READ, Scope.MANAGE)
        beta = await key_for(h, "beta", Scope.READ, Scope.MANAGE)
        body = {"recipient": ANN, "detail": "alpha's own"}
        assert (
            await h.client.post("/api/suppressions", json=body, headers=alpha)
        ).status_code == 201

        assert (await listed(h, beta))["suppressions"] == []
        assert (await listed(h, beta, recipient=ANN))["pagination"]["totalItems"] == 0
        refused = await h.client.delete(f"/api/suppressions/{ANN}", headers=beta)
        assert refused.status_code == 404
        assert [s["detail"] for s in (await listed(h, alpha))["suppressions"]] == ["alpha's own"]

        own = await h.client.post("/api/suppressions", json={"recipient": ANN}, headers=beta)
        assert own.json()["data"]["added"] == 1, "beta's list is its own"
        assert (await h.client.delete(f"/api/suppressions/{ANN}", headers=beta)).status_code == 200
        assert (await listed(h, alpha))["pagination"]["totalItems"] == 1

        news = {"unsubscribable": True, "description": "alpha's news"}
        put = await h.client.put("/api/categories/news", json=news, headers=alpha)
        assert put.status_code == 200, put.text
        assert (await h.client.get("/api/categories", headers=beta)).json()["data"] == {
            "categories": []
        }
        assert (await h.client.delete("/api/categories/news", headers=beta)).status_code == 404
        kept = (await h.client.get("/api/categories", headers=alpha)).json()["data"]["categories"]
        assert [c["description"] for c in kept] == ["alpha's news"]


async def test_reading_needs_read_and_changing_needs_manage(herald: Any) -> None:
    async with herald(deliver=False) as h:
        reader = await key_for(h, "default", Scope.READ)
        sender = await key_for(h, "default", Scope.SEND)
        assert (await h.client.get("/api/suppressions", headers=reader)).status_code == 200
        assert (await h.client.get("/api/categories", headers=reader)).status_code == 200
        for method, url, body in [
            ("POST", "/api/suppressions", {"recipient": ANN}),
            ("DELETE", f"/api/suppressions/{ANN}", None),
            ("PUT", "/api/categories/news", {"unsubscribable": True}),
            ("DELETE", "/api/categories/news", None),
        ]:
            reply = await h.client.request(method, url, json=body, headers=reader)
            assert reply.status_code == 403, (method, url, reply.text)
            assert "'manage'" in reply.json()["message"]
        for url in ("/api/suppressions", "/api/categories"):
            reply = await h.client.get(url, headers=sender)
            assert reply.status_code == 403 and "'read'" in reply.json()["message"]
        assert (await listed(h))["suppressions"] == []
        assert (await h.client.get("/api/categories")).json()["data"]["categories"] == []


async def test_categories_are_created_changed_listed_and_deleted(herald: Any) -> None:
    async with herald(deliver=False) as h:
        made = await h.client.put("/api/categories/newsletter", json={
            "unsubscribable": True, "description": "Monthly news"})  # fmt: skip
        assert made.status_code == 200, made.text
        first = made.json()["data"]
        assert first["name"] == "newsletter" and first["unsubscribable"] is True
        assert first["description"] == "Monthly news" and first["createdAt"] == first["updatedAt"]
        assert (await h.client.put("/api/categories/billing",
                                   json={"unsubscribable": False})).status_code == 200  # fmt: skip

        changed = await h.client.put("/api/categories/newsletter", json={"unsubscribable": False})
        second = changed.json()["data"]
        assert second["unsubscribable"] is False and second["description"] is None
        assert second["createdAt"] == first["createdAt"]

        shown = (await h.client.get("/api/categories")).json()["data"]["categories"]
        assert [(c["name"], c["unsubscribable"]) for c in shown] == [
            ("billing", False),
            ("newsletter", False),
        ]
        assert (await h.client.delete("/api/categories/newsletter")).status_code == 200
        assert (await h.client.delete("/api/categories/newsletter")).status_code == 404
        shown = (await h.client.get("/api/categories")).json()["data"]["categories"]
        assert [c["name"] for c in shown] == ["billing"]


def test_the_api_takes_the_reasons_the_store_knows() -> None:
    assert get_args(Reason) == REASONS


async def test_a_phone_number_is_listed_as_notifications_spell_it(herald: Any) -> None:
    """An SMS notification's recipient is stored in E.164; an entry typed with spaces must
    match it, or the number would be listed and still texted."""
    async with herald(deliver=False) as h:
        added = await h.client.post("/api/suppressions", json={"recipient": "+1 415 555 0123"})
        assert added.status_code == 201, added.text
        [entry] = (await listed(h))["suppressions"]
        assert entry["recipient"] == "+14155550123"
        spaced = await listed(h, recipient="+1 415 555 0123")
        assert spaced["pagination"]["totalItems"] == 1, "a lookup spells it as the list does"
        gone = await h.client.delete("/api/suppressions/+1 415-555-0123")
        assert gone.status_code == 200, gone.text

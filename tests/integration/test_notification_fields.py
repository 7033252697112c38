"""``category`` and ``ignoreSuppression`` through bulk and the presenters; the later statuses."""

from __future__ import annotations

from typing import Any

import pytest

from herald.access import Scope

pytestmark = pytest.mark.every_store

SMS = {"type": "SMS", "recipient": "+14155550123", "message": "Hello"}
BULK = "/api/notifications/bulk"


async def test_bulk_items_carry_both_fields_and_ignoring_needs_manage(herald: Any) -> None:
    async with herald(deliver=False) as h:
        key, _ = await h.engine.store.access.create_key("default", {Scope.SEND}, name="app")
        sender = {"Authorization": f"Bearer {key}"}
        items = [{**SMS, "category": "alerts", "ignoreSuppression": True}, {**SMS}]
        taken = await h.client.post(BULK, json={"notifications": items})
        assert taken.status_code == 201, taken.text
        ids = [r["id"] for r in taken.json()["data"]["results"]]
        stored = [await h.engine.store.get("default", i) for i in ids]
        assert [(n.category, n.ignore_suppression) for n in stored] == [
            ("alerts", True), (None, False),
        ]  # fmt: skip
        shown = (await h.client.get(f"/api/notifications/{ids[0]}")).json()["data"]
        assert shown["notification"]["category"] == "alerts"
        assert shown["notification"]["ignoreSuppression"] is True

        # The quick reading (every item plain) and the model's (one item invalid) alike.
        for extra in ([], [{**SMS, "recipient": "not a phone"}]):
            body = {"notifications": [*items, *extra]}
            refused = await h.client.post(BULK, json=body, headers=sender)
            assert refused.status_code == 403, refused.text
            assert "'manage'" in refused.json()["message"]
        plain = {"notifications": [{**SMS, "category": "alerts"}]}
        assert (await h.client.post(BULK, json=plain, headers=sender)).status_code == 201
        bad = {"notifications": [{**SMS, "category": "Not A Slug"}]}
        refused = await h.client.post(BULK, json=bad)
        assert refused.status_code == 422
        assert refused.json()["data"]["results"][0]["errors"][0]["field"] == "category"
        assert (await h.engine.store.stats("default")).total == 3


@pytest.mark.parametrize(
    "status", ["DELIVERED", "BOUNCED", "UNDELIVERED", "COMPLAINED", "SUPPRESSED", "SENT"]
)
async def test_the_later_statuses_filter_the_list(herald: Any, status: str) -> None:
    async with herald(deliver=False) as h:
        assert (await h.client.post("/api/notifications", json=SMS)).status_code == 201
        reply = await h.client.get("/api/notifications", params={"status": status})
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"]["notifications"] == []
        document = (await h.client.get("/openapi.json")).json()
        schemas = document["components"]["schemas"]
        assert status in schemas["NotificationOut"]["properties"]["status"]["enum"]
        fields = schemas["NotificationIn"]["properties"]
        assert fields["category"]["pattern"] == "^[a-z0-9][a-z0-9_.-]{0,63}$"
        assert fields["ignoreSuppression"]["type"] == "boolean"

"""``/api/templates`` against a running Herald: versions, built-ins, preview, what events use."""

from __future__ import annotations

from typing import Any

import pytest

from herald.api.eventschemas import RenderOut, TemplateDeleted, TemplateDetail, TemplateOut
from herald.api.schemas import Envelope

pytestmark = pytest.mark.every_store

SHIPPED = {
    "name": "order-shipped",
    "channel": "EMAIL",
    "locale": "en",
    "subject": "Order {{ orderId }} is on its way",
    "text": "Hi {{ firstName }}, order {{ orderId }} ships today.",
    "html": "<p>Hi {{ firstName }}, order <b>{{ orderId }}</b> ships today.</p>",
}


async def test_create_version_read_and_delete(herald: Any) -> None:
    async with herald(deliver=False) as h:
        created = await h.client.post("/api/templates", json=SHIPPED)
        assert created.status_code == 201
        one = Envelope[TemplateOut].model_validate(created.json()).data
        assert (one.version, one.builtin, one.text) == (1, False, SHIPPED["text"])

        again = await h.client.post("/api/templates", json=SHIPPED)
        assert again.status_code == 409 and "PUT /api/templates/order-shipped" in again.text

        edit = {k: v for k, v in SHIPPED.items() if k != "name"} | {"text": "v2 {{ orderId }}"}
        put = await h.client.put("/api/templates/order-shipped", json=edit)
        assert put.status_code == 200 and put.json()["data"]["version"] == 2

        latest = await h.client.get("/api/templates/order-shipped")
        detail = Envelope[TemplateDetail].model_validate(latest.json()).data
        assert [(t.version, t.text) for t in detail.templates] == [(2, "v2 {{ orderId }}")]
        old = await h.client.get("/api/templates/order-shipped", params={"version": 1})
        assert old.json()["data"]["templates"][0]["text"] == SHIPPED["text"]
        assert (await h.client.get("/api/templates/order-shipped?version=9")).status_code == 404

        listing = (await h.client.get("/api/templates")).json()["data"]["templates"]
        names = {(t["name"], t["builtin"]) for t in listing}
        assert ("order-shipped", False) in names and ("welcome-email", True) in names

        gone = await h.client.delete("/api/templates/order-shipped")
        assert Envelope[TemplateDeleted].model_validate(gone.json()).data.deleted == 2
        assert (await h.client.get("/api/templates/order-shipped")).status_code == 404
        assert (await h.client.delete("/api/templates/order-shipped")).status_code == 404
        assert (await h.client.put("/api/templates/nothing", json=edit)).status_code == 404


async def test_bad_templates_are_refused_naming_the_part(herald: Any) -> None:
    async with herald(deliver=False) as h:
        broken = await h.client.post("/api/templates", json={**SHIPPED, "text": "{{ x "})
        assert broken.status_code == 422
        assert broken.json()["errors"][0]["field"] == "text"
        no_subject = await h.client.post("/api/templates", json={**SHIPPED, "subject": None})
        assert no_subject.status_code == 422
        assert no_subject.json()["errors"][0]["field"] == "subject"
        bad_name = await h.client.post("/api/templates", json={**SHIPPED, "name": "No Spaces"})
        assert bad_name.status_code == 422
        bad_locale = await h.client.post("/api/templates", json={**SHIPPED, "locale": "x y"})
        assert bad_locale.status_code == 422
        assert bad_locale.json()["errors"][0]["field"] == "locale"


async def test_render_preview_escapes_html_and_names_missing_variables(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await h.client.post("/api/templates", json=SHIPPED)
        data = {"firstName": "<script>x</script>", "orderId": "A-1"}
        shown = await h.client.post("/api/templates/order-shipped/render", json={"data": data})
        assert shown.status_code == 200
        out = Envelope[RenderOut].model_validate(shown.json()).data
        assert out.subject == "Order A-1 is on its way"
        assert out.text == "Hi <script>x</script>, order A-1 ships today."
        assert out.html is not None and "&lt;script&gt;" in out.html and "<script>" not in out.html
        assert (out.template.name, out.template.version) == ("order-shipped", 1)

        missing = await h.client.post(
            "/api/templates/order-shipped/render", json={"data": {"orderId": "A-1"}}
        )
        assert missing.status_code == 422
        assert missing.json()["errors"] == [
            {"field": "data.firstName", "message": "is required by template 'order-shipped'"}
        ]
        assert "firstName" in missing.json()["message"]

        unsafe = {**SHIPPED, "name": "sneaky", "text": "{{ ''.__class__.__mro__ }}"}
        assert (await h.client.post("/api/templates", json=unsafe)).status_code == 201
        refused = await h.client.post("/api/templates/sneaky/render", json={"data": {"x": 1}})
        assert refused.status_code == 422 and "unsafe" in refused.json()["message"]

        assert (await h.client.post("/api/templates/none/render", json={})).status_code == 404


async def test_builtins_cannot_be_created_or_deleted_but_can_be_outranked(herald: Any) -> None:
    async with herald(deliver=False) as h:
        builtin = await h.client.get("/api/templates/login-alert")
        [shipped] = builtin.json()["data"]["templates"]
        assert (shipped["version"], shipped["builtin"]) == (0, True)
        clash = {**SHIPPED, "name": "login-alert"}
        assert (await h.client.post("/api/templates", json=clash)).status_code == 409
        assert (await h.client.delete("/api/templates/login-alert")).status_code == 409

        mine = {"subject": "Sign-in from {{ ipAddress }}", "text": "Mine: {{ userAgent }}"}
        put = await h.client.put("/api/templates/login-alert", json=mine)
        assert put.json()["data"]["version"] == 1

        login = {"username": "u", "email": "u@example.com", "userId": 1,
                 "ipAddress": "10.1.2.3", "userAgent": "curl/8"}  # fmt: skip
        first = (await h.client.post("/api/logins", json=login)).json()["data"]
        note = (await h.client.get(f"/api/notifications/{first['notificationIds'][0]}")).json()
        rendered = note["data"]["notification"]
        assert rendered["subject"] == "Sign-in from 10.1.2.3"
        assert rendered["message"] == "Mine: curl/8"
        assert rendered["metadata"]["template"] == {
            "name": "login-alert", "version": 1, "locale": "en"
        }  # fmt: skip

        removed = await h.client.delete("/api/templates/login-alert")
        assert removed.json()["data"] == {"name": "login-alert", "deleted": 1,
                                          "builtinRemains": True}  # fmt: skip
        second = (await h.client.post("/api/logins", json=login)).json()["data"]
        assert second["notifications"][0]["template"]["version"] == 0


async def test_events_pick_the_locale_with_fallback(herald: Any) -> None:
    async with herald(deliver=False) as h:
        french = {**SHIPPED, "locale": "fr", "subject": "Commande {{ orderId }}",
                  "text": "Bonjour {{ firstName }}"}  # fmt: skip
        assert (await h.client.post("/api/templates", json=SHIPPED)).status_code == 201
        assert (await h.client.post("/api/templates", json=french)).status_code == 201
        kind = {"name": "shipped", "targets": [{"template": "order-shipped"}]}
        assert (await h.client.post("/api/event-types", json=kind)).status_code == 201
        data = {"firstName": "Zoé", "orderId": "9", "email": "z@example.com"}
        for locale, subject, used in [
            ("fr-CA", "Commande 9", "fr"),
            ("fr", "Commande 9", "fr"),
            ("ja", "Order 9 is on its way", "en"),
        ]:
            reply = await h.client.post(
                "/api/events", json={"type": "shipped", "locale": locale, "data": data}
            )
            assert reply.status_code == 201, reply.text
            [nid] = reply.json()["data"]["notificationIds"]
            note = (await h.client.get(f"/api/notifications/{nid}")).json()["data"]["notification"]
            assert note["subject"] == subject
            assert note["metadata"]["template"]["locale"] == used

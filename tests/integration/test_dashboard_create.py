"""The dashboard's create form: who may use it, CSRF, the API's rules and words, what it stores."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.test_dashboard_login import Visitor, add_user, signed_in, visitor

pytestmark = pytest.mark.every_store

GOOD = {"type": "EMAIL", "recipient": "ann@example.com", "subject": "Hello", "message": "Hi Ann",
        "priority": "HIGH", "metadata": '{"userId": "12345"}'}  # fmt: skip
ERROR = re.compile(r'<span class="field-error" id="error-(\w+)">([^<]*)</span>')


async def operator(h: Any, v: Visitor) -> str:
    await add_user(h, "ops@example.com", "operator")
    await signed_in(v, "ops@example.com")
    return await v.token("/dashboard/create")


def errors_of(html: str) -> dict[str, str]:
    return {field: message.replace("&#39;", "'").replace("&#34;", '"')
            for field, message in ERROR.findall(html)}  # fmt: skip


async def test_the_form_is_for_those_who_may_send(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v, visitor(h) as looker:
        token = await operator(h, v)
        page = await v.client.get("/dashboard/create")
        assert page.status_code == 200
        for channel in ("EMAIL", "SMS", "PUSH", "WEBHOOK", "CHAT"):
            assert f'<option value="{channel}"' in page.text
        for field in ("recipient", "subject", "message", "template", "data", "priority",
                      "scheduledAt", "metadata", "idempotencyKey"):  # fmt: skip
            assert f'name="{field}"' in page.text, field
        assert token and 'href="/dashboard/create"' in (await v.client.get("/dashboard")).text

        await add_user(h, "viewer@example.com", "viewer")
        await signed_in(looker, "viewer@example.com")
        assert 'href="/dashboard/create"' not in (await looker.client.get("/dashboard")).text
        assert (await looker.client.get("/dashboard/create")).status_code == 403
        viewer_token = await looker.token("/dashboard")
        refused = await looker.post("/dashboard/create", viewer_token, **GOOD)
        assert refused.status_code == 403 and "lacks the &#39;send&#39; scope" in refused.text


async def test_a_post_needs_the_session_token_and_this_origin(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        token = await operator(h, v)
        missing = await v.post("/dashboard/create", None, **GOOD)
        assert missing.status_code == 403 and "no valid token" in missing.text
        forged = await v.client.post("/dashboard/create", data={**GOOD, "csrf": token},
                                     headers={"Origin": "http://evil.example"})  # fmt: skip
        assert forged.status_code == 403
        assert (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"] == 0  # fmt: skip


async def test_a_good_form_stores_the_notification_and_shows_its_page(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        token = await operator(h, v)
        later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
        fields = {**GOOD, "scheduledAt": later.isoformat(), "idempotencyKey": "order-1"}
        done = await v.post("/dashboard/create", token, **fields)
        assert done.status_code == 303, done.text
        path, _, query = done.headers["location"].partition("?")
        assert path.startswith("/dashboard/notifications/") and query == "notice=created"
        notification_id = path.rsplit("/", 1)[1]
        stored = await h.engine.store.get("default", notification_id)
        assert stored is not None
        assert (stored.recipient, stored.subject, stored.body) == ("ann@example.com", "Hello",
                                                                  "Hi Ann")  # fmt: skip
        assert stored.priority.name == "HIGH" and stored.metadata == {"userId": "12345"}
        assert stored.status.value == "SCHEDULED" and stored.idempotency_key == "order-1"
        assert stored.scheduled_at == later.replace(tzinfo=UTC).timestamp()
        page = await v.client.get(done.headers["location"])
        assert "this page follows it" in page.text and notification_id in page.text

        again = await v.post("/dashboard/create", token, **fields)
        assert again.headers["location"] == f"{path}?notice=existing"


async def test_refusals_use_the_apis_words_beside_each_field(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        token = await operator(h, v)
        cases = [
            ({"recipient": "not an address"}, "recipient"),
            ({"subject": ""}, "subject"),
            ({"message": "x" * 5001}, "message"),
            ({"priority": "URGENT"}, "priority"),
            ({"type": "PIGEON"}, "type"),
            ({"scheduledAt": "tomorrow"}, "scheduledAt"),
        ]
        for change, field in cases:
            body = {**GOOD, **change}
            page = await v.post("/dashboard/create", token, **body)
            assert page.status_code == 422, (field, page.text[:300])
            found = errors_of(page.text)
            assert list(found) == [field], (change, found)
            api_body = {k: v for k, v in body.items() if k not in ("metadata",)}
            api = await h.client.post("/api/notifications", json={**api_body, "metadata": {}})
            [api_error] = api.json()["errors"]
            assert api_error["field"] == field and found[field] == api_error["message"], field
            assert f'aria-describedby="error-{field}"' in page.text
            # The form comes back as it was filled in.
            kept = change.get("recipient") or change.get("subject") or "Hi Ann"
            assert kept[:40] in page.text or field in ("message", "type", "priority")

        for metadata, words in (("{not json", "is not valid JSON"),
                                ("[1, 2]", "must be a JSON object")):  # fmt: skip
            page = await v.post("/dashboard/create", token, **{**GOOD, "metadata": metadata})
            assert page.status_code == 422 and words in errors_of(page.text)["metadata"]
        long = await v.post("/dashboard/create", token, **{**GOOD, "idempotencyKey": "k" * 256})
        assert "longer than 255 characters" in errors_of(long.text)["idempotencyKey"]
        assert (await h.client.get("/api/notifications")).json()["data"]["pagination"][
            "totalItems"] == 0  # fmt: skip


async def test_a_template_writes_the_message(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        template = {"name": "greeting", "channel": "SMS", "locale": "en",
                    "text": "Hello {{ name }}, your code is {{ code }}"}  # fmt: skip
        assert (await h.client.post("/api/templates", json=template)).status_code == 201
        token = await operator(h, v)
        form = {"type": "SMS", "recipient": "+14155550100", "template": "greeting",
                "data": '{"name": "Ann", "code": 42}'}  # fmt: skip
        assert '<option value="greeting"' in (await v.client.get("/dashboard/create")).text
        done = await v.post("/dashboard/create", token, **form)
        assert done.status_code == 303, errors_of(done.text)
        notification_id = done.headers["location"].split("?")[0].rsplit("/", 1)[1]
        stored = await h.engine.store.get("default", notification_id)
        assert stored is not None and stored.body == "Hello Ann, your code is 42"

        both = await v.post("/dashboard/create", token, **{**form, "message": "typed"})
        assert "leave those empty" in errors_of(both.text)["template"]
        missing = await v.post("/dashboard/create", token, **{**form, "data": '{"name": "Ann"}'})
        assert "code" in " ".join(errors_of(missing.text).values())
        wrong = await v.post("/dashboard/create", token, **{**form, "type": "PUSH",
                                                             "recipient": "a" * 64})  # fmt: skip
        assert "no PUSH variant" in errors_of(wrong.text)["template"]


async def test_a_form_too_large_is_refused_unread(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        token = await operator(h, v)
        huge = await v.post("/dashboard/create", token, **{**GOOD, "message": "x" * 700_000})
        assert huge.status_code == 413

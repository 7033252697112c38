"""The page a welcome email's verification link opens: a GET shows a button and spends
nothing (mail scanners fetch links); the button's POST spends the token, once."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from herald.api import signups
from tests.conftest import AUTH
from tests.integration.conftest import Running
from tests.integration.test_seed_routes import SIGNUP, VERIFY

pytestmark = pytest.mark.every_store

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Form(HTMLParser):
    """The page's form: where it posts and the fields it sends."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.method: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.action, self.method = found.get("action"), found.get("method")
        elif tag == "input" and found.get("name"):
            self.fields[str(found["name"])] = str(found.get("value") or "")
        elif tag == "button":
            self.buttons += 1


async def signed_up(h: Any, email: str, tenant_key: dict[str, str] | None = None) -> str:
    """Sign ``email`` up; the verification link's token from the welcome email."""
    body = {**SIGNUP, "email": email}
    made = await h.client.post("/api/signups", json=body, headers=tenant_key or {})
    assert made.status_code == 201, made.text
    welcome = made.json()["data"]["welcomeEmail"]["notificationId"]
    async with httpx.AsyncClient(base_url=h.url, headers=tenant_key or AUTH) as client:
        await Running(client, h.engine, h.url).wait_status(welcome, "SENT")
    tenant = "default" if tenant_key is None else "acme"
    [message] = [m for m in await h.engine.store.mailbox(tenant, 50) if m.recipient == email]
    found = VERIFY.search(message.body)
    assert found is not None, message.body
    return found.group(1)


async def verified(h: Any, email: str, tenant: str = "default") -> bool:
    store = h.engine.store
    [event] = [e for e in (await store.find_events(tenant, signups.EventFilter(), 1, 50)).items
               if e.recipient == email]  # fmt: skip
    return event.verified_at is not None


async def test_the_link_shows_a_button_and_only_the_button_spends_the_token(herald: Any) -> None:
    async with herald() as h, httpx.AsyncClient(base_url=h.url) as browser:
        token = await signed_up(h, "ann@example.com")
        link = f"/api/signups/verify/{token}"
        for _ in range(3):  # a scanner, a preview, the person: none of them spends it
            shown = await browser.get(link)
            assert shown.status_code == 200 and "text/html" in shown.headers["content-type"]
            assert (await browser.head(link)).status_code == 200
        assert not await verified(h, "ann@example.com")
        assert shown.headers["cache-control"] == "no-store"
        assert shown.headers["referrer-policy"] == "no-referrer"
        assert "form-action 'self'" in shown.headers["content-security-policy"]
        form = Form(shown.text)
        assert (form.method, form.action, form.buttons) == ("post", "/api/signups/verify", 1)
        assert form.fields == {"token": token}, "the token goes in a hidden field"
        assert "ann@example.com" not in shown.text and "a***" not in shown.text

        # What the page shows for a token nobody issued is the same page: it tells nothing.
        unknown = await browser.get("/api/signups/verify/" + "x" * 43)
        assert unknown.status_code == 200
        assert Form(unknown.text).fields == {"token": "x" * 43}

        confirmed = await browser.post(form.action, data=form.fields)
        assert confirmed.status_code == 200, confirmed.text
        assert "confirmed" in confirmed.text and await verified(h, "ann@example.com")
        again = await browser.post(form.action, data=form.fields)
        assert again.status_code == 409 and "used" in again.text
        nobody = await browser.post(form.action, data={"token": "x" * 43})
        assert nobody.status_code == 404 and "not valid" in nobody.text
        assert "text/html" in nobody.headers["content-type"]


async def test_the_button_refuses_what_is_not_its_form(herald: Any) -> None:
    async with herald() as h, httpx.AsyncClient(base_url=h.url) as browser:
        empty = await browser.post("/api/signups/verify", data={})
        assert empty.status_code == 400 and "no token" in empty.text
        long = await browser.post("/api/signups/verify", data={"token": "x" * 513})
        assert long.status_code == 400
        large = await browser.post("/api/signups/verify", content=b"token=" + b"x" * 5000,
                                   headers=FORM)  # fmt: skip
        assert large.status_code == 413
        many = "&".join(f"f{i}=1" for i in range(10))
        assert (await browser.post("/api/signups/verify", content=many,
                                   headers=FORM)).status_code == 400  # fmt: skip
        hostile = await browser.get('/api/signups/verify/"><img src=x onerror=alert(1)>')
        assert hostile.status_code == 200 and "<img" not in hostile.text
        assert (await browser.get("/api/signups/verify/" + "x" * 600)).status_code == 404


async def test_the_link_works_for_the_tenant_that_sent_it_and_the_api_door_is_kept(
    herald: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with herald() as h, httpx.AsyncClient(base_url=h.url) as browser:
        reply = await h.client.post("/api/keys", json={"name": "acme", "scopes": ["send", "read"],
                                                        "tenant": "acme"})  # fmt: skip
        assert reply.status_code == 201, reply.text
        acme = {"Authorization": f"Bearer {reply.json()['data']['key']}"}
        theirs = await signed_up(h, "bob@example.com", acme)
        ours = await signed_up(h, "bob@example.com")
        posted = await browser.post("/api/signups/verify", data={"token": theirs})
        assert posted.status_code == 200, posted.text
        assert await verified(h, "bob@example.com", "acme")
        assert not await verified(h, "bob@example.com", "default")

        # An application still spends a token with its key, as before.
        api = await h.client.post(f"/api/signups/verify/{ours}")
        assert api.status_code == 200 and api.json()["message"] == "Email verified"

        late = await signed_up(h, "late@example.com")
        monkeypatch.setattr(signups, "VERIFY_TTL", -60.0)  # every token is now too old
        expired = await browser.post("/api/signups/verify", data={"token": late})
        assert expired.status_code == 410 and re.search("expired", expired.text)

"""One-click unsubscribe end to end: API, worker, a real SMTP server on loopback, the link.

An email in a category its tenant made unsubscribable carries List-Unsubscribe
and List-Unsubscribe-Post; posting to its link as Gmail does (a form body,
no Origin, no cookie, no key) suppresses that category for that recipient,
and the next email in it ends SUPPRESSED without the SMTP server hearing of it.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from herald.access import Scope
from herald.store.receipts import Category
from tests.conftest import free_port
from tests.integration.smtpsink import Server, settled

pytestmark = pytest.mark.every_store

ADA = "ada@example.com"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


def settings_for(smtp: Server, public: bool = True, **extra: Any) -> dict[str, Any]:
    port = free_port()
    return {
        "port": port,
        "public_url": f"http://127.0.0.1:{port}/" if public else None,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "none",
        "smtp_from": "Herald <noreply@herald.test>",
        "smtp_timeout": 2,
        **extra,
    }


async def send(h: Any, category: str | None, headers: dict[str, str] | None = None,
               **fields: Any) -> httpx.Response:  # fmt: skip
    body = {"type": "EMAIL", "recipient": ADA, "subject": f"In {category}", "message": "Hello",
            **({"category": category} if category else {}), **fields}  # fmt: skip
    return await h.client.post("/api/notifications", json=body, headers=headers or {})


async def sent(h: Any, category: str | None, status: str = "SENT", **fields: Any) -> Any:
    reply = await send(h, category, **fields)
    assert reply.status_code == 201, reply.text
    return (await h.wait_status(reply.json()["data"]["id"], status))["notification"]


def link_in(message: EmailMessage) -> str:
    found = re.fullmatch(r"<(http://[^>]+/u/[A-Za-z0-9_-]+)>", str(message["List-Unsubscribe"]))
    assert found, message["List-Unsubscribe"]
    return found.group(1)


async def test_one_click_unsubscribe_suppresses_that_category_only(
    herald: Any, smtp: Server
) -> None:
    async with herald(**settings_for(smtp)) as h:
        store = h.engine.store
        await store.save_category(Category("default", "news", unsubscribable=True))
        await store.save_category(Category("default", "billing", unsubscribable=False))

        first = await sent(h, "news")
        assert (first["category"], first["ignoreSuppression"]) == ("news", False)
        [message] = smtp.sink.messages
        link = link_in(message)
        assert link.startswith(h.url + "/u/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        # Gmail's one-click POST: a form body, no Origin, no cookie, no key.
        async with httpx.AsyncClient(timeout=10) as gmail:
            done = await gmail.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
            assert done.status_code == 200, done.text
            assert done.headers["content-type"].startswith("text/html")
            again = await gmail.post(link, content=b"List-Unsubscribe=One-Click",
                                     headers=ONE_CLICK)  # fmt: skip
            assert again.status_code == 200
        entries, total = await store.suppressions("default")
        assert total == 1
        [(recipient, category, reason)] = [(e.recipient, e.category, e.reason) for e in entries]
        assert (recipient, category, reason) == (ADA, "news", "unsubscribe")

        await settled(smtp)
        connections, transactions = smtp.connections, smtp.sink.transactions
        suppressed = await sent(h, "news", "SUPPRESSED")
        assert suppressed["provider"] is None
        assert (smtp.connections, smtp.sink.transactions) == (connections, transactions)
        assert len(smtp.sink.messages) == 1

        await sent(h, "billing")
        other = smtp.sink.messages[-1]
        assert other["Subject"] == "In billing"
        assert "List-Unsubscribe" not in other and "List-Unsubscribe-Post" not in other
        listed = await h.client.get("/api/notifications", params={"status": "SUPPRESSED"})
        assert [n["id"] for n in listed.json()["data"]["notifications"]] == [suppressed["id"]]


async def test_the_page_asks_first_and_forged_tokens_do_nothing(herald: Any, smtp: Server) -> None:
    async with herald(**settings_for(smtp)) as h:
        await h.engine.store.save_category(Category("default", "news", unsubscribable=True))
        await sent(h, "news")
        link = link_in(smtp.sink.messages[0])

        async with httpx.AsyncClient(timeout=10) as browser:
            page = await browser.get(link)
            assert page.status_code == 200
            assert "news" in page.text and "a***@example.com" in page.text
            assert ADA not in page.text
            assert re.search(r'<form method="post">.*<button type="submit">', page.text)
            policy = page.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "form-action 'self'" in policy
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["referrer-policy"] == "no-referrer"
            assert not re.search(r"(src|href)=", page.text), "no external resources"
            assert (await browser.head(link)).status_code == 200

            token = link.rpartition("/")[2]
            middle = len(token) // 2
            swapped = "A" if token[middle] != "A" else "B"
            forged = [
                token[:middle] + swapped + token[middle + 1 :],
                token[:-1],
                "x" * 43,
                "A" * 2000,
            ]
            for bad in forged:
                url = f"{h.url}/u/{bad}"
                refused = await browser.post(url, content=b"List-Unsubscribe=One-Click",
                                             headers=ONE_CLICK)  # fmt: skip
                assert refused.status_code == 404, (bad, refused.text)
                assert "signature" not in refused.text and "version" not in refused.text
                assert (await browser.get(url)).status_code == 404
            large = await browser.post(link, content=b"x" * 10_000, headers=ONE_CLICK)
            assert large.status_code == 413
            # A page that only showed the form, an oversized post and forged ones changed nothing.
            assert (await h.engine.store.suppressions("default"))[1] == 0
            foreign = await browser.post(link, headers={**ONE_CLICK, "Host": "evil.example"},
                                         content=b"List-Unsubscribe=One-Click")  # fmt: skip
            assert foreign.status_code == 400
            assert (await h.engine.store.suppressions("default"))[1] == 0


async def test_no_headers_unless_unsubscribable_and_public(herald: Any, smtp: Server) -> None:
    async with herald(**settings_for(smtp)) as h:
        await h.engine.store.save_category(Category("default", "billing", unsubscribable=False))
        await sent(h, "billing")
        await sent(h, None)
        await sent(h, "unknown-category")
    async with herald(**settings_for(smtp, public=False)) as h:
        await h.engine.store.save_category(Category("default", "news", unsubscribable=True))
        await sent(h, "news")
    assert len(smtp.sink.messages) == 4
    for message in smtp.sink.messages:
        assert "List-Unsubscribe" not in message, message["Subject"]
        assert "List-Unsubscribe-Post" not in message


async def test_a_mailto_address_is_offered_when_configured(herald: Any, smtp: Server) -> None:
    async with herald(**settings_for(smtp, unsubscribe_mailto="leave@herald.test")) as h:
        await h.engine.store.save_category(Category("default", "news", unsubscribable=True))
        await sent(h, "news")
    value = str(smtp.sink.messages[0]["List-Unsubscribe"])
    mailto = r"<mailto:leave@herald\.test\?subject=unsubscribe>"
    assert re.fullmatch(r"<http://[^>]+/u/[\w-]+>, " + mailto, value), value


async def test_ignore_suppression_needs_manage_and_then_sends(herald: Any, smtp: Server) -> None:
    async with herald(**settings_for(smtp)) as h:
        store = h.engine.store
        await store.save_category(Category("default", "news", unsubscribable=True))
        await sent(h, "news")
        async with httpx.AsyncClient(timeout=10) as gmail:
            link = link_in(smtp.sink.messages[0])
            done = await gmail.post(link, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK)
            assert done.status_code == 200
        key, _ = await store.access.create_key("default", {Scope.SEND, Scope.READ}, name="app")
        refused = await send(h, "news", {"Authorization": f"Bearer {key}"}, ignoreSuppression=True)
        assert refused.status_code == 403
        assert "'manage'" in refused.json()["message"]
        assert (await store.stats("default")).total == 1  # nothing was stored

        forced = await sent(h, "news", ignoreSuppression=True)
        assert forced["ignoreSuppression"] is True
        assert len(smtp.sink.messages) == 2
        assert smtp.sink.messages[-1]["List-Unsubscribe"] is not None

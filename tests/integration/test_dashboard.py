"""The operator dashboard: pages render what the store holds, forms act, nothing leaks or breaks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from herald.api.present import CONCEALED
from herald.errors import StoreUnavailable

EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Disk almost full",
         "message": "Volume /var is at 91%."}  # fmt: skip
SMS = {"type": "SMS", "recipient": "+14155550100", "message": "Your table is ready"}
pytestmark = pytest.mark.every_store

FAILING = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}


async def create(h: Any, body: dict[str, Any]) -> str:
    reply = await h.client.post("/api/notifications", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["_id"])


async def post_form(h: Any, path: str, **fields: str) -> httpx.Response:
    """Submit a dashboard form as a browser on the dashboard's own page would."""
    return await h.client.post(path, data=fields, headers={"Origin": h.url})


async def page(h: Any, path: str, expect: int = 200, **params: str) -> str:
    reply = await h.client.get(path, params=params)
    assert reply.status_code == expect, reply.text
    assert reply.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    return reply.text


async def test_pages_render_what_the_store_holds(herald: Any) -> None:
    async with herald() as h:
        email = await create(h, EMAIL)
        sms = await create(h, SMS)
        later = await create(h, {**EMAIL, "subject": "Later", "delaySeconds": 3600})
        for notification_id in (email, sms):
            await h.wait_status(notification_id, "SENT")

        overview = await page(h, "/dashboard")
        assert "Success rate" in overview and "100.0 %" in overview
        assert "Avg. processing" in overview
        for queue in ("email", "sms", "retry-1", "dlq"):
            assert f"<code>{queue}</code>" in overview
        assert 'action="/dashboard/queues/email/pause"' in overview
        for notification_id in (email, sms, later):
            assert f'href="/dashboard/notifications/{notification_id}"' in overview
        assert "No breaker has opened" in overview and "<code>capture</code>" in overview

        sent = await page(h, "/dashboard/notifications", status="SENT")
        assert email in sent and sms in sent and later not in sent
        assert "2 notifications" in sent
        texts = await page(h, "/dashboard/notifications", type="SMS", priority="MEDIUM")
        assert sms in texts and email not in texts
        assert "1 notification," in texts

        detail = await page(h, f"/dashboard/notifications/{email}")
        for shown in ("ops@example.com", "Disk almost full", "Volume /var is at 91%.", "capture"):
            assert shown in detail
        assert detail.count('class="timeline"') == 1 and "status-sent" in detail
        assert "/cancel" not in detail, "a sent notification is not cancellable"
        scheduled = await page(h, f"/dashboard/notifications/{later}")
        assert f'action="/dashboard/notifications/{later}/cancel"' in scheduled

        mailbox = await page(h, "/dashboard/mailbox")
        assert "Disk almost full" in mailbox and "Your table is ready" in mailbox
        only_sms = await page(h, "/dashboard/mailbox", type="SMS")
        assert "Your table is ready" in only_sms and "Disk almost full" not in only_sms
        assert "The dead letter queue is empty" in await page(h, "/dashboard/dlq")

        home = await h.client.get("/", follow_redirects=False)
        assert home.status_code == 302 and home.headers["location"] == "/dashboard"
        css = await h.client.get("/dashboard/static/dashboard.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        paths = (await h.client.get("/openapi.json")).json()["paths"]
        assert "/" not in paths and not [p for p in paths if p.startswith("/dashboard")]


async def test_notification_list_pages(herald: Any) -> None:
    async with herald(deliver=False) as h:
        ids = [await create(h, {**SMS, "message": f"n{i}"}) for i in range(27)]
        high = await create(h, {**SMS, "priority": "HIGH"})
        first = await page(h, "/dashboard/notifications")
        assert "page 1 of 2" in first and high in first and ids[0] not in first
        assert 'href="/dashboard/notifications?page=2"' in first
        second = await page(h, "/dashboard/notifications", page="2")
        assert ids[0] in second and high not in second
        assert sum(f"/dashboard/notifications/{i}" in second for i in ids) == 3
        only_high = await page(h, "/dashboard/notifications", priority="HIGH")
        assert high in only_high and "1 notification," in only_high and "page 1 of" not in only_high


async def test_pause_and_resume_through_the_forms(herald: Any) -> None:
    async with herald() as h:

        async def email_queue() -> dict[str, Any]:
            health = (await h.client.get("/api/queue-health")).json()["data"]
            return dict(health["queues"]["email"])

        paused = await post_form(h, "/dashboard/queues/mail/pause", next="/dashboard")
        assert paused.status_code == 303
        assert paused.headers["location"] == "/dashboard?notice=paused&queue=email"
        assert (await email_queue())["paused"] is True
        overview = await page(h, "/dashboard", notice="paused", queue="email")
        assert "Queue email paused" in overview
        assert 'action="/dashboard/queues/email/resume"' in overview

        resumed = await post_form(h, "/dashboard/queues/email/resume", next="/dashboard")
        assert resumed.status_code == 303 and (await email_queue())["paused"] is False
        unknown = await post_form(h, "/dashboard/queues/nowhere/pause")
        assert unknown.status_code == 404 and "no queue" in unknown.text
        assert unknown.headers["content-type"].startswith("text/html")


async def test_cancel_from_the_detail_page(herald: Any) -> None:
    async with herald() as h:
        later = await create(h, {**EMAIL, "delaySeconds": 3600})
        url = f"/dashboard/notifications/{later}"
        done = await post_form(h, f"{url}/cancel", next=url)
        assert done.status_code == 303 and done.headers["location"] == f"{url}?notice=cancelled"
        note = (await h.client.get(f"/api/notifications/{later}")).json()["data"]
        assert note["notification"]["status"] == "CANCELLED"
        detail = await page(h, url, notice="cancelled")
        assert "Notification cancelled." in detail and "/cancel" not in detail
        again = await post_form(h, f"{url}/cancel", next=url)
        assert again.headers["location"] == f"{url}?notice=not-cancelled"
        missing = await post_form(h, "/dashboard/notifications/0123456789abcdef/cancel")
        assert missing.status_code == 404


async def test_dlq_replay_and_delete(herald: Any) -> None:
    async with herald(**FAILING) as failing:
        ids = [await create(failing, {**EMAIL, "message": f"m{i}"}) for i in range(3)]
        for notification_id in ids:
            await failing.wait_status(notification_id, "FAILED")
        database = failing.engine.settings.database_url
    async with herald(database_url=database) as h:
        dead = await page(h, "/dashboard/dlq", type="EMAIL", error="injected")
        assert "3 dead letters matching" in dead and all(i in dead for i in ids)
        assert "Replay all 3 matching" in dead
        assert "The dead letter queue is empty for this filter" in await page(
            h, "/dashboard/dlq", type="SMS"
        )

        back = "/dashboard/dlq?type=EMAIL&error=injected"
        replay = await post_form(h, f"/dashboard/dlq/{ids[0]}/replay", next=back)
        assert replay.status_code == 303
        assert replay.headers["location"] == f"{back}&notice=replayed&count=1"
        detail = await h.wait_status(ids[0], "SENT")
        assert any("by admin-key" in log["message"] for log in detail["logs"])
        assert detail["notification"]["attempts"] == 1, "the ladder restarts on replay"
        mailbox = await page(h, "/dashboard/mailbox")
        assert ids[0] in mailbox and "m0" in mailbox

        deleted = await post_form(h, f"/dashboard/dlq/{ids[1]}/delete", next=back)
        assert deleted.status_code == 303
        assert (await h.client.get(f"/api/notifications/{ids[1]}")).status_code == 404
        gone = await post_form(h, f"/dashboard/dlq/{ids[1]}/delete", next=back)
        assert gone.status_code == 404 and "No dead letter" in gone.text

        everything = await post_form(h, "/dashboard/dlq/replay", type="EMAIL", error="INJECTED",
                                     next=back)  # fmt: skip
        assert everything.headers["location"] == f"{back}&notice=replayed&count=1"
        await h.wait_status(ids[2], "SENT")
        after = await page(h, "/dashboard/dlq", notice="replayed", count="1")
        assert "1 dead letter replayed" in after and "queue is empty" in after


async def test_captured_html_is_shown_not_run(herald: Any) -> None:
    async with herald() as h:
        attack = '<p>Hello</p><script>alert("owned")</script><img src=x onerror="alert(1)">'
        body = {**EMAIL, "subject": "<b>bold</b> subject", "message": "<script>x()</script>",
                "html": attack}  # fmt: skip
        notification_id = await create(h, body)
        await h.wait_status(notification_id, "SENT")
        for path in ("/dashboard/mailbox", f"/dashboard/notifications/{notification_id}"):
            html = await page(h, path)
            assert "<script>alert" not in html and "<script>x()" not in html
            assert "<img src=x" not in html and "<b>bold</b>" not in html
            assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in html
            assert "&lt;b&gt;bold&lt;/b&gt; subject" in html
            assert '<iframe sandbox="" ' in html and 'srcdoc="&lt;p&gt;Hello' in html
            assert html.count("<script") == 1, "only the dashboard's own static script"


async def test_sensitive_messages_are_redacted(herald: Any) -> None:
    async with herald() as h:
        secret = {**EMAIL, "message": "Your code is 482913", "html": "<p>482913</p>",
                  "metadata": {"sensitive": True}}  # fmt: skip
        notification_id = await create(h, secret)
        await h.wait_status(notification_id, "SENT")
        for path in ("/dashboard", "/dashboard/notifications", "/dashboard/mailbox",
                     f"/dashboard/notifications/{notification_id}"):  # fmt: skip
            html = await page(h, path)
            assert "482913" not in html, path
        for path in ("/dashboard/mailbox", f"/dashboard/notifications/{notification_id}"):
            html = await page(h, path)
            assert html.count(CONCEALED) == 2, "the text and the HTML part"
            assert "<iframe" not in html


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/dashboard"},
    ],
    ids=["no-origin", "foreign-origin", "null-origin", "foreign-referer"],
)
async def test_forms_from_elsewhere_are_refused(herald: Any, headers: dict[str, str]) -> None:
    async with herald(deliver=False) as h:
        notification_id = await create(h, {**EMAIL, "delaySeconds": 3600})
        for path in ("/dashboard/queues/email/pause",
                     f"/dashboard/notifications/{notification_id}/cancel"):  # fmt: skip
            refused = await h.client.post(path, data={"next": "/dashboard"}, headers=headers)
            assert refused.status_code == 403, path
            assert refused.headers["content-type"].startswith("text/html")
        health = (await h.client.get("/api/queue-health")).json()["data"]
        assert health["queues"]["email"]["paused"] is False
        note = (await h.client.get(f"/api/notifications/{notification_id}")).json()["data"]
        assert note["notification"]["status"] == "SCHEDULED"


async def test_forms_from_the_dashboard_are_honoured(herald: Any) -> None:
    async with herald(deliver=False) as h:
        by_referer = await h.client.post(
            "/dashboard/queues/sms/pause", headers={"Referer": f"{h.url}/dashboard"}
        )
        assert by_referer.status_code == 303
        elsewhere = await post_form(h, "/dashboard/queues/sms/resume", next="https://evil.example/")
        assert elsewhere.status_code == 303 and elsewhere.headers["location"].startswith(
            "/dashboard?"
        ), "next never leaves the dashboard"
        sneaky = await post_form(h, "/dashboard/queues/sms/resume", next="//evil.example/dashboard")
        assert sneaky.headers["location"].startswith("/dashboard?")


async def test_unknown_ids_and_bad_filters_are_pages(herald: Any) -> None:
    async with herald(deliver=False) as h:
        missing = await page(h, "/dashboard/notifications/0123456789abcdef", expect=404)
        assert "Not found" in missing and "0123456789abcdef" in missing
        odd = await page(h, "/dashboard/notifications/%3Cscript%3E", expect=404)
        assert "<script>" not in odd.replace('<script src="/dashboard/static/', "")
        assert "Unknown status" in await page(h, "/dashboard/notifications", 400, status="NOPE")
        await page(h, "/dashboard/notifications", 400, page="0")
        await page(h, "/dashboard/notifications", 400, page="9" * 5000)
        await page(h, "/dashboard/notifications", 400, page="²")
        await page(h, "/dashboard", notice="replayed", count="9" * 5000)
        await page(h, "/dashboard/dlq", 400, type="FAX")
        await page(h, "/dashboard/dlq", 400, error="x" * 501)
        await page(h, "/dashboard/mailbox", 400, type="FAX")
        for path, params, fine in [("/dashboard/dlq", {"error": "nul\x00"}, 200),
                                   ("/dashboard/notifications/nul%00", {}, 404)]:  # fmt: skip
            reply = await h.client.get(path, params=params)
            assert reply.status_code in (fine, 400), "PostgreSQL text cannot hold NUL: a 400"
            assert reply.headers["content-type"].startswith("text/html")


async def test_a_store_that_cannot_answer_is_a_503_page(
    herald: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with herald(deliver=False) as h:
        notification_id = await create(h, SMS)

        async def down(*args: Any, **kwargs: Any) -> Any:
            raise StoreUnavailable("database is locked")

        for method in ("stats", "get", "dlq", "mailbox", "find", "set_paused"):
            monkeypatch.setattr(h.engine.store, method, down)
        pages = ["/dashboard", f"/dashboard/notifications/{notification_id}",
                 "/dashboard/dlq", "/dashboard/mailbox", "/dashboard/notifications"]  # fmt: skip
        for path in pages:
            reply = await h.client.get(path)
            assert reply.status_code == 503, path
            assert "Store unavailable" in reply.text and reply.headers["retry-after"] == "1"
        posted = await post_form(h, "/dashboard/queues/email/pause")
        assert posted.status_code == 503

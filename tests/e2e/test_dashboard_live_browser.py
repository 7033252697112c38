"""The live dashboard in a real browser: pages that follow changes without reloading, the
create form, the charts, and every page at a phone's width and a desktop's.

Playwright drives Debian's ``chromium`` against an in-process Herald, as in
``test_dashboard_browser.py``, whose helpers start it and sign users in. Here the
"Live" box is left on. A page that has not reloaded keeps what a script put on its
``window``: that marker is how the tests tell an update in place from a reload.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from herald.models import DEFAULT_TENANT
from herald.store.receipts import Suppression
from tests.e2e.conftest import poll
from tests.e2e.test_dashboard_browser import CHROMIUM, add_user, dashboard, signed_in_page

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium ('make test' installs it)",
)

EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Disk", "message": "91%"}
#: Within a second of the change, plus the time a loaded machine takes to paint it.
LIVE_MS = 5_000
NARROW, WIDE = {"width": 390, "height": 844}, {"width": 1440, "height": 900}


async def live(context: BrowserContext, email: str, role: str, h: Any) -> Page:
    """A signed-in page with the live view on (``dashboard`` turns it off for other tests)."""
    await context.add_init_script("localStorage.setItem('herald-refresh', 'on')")
    await add_user(h, email, role)
    return await signed_in_page(context, email)


async def mark(page: Page) -> None:
    """Put a marker on the window once the stream is open; a reload would lose it."""
    await page.wait_for_selector("body[data-live=open]", timeout=LIVE_MS)
    await page.evaluate("window.heraldMarker = 'still here'")


async def unreloaded(page: Page) -> bool:
    return bool(await page.evaluate("window.heraldMarker === 'still here'"))


async def create(h: Any, body: dict[str, Any] = EMAIL) -> str:
    reply = await h.client.post("/api/notifications", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["id"])


async def test_a_notification_made_with_the_form_turns_sent_before_your_eyes(
    tmp_path: Path,
) -> None:
    async with dashboard(tmp_path) as (h, context):
        page = await live(context, "root@example.com", "admin", h)
        assert (await h.client.post("/api/queue/email/pause")).status_code == 200
        async with page.expect_navigation():
            await page.get_by_role("link", name="Create").click()
        await page.select_option('select[name="type"]', "EMAIL")
        await page.fill('input[name="recipient"]', "ann@example.com")
        await page.fill('input[name="subject"]', "Welcome")
        await page.fill('textarea[name="message"]', "Thank you for signing up!")
        await page.select_option('select[name="priority"]', "HIGH")
        await page.fill('textarea[name="metadata"]', '{"campaign": "onboarding"}')
        async with page.expect_navigation():
            await page.get_by_role("button", name="Create").click()
        assert "/dashboard/notifications/" in page.url and "notice=created" in page.url
        badge = page.locator("#detail h1 .badge")
        assert await badge.inner_text() == "QUEUED"
        await mark(page)

        assert (await h.client.post("/api/queue/email/resume")).status_code == 200
        await page.locator("#detail h1 .badge", has_text="SENT").wait_for(timeout=LIVE_MS)
        assert await unreloaded(page), "the page was reloaded, not updated"
        timeline = await page.locator(".timeline").inner_text()
        assert "SENT" in timeline and "PROCESSING" in timeline


async def test_the_form_names_the_field_it_refuses(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        page = await live(context, "ops@example.com", "operator", h)
        await page.goto("/dashboard/create")
        await page.fill('input[name="recipient"]', "not an address")
        await page.fill('textarea[name="message"]', "hello")
        await page.fill('input[name="subject"]', "Hi")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Create").click()
        problem = page.locator("#error-recipient")
        assert await problem.is_visible() and await problem.inner_text()
        field = page.locator('input[name="recipient"]')
        assert await field.get_attribute("aria-invalid") == "true"
        assert await field.input_value() == "not an address", "the form comes back filled in"


async def test_a_paused_queue_shows_on_the_overview_without_a_reload(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        page = await live(context, "root@example.com", "admin", h)
        await mark(page)
        row = page.locator("#queues tr", has=page.locator("code", has_text="sms"))
        assert await row.locator(".badge").inner_text() == "running"
        assert (await h.client.post("/api/queue/sms/pause")).status_code == 200
        await row.locator(".badge", has_text="paused").wait_for(timeout=LIVE_MS)
        assert (await h.client.post("/api/queue/sms/resume")).status_code == 200
        await row.locator(".badge", has_text="running").wait_for(timeout=LIVE_MS)
        assert await unreloaded(page)


async def test_the_list_and_the_totals_follow_new_notifications(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        page = await live(context, "viewer@example.com", "viewer", h)
        await page.goto("/dashboard/notifications")
        await mark(page)
        assert "0 notifications" in await page.locator("#list .count").inner_text()
        notification_id = await create(h)
        await page.locator(f'#list a[href="/dashboard/notifications/{notification_id}"]').wait_for(
            timeout=LIVE_MS
        )
        assert "1 notification," in await page.locator("#list .count").inner_text()
        assert await unreloaded(page)

        await page.goto("/dashboard")
        await mark(page)
        total = page.locator("#totals .card.total .value")
        assert await total.inner_text() == "1"
        await create(h)
        await page.locator("#totals .card.total .value", has_text="2").wait_for(timeout=LIVE_MS)
        assert await unreloaded(page)


async def test_the_charts_draw_what_was_sent_and_failed(tmp_path: Path) -> None:
    settings = {"sms_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
    async with dashboard(tmp_path, **settings) as (h, context):
        sent = [await create(h) for _ in range(3)]
        failed = await create(h, {"type": "SMS", "recipient": "+14155550100", "message": "hi"})
        for notification_id in sent:
            await h.wait_status(notification_id, "SENT")
        await h.wait_status(failed, "FAILED")
        page = await live(context, "viewer@example.com", "viewer", h)
        chart = page.locator("#chart-activity")

        async def legend() -> dict[str, str]:
            texts = await chart.locator(".legend li:not(.unit)").all_inner_texts()
            return dict(text.split() for text in texts)

        await poll(lambda: _has(legend, {"sent": "3", "failed": "1", "retried": "0"}), 15,
                   "the legend to count what was sent and failed")  # fmt: skip
        title = await chart.locator("svg > title").text_content()
        description = await chart.locator("svg > desc").text_content() or ""
        assert title == "Deliveries per minute, last hour"
        assert "3 sent, 1 failed, 0 retried" in description
        assert await chart.get_attribute("id") == "chart-activity"
        # The sent line rises above the axis somewhere: a point with a y above the baseline.
        d = await chart.locator("path.s-sent").get_attribute("d") or ""
        ys = [float(p.split(",")[1]) for p in d.replace("M", " ").replace("L", " ").split()]
        assert len(ys) == 60 and min(ys) < max(ys)
        labels = await chart.locator("text.tick").all_text_contents()
        times = [t for t in labels if re.fullmatch(r"\d\d:\d\d", t)]
        assert len(times) >= 3 and "0" in labels, labels  # a time axis, and counts from 0
        depth = page.locator("#chart-depth")
        assert "waiting" in await depth.locator(".legend").inner_text()
        await depth.locator("path.s-waiting").wait_for(state="attached", timeout=15_000)


async def _has(legend: Any, wanted: dict[str, str]) -> bool:
    return bool(await legend() == wanted)


#: Every page of the dashboard as a signed-in admin reaches it, by the name of its picture.
PAGES = {
    "overview": "/dashboard", "list": "/dashboard/notifications",
    "sent": "/dashboard/notifications/{sent}", "dead": "/dashboard/notifications/{dead}",
    "create": "/dashboard/create", "dlq": "/dashboard/dlq",
    "suppressions": "/dashboard/suppressions", "mailbox": "/dashboard/mailbox",
    "not-found": "/dashboard/notifications/nope",
}  # fmt: skip
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


async def test_every_page_fits_a_phone_and_a_desktop(tmp_path: Path) -> None:
    """Screenshots of every page at 390 and 1440 px (in the test's folder, ``screens/``), and
    none wider than its window."""
    shots = tmp_path / "screens"
    shots.mkdir()
    long_address = "a-very-long-recipient-name-for-the-layout@" + "sub." * 8 + "example.com"
    settings = {"sms_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
    async with dashboard(tmp_path, **settings) as (h, context):
        subject = "Disk almost full on the primary database host"
        sent = await create(h, {**EMAIL, "recipient": long_address, "subject": subject,
                                "html": "<p><b>91%</b> used</p>"})  # fmt: skip
        dead = await create(h, {"type": "SMS", "recipient": "+14155550100",
                                "message": "Your code is 1234. " * 20})  # fmt: skip
        await h.wait_status(sent, "SENT")
        await h.wait_status(dead, "FAILED")
        entry = Suppression(DEFAULT_TENANT, long_address, "newsletter", "bounce",
                            "550 5.1.1 mailbox unknown")  # fmt: skip
        await h.engine.store.suppress([entry])
        assert (await h.client.post("/api/queue/retry-1/pause")).status_code == 200
        await context.add_init_script("localStorage.setItem('herald-refresh', 'on')")

        async def shoot(page: Page, name: str) -> None:
            await page.screenshot(path=shots / f"{name}.png", full_page=True)
            overflow = await page.evaluate(OVERFLOW)
            assert overflow <= 0, f"{name}: {overflow}px wider than the window"

        login = await context.new_page()
        for size, width in ((NARROW, "narrow"), (WIDE, "wide")):
            await login.set_viewport_size(size)
            await login.goto("/dashboard/login")
            await shoot(login, f"login-{width}")
        await add_user(h, "root@example.com", "admin")
        page = await signed_in_page(context, "root@example.com")
        for size, width in ((NARROW, "narrow"), (WIDE, "wide")):
            await page.set_viewport_size(size)
            for name, path in PAGES.items():
                await page.goto(path.format(sent=sent, dead=dead))
                await shoot(page, f"{name}-{width}")
                if name == "overview":  # the charts again, close up
                    await page.locator("#charts").screenshot(path=shots / f"charts-{width}.png")
            # The create form with a refusal shown, at this width too.
            await page.goto("/dashboard/create")
            await page.fill('input[name="recipient"]', "not an address")
            async with page.expect_navigation():
                await page.get_by_role("button", name="Create").click()
            await shoot(page, f"create-refused-{width}")
        assert len(list(shots.iterdir())) == 2 * (len(PAGES) + 3)

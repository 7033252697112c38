"""A welcome email's verification link, opened in a real browser: a page with a button,
and the button's post confirms the address (the page's policy lets its form post)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e import test_dashboard_browser as browser
from tests.e2e.test_dashboard_browser import dashboard
from tests.integration.test_seed_routes import SIGNUP, VERIFY

pytestmark = browser.pytestmark  # skipped without chromium, as the dashboard's tests are


async def test_opening_the_link_then_pressing_the_button_confirms_the_address(
    tmp_path: Path,
) -> None:
    async with dashboard(tmp_path) as (h, context):
        made = (await h.client.post("/api/signups", json=SIGNUP)).json()["data"]
        await h.wait_status(made["welcomeEmail"]["notificationId"], "SENT")
        [message] = await h.engine.store.mailbox("default", 10)
        found = VERIFY.search(message.body)
        assert found is not None, message.body
        store = h.engine.store

        async def verified() -> bool:
            return (await store.get_event("default", made["id"])).verified_at is not None

        page = await context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        opened = await page.goto(found.group(0))
        assert opened is not None and opened.status == 200
        await page.goto(found.group(0))  # opened twice (a preview, then the person)
        assert not await verified(), "opening the link spends nothing"

        async with page.expect_navigation():
            await page.get_by_role("button", name="Confirm my email address").click()
        assert await page.locator("h1").inner_text() == "Email confirmed"
        assert page.url.endswith("/api/signups/verify"), "the token left the address bar"
        assert await verified() and problems == []

        await page.go_back()
        async with page.expect_navigation():
            await page.get_by_role("button", name="Confirm my email address").click()
        assert await page.locator("h1").inner_text() == "Already confirmed"

"""The suppression list page in a real browser: an operator adds and removes, a viewer only reads.

Playwright drives Debian's ``chromium`` against an in-process Herald, as in
``test_dashboard_browser.py``, whose helpers sign the users in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from herald.models import DEFAULT_TENANT
from herald.store.receipts import Suppression
from tests.e2e.test_dashboard_browser import (
    CHROMIUM,
    FORGED_REPLAY,
    add_user,
    dashboard,
    signed_in_page,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium ('make test' installs it)",
)


FORGED_ADD = """async (path) => {
    const answer = await fetch(path, {method: "POST", redirect: "manual",
        body: new URLSearchParams({csrf: "a-guess", recipient: "eve@example.com"})});
    return [answer.status, await answer.text()];
}"""


async def test_an_operator_adds_and_removes_a_suppression(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False, bypass_csp=True) as (h, context):
        store = h.engine.store
        await store.suppress([Suppression(DEFAULT_TENANT, "bob@example.com", "", "bounce")])
        await add_user(h, "ops@example.com", "operator")
        page = await signed_in_page(context, "ops@example.com")
        async with page.expect_navigation():
            await page.get_by_role("link", name="Suppressions").click()
        assert page.url.endswith("/dashboard/suppressions")

        status, text = await page.evaluate(FORGED_ADD, "/dashboard/suppressions/add")
        assert status == 403 and "no valid token" in text, "a form needs the session's token"

        form = page.locator("form.add-suppression")
        await form.locator('input[name="recipient"]').fill("  Ann@Example.com ")
        await form.locator('input[name="category"]').fill("newsletter")
        await form.locator('input[name="detail"]').fill("asked by phone")
        async with page.expect_navigation():
            await form.get_by_role("button", name="Add").click()
        assert "notice=suppressed" in page.url
        assert "Added to the suppression list" in await page.locator(".notice").inner_text()
        row = page.locator("tbody tr", has_text="ann@example.com")
        assert "newsletter" in await row.inner_text() and "asked by phone" in await row.inner_text()
        found, _ = await store.suppressions(DEFAULT_TENANT, "ann@example.com")
        assert [(s.category, s.reason, s.detail) for s in found] == [
            ("newsletter", "manual", "asked by phone")
        ]

        await page.fill('form.filters input[name="recipient"]', "ANN@example.com")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Filter").click()
        assert await page.locator("tbody tr").count() == 1
        assert "1 entry matching" in await page.locator("p.count").inner_text()

        page.once("dialog", lambda dialog: dialog.accept())  # the remove button asks first
        async with page.expect_navigation():
            await row.get_by_role("button", name="Remove").click()
        assert "notice=unsuppressed" in page.url and "recipient=ANN" in page.url, "back to it"
        assert "Removed from the suppression list" in await page.locator(".notice").inner_text()
        assert await store.suppressions(DEFAULT_TENANT, "ann@example.com") == ([], 0)
        assert (await store.suppressions(DEFAULT_TENANT))[1] == 1, "bob's entry stays"


async def test_a_viewer_sees_the_list_but_no_form(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False, bypass_csp=True) as (h, context):
        store = h.engine.store
        entry = Suppression(DEFAULT_TENANT, "bob@example.com", "", "complaint", "marked as spam")
        await store.suppress([entry])
        await add_user(h, "viewer@example.com", "viewer")
        page = await signed_in_page(context, "viewer@example.com")
        await page.goto("/dashboard/suppressions")
        row = page.locator("tbody tr", has_text="bob@example.com")
        assert "complaint" in await row.inner_text() and "marked as spam" in await row.inner_text()
        assert await page.locator("form.add-suppression").count() == 0
        actions = page.locator("main form[method=post]")
        assert await actions.count() == 0, await actions.all_inner_texts()

        for path in ("/dashboard/suppressions/remove", "/dashboard/suppressions/add"):
            status, text = await page.evaluate(FORGED_REPLAY, path)
            assert status == 403 and "manage" in text, path
        assert (await store.suppressions(DEFAULT_TENANT))[1] == 1

"""The API docs in a real browser on a host with no way out: every request that leaves
loopback is refused, and ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) still render
every operation, from the files Herald serves itself."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from playwright.async_api import BrowserContext, Route

from tests.conftest import AUTH
from tests.e2e import test_dashboard_browser as browser
from tests.e2e.test_dashboard_browser import add_user, dashboard, signed_in_page

pytestmark = browser.pytestmark  # skipped without chromium, as the dashboard's tests are

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: A URL in a page's markup that points off this host (a CDN, a font service).
ELSEWHERE = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


async def offline(context: BrowserContext) -> list[str]:
    """Abort every request whose host is not loopback; the URLs refused."""
    refused: list[str] = []

    async def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK:
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", only_loopback)
    return refused


async def documented_operations(client: httpx.AsyncClient) -> int:
    spec = (await client.get("/openapi.json")).json()
    return sum(len(operations) for operations in spec["paths"].values())


async def test_swagger_ui_and_redoc_render_every_operation_offline(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as (h, context):
        refused = await offline(context)
        operations = await documented_operations(h.client)
        assert operations >= 40
        await add_user(h, "reader@example.com", "viewer")
        page = await signed_in_page(context, "reader@example.com")  # the docs take a session
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        await page.goto("/docs")
        swagger = page.locator("#swagger-ui .opblock")
        await swagger.nth(operations - 1).wait_for()
        assert await swagger.count() == operations
        assert await page.locator(".opblock-summary-path", has_text="/api/notifications").count()

        await page.goto("/redoc")
        redoc = page.locator('[data-section-id^="operation/"]')
        await redoc.nth(operations - 1).wait_for()
        assert await redoc.count() == operations
        assert refused == [], refused
        # ReDoc's own logo, refused by the page's policy before any request leaves.
        assert [p for p in problems if "cdn.redoc.ly/redoc/logo" not in p] == [], problems


async def test_no_page_points_at_another_host(tmp_path: Path) -> None:
    """The pages Herald serves name no CDN or font service: a page that did would be
    blank, or half-styled, where nothing outside can be reached."""
    async with dashboard(tmp_path) as (h, _):
        pages = ["/docs", "/redoc", "/dashboard", "/dashboard/dlq", "/dashboard/suppressions"]
        for path in pages:
            reply = await h.client.get(path, headers=AUTH)
            assert reply.status_code == 200, (path, reply.status_code)
            assert "text/html" in reply.headers["content-type"], path
            assert not ELSEWHERE.search(reply.text), (path, ELSEWHERE.findall(reply.text))
        login = await h.client.get("/dashboard/login", headers={})
        assert login.status_code == 200 and not ELSEWHERE.search(login.text)
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
            served = await h.client.get(f"/docs/assets/{asset}", headers={"Authorization": ""})
            assert served.status_code == 200 and len(served.content) > 100_000, asset

"""The dashboard in a real browser: sign-in, roles, logout, lockout, and attacks from other sites.

Playwright drives Debian's ``chromium`` (``make test`` installs it) against an
in-process Herald; a second tiny HTTP server on another port plays the
attacker's site. Playwright's own browser download is never used.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Response, async_playwright

from herald.access import Role, hash_password
from herald.models import DEFAULT_TENANT
from tests.conftest import AUTH
from tests.e2e.conftest import poll
from tests.integration.conftest import Running, serve

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: Without chromium these tests are skipped, except in CI, where that would hide them.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="needs Debian's chromium ('make test' installs it)",
)

PASSWORD = "correct horse battery"
EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Disk", "message": "91%"}
FAILING = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
#: Playwright's wait for any one page event; a deadline, not a sleep.
STEP_MS = 10_000


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: 'make test' installs the Debian package")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def dashboard(
    tmp_path: Path, bypass_csp: bool = False, **settings: Any
) -> AsyncIterator[tuple[Running, BrowserContext]]:
    """A Herald and a fresh browser profile pointed at it (auto-refresh off, so pages hold still).

    ``bypass_csp`` lets a test's own script ``fetch`` from a dashboard page, which
    the pages' policy (``connect-src`` falls back to ``'none'``) otherwise forbids.
    """
    async with serve(tmp_path, **settings) as h, chromium() as browser:
        context = await browser.new_context(base_url=h.url, bypass_csp=bypass_csp)
        context.set_default_timeout(STEP_MS)
        await context.add_init_script("localStorage.setItem('herald-refresh', 'off')")
        try:
            yield h, context
        finally:
            await context.close()


async def add_user(h: Running, email: str, role: str) -> None:
    digest = hash_password(PASSWORD)
    await h.engine.store.access.create_user(DEFAULT_TENANT, email, Role(role), digest)


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> Response:
    """Fill in and send the login form the page shows; the answer to that POST."""
    await page.fill('input[name="email"]', email)
    await page.fill('input[name="password"]', password)

    def login_post(answer: Response) -> bool:
        return answer.request.method == "POST" and answer.url.endswith("/dashboard/login")

    async with page.expect_response(login_post) as posted:
        await page.get_by_role("button", name="Sign in").click()
    answer = await posted.value
    await page.wait_for_load_state()
    return answer


async def signed_in_page(context: BrowserContext, email: str) -> Page:
    page = await context.new_page()
    await page.goto("/dashboard")
    assert "/dashboard/login?next=" in page.url, "an anonymous visit is sent to sign in"
    assert (await sign_in(page, email)).status == 303
    assert page.url.endswith("/dashboard")
    return page


async def dead_letter(h: Running) -> str:
    reply = await h.client.post("/api/notifications", json=EMAIL)
    assert reply.status_code == 201, reply.text
    notification_id = str(reply.json()["data"]["_id"])
    await h.wait_status(notification_id, "FAILED")
    return notification_id


async def email_paused(h: Running) -> bool:
    health = (await h.client.get("/api/queue-health")).json()["data"]
    return bool(health["queues"]["email"]["paused"])


@contextmanager
def other_site(pages: dict[str, str]) -> Iterator[str]:
    """A site on another origin (another port) serving ``pages`` by path; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write((body or "").encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


FORGED_REPLAY = """async (path) => {
    const token = document.querySelector('input[name="csrf"]').value;
    const answer = await fetch(path, {method: "POST", redirect: "manual",
        body: new URLSearchParams({csrf: token, next: "/dashboard"})});
    return [answer.status, await answer.text()];
}"""


async def test_a_viewer_sees_everything_and_can_change_nothing(tmp_path: Path) -> None:
    async with dashboard(tmp_path, bypass_csp=True, **FAILING) as (h, context):
        dead = await dead_letter(h)
        await add_user(h, "viewer@example.com", "viewer")
        page = await signed_in_page(context, "viewer@example.com")
        assert await page.locator("header .who").inner_text() == "viewer@example.com"
        assert await page.get_by_role("button", name="Log out").is_visible()
        assert await page.locator("section.cards").is_visible()
        for path in ("/dashboard", "/dashboard/dlq", f"/dashboard/notifications/{dead}"):
            await page.goto(path)
            assert dead in await page.content(), path
            actions = page.locator("main form[method=post] button")
            assert await actions.count() == 0, f"{path}: {await actions.all_inner_texts()}"

        status, text = await page.evaluate(FORGED_REPLAY, f"/dashboard/dlq/{dead}/replay")
        assert status == 403 and "lacks the" in text and "manage" in text
        for forged in ("/dashboard/queues/email/pause", f"/dashboard/dlq/{dead}/delete"):
            status, _ = await page.evaluate(FORGED_REPLAY, forged)
            assert status == 403, forged
        assert not await email_paused(h)
        state = (await h.client.get(f"/api/notifications/{dead}")).json()["data"]
        assert state["notification"]["status"] == "FAILED"
        assert not any("Replayed" in log["message"] for log in state["logs"])


async def test_an_operator_replays_and_the_audit_names_them(tmp_path: Path) -> None:
    async with dashboard(tmp_path, **FAILING) as (h, context):
        dead = await dead_letter(h)
        await add_user(h, "ops@example.com", "operator")
        page = await signed_in_page(context, "ops@example.com")
        assert await page.get_by_role("button", name="Pause").count() == 0, "queues are global"
        await context.set_extra_http_headers({"X-Herald-Actor": "mallory@evil.example"})
        await page.goto("/dashboard/dlq")
        async with page.expect_navigation():
            await page.locator(f'form[action="/dashboard/dlq/{dead}/replay"] button').click()
        assert "notice=replayed" in page.url
        assert "1 dead letter replayed" in await page.locator(".notice").inner_text()

        async def audit() -> list[str]:
            reply = await h.client.get(f"/api/notifications/{dead}")
            return [log["message"] for log in reply.json()["data"]["logs"]]

        replays = await poll(lambda: _replays(audit), 10, "the replay's audit row")
        assert replays == [
            "Replayed from the DLQ by ops@example.com; the retry ladder starts again"
        ]
        assert "mallory" not in repr(await audit())

        await h.wait_status(dead, "FAILED")  # the fault provider fails it again
        mallory = {"X-Herald-Actor": "mallory@evil.example"}
        forged = await h.client.post("/api/dlq/replay", json={"ids": [dead]}, headers=mallory)
        assert forged.status_code == 200 and forged.json()["data"]["replayed"] == 1
        later = await poll(lambda: _replays(audit, 2), 10, "the API replay's audit row")
        assert "by admin-key" in later[-1] and "mallory" not in repr(await audit())


async def _replays(audit: Any, count: int = 1) -> list[str] | None:
    found = [m for m in await audit() if m.startswith("Replayed")]
    return found if len(found) >= count else None


async def test_logout_ends_the_session_for_good(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        await add_user(h, "ops@example.com", "operator")
        page = await signed_in_page(context, "ops@example.com")
        [old] = [c["value"] for c in await context.cookies() if c["name"] == "herald_session"]
        session = next(c for c in await context.cookies() if c["name"] == "herald_session")
        assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/"
        async with page.expect_navigation():
            await page.get_by_role("button", name="Log out").click()
        assert page.url.endswith("/dashboard/login")
        assert not [c for c in await context.cookies() if c["name"] == "herald_session"]
        await page.goto("/dashboard")
        assert "/dashboard/login" in page.url
        async with httpx.AsyncClient(base_url=h.url, cookies={"herald_session": old}) as stale:
            answer = await stale.get("/dashboard")
            assert answer.status_code == 303 and "/dashboard/login" in answer.headers["location"]


async def test_five_wrong_passwords_lock_the_account(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        await add_user(h, "ops@example.com", "admin")
        page = await context.new_page()
        await page.goto("/dashboard/login")
        statuses = [(await sign_in(page, "ops@example.com", f"wrong guess {n}")).status
                    for n in range(5)]  # fmt: skip
        assert statuses == [401, 401, 401, 401, 429]
        right = await sign_in(page, "ops@example.com")
        assert right.status == 429 and int(await right.header_value("retry-after") or 0) > 800
        assert "Too many sign-in attempts" in await page.content()
        assert not [c for c in await context.cookies() if c["name"] == "herald_session"]


async def test_a_form_posted_from_another_site_is_refused(tmp_path: Path) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        await add_user(h, "root@example.com", "admin")
        page = await signed_in_page(context, "root@example.com")
        target = f"{h.url}/dashboard/queues/email/pause"
        attack = (f'<form method="post" action="{target}"><input name="next" value="/dashboard">'
                  '<input name="csrf" value="a-guess"></form>'
                  "<script>document.forms[0].submit()</script>")  # fmt: skip
        with other_site({"/": attack}) as evil:
            async with page.expect_response(target) as refused:
                await page.goto(evil)
            assert (await refused.value).status == 403
        assert not await email_paused(h)
        # The same session may pause from the dashboard itself: the refusal was the site's.
        await page.goto("/dashboard")
        async with page.expect_navigation():
            await page.locator('form[action="/dashboard/queues/email/pause"] button').click()
        assert await email_paused(h)


CROSS_ORIGIN_API = """<!doctype html><title>cats</title><body><script>
const H = "{herald}";
const note = JSON.stringify({{type: "EMAIL", recipient: "victim@example.com",
                             subject: "Hi", message: "forged"}});
const targets = ["/api/notifications", "/api/queue/email/pause"];
async function viaForm(path, enctype, fields) {{
  const name = "f" + Math.random().toString(36).slice(2);
  const frame = document.createElement("iframe");
  frame.name = name;
  await new Promise((blank) => {{ frame.onload = blank; document.body.appendChild(frame); }});
  return new Promise((done) => {{
    frame.onload = () => done();
    const form = document.createElement("form");
    Object.assign(form, {{method: "post", action: H + path, target: name, enctype}});
    for (const [key, value] of Object.entries(fields)) {{
      const input = document.createElement("input");
      Object.assign(input, {{name: key, value}});
      form.appendChild(input);
    }}
    document.body.appendChild(form);
    form.submit();
  }});
}}
(async () => {{
  for (const path of targets) {{
    try {{ await fetch(H + path, {{method: "POST", credentials: "include", body: note,
                                  headers: {{"Content-Type": "text/plain"}}}}); }} catch (e) {{}}
    try {{ await fetch(H + path, {{method: "POST", credentials: "include", body: note,
                                  mode: "no-cors"}}); }} catch (e) {{}}
    await viaForm(path, "application/x-www-form-urlencoded",
                  {{type: "EMAIL", recipient: "victim@example.com", message: "forged"}});
    await viaForm(path, "text/plain", {{[note.slice(0, -1) + ', "x": "']: '"}}'}});
  }}
  document.title = "done";
}})();
</script>"""


async def test_another_origin_cannot_create_a_notification_or_pause_a_queue(
    tmp_path: Path,
) -> None:
    async with dashboard(tmp_path, deliver=False) as (h, context):
        await add_user(h, "root@example.com", "admin")
        page = await signed_in_page(context, "root@example.com")  # a victim with a session
        # The browser's own network log: it sees the status of answers that CORS hides.
        network = await context.new_cdp_session(page)
        await network.send("Network.enable")
        sent: dict[str, str] = {}
        answered: dict[str, int] = {}

        def request(event: dict[str, Any]) -> None:
            if event["request"]["url"].startswith(h.url + "/api/"):
                sent[event["requestId"]] = event["request"]["headers"].get("Content-Type", "")

        def response(event: dict[str, Any]) -> None:
            answered[event["requestId"]] = event["statusCode"]

        network.on("Network.requestWillBeSent", request)
        network.on("Network.responseReceivedExtraInfo", response)
        with other_site({"/": CROSS_ORIGIN_API.format(herald=h.url)}) as evil:
            await page.goto(evil)
            await page.wait_for_function("document.title === 'done'")
            await poll(lambda: len(sent) == 8 and set(sent) <= set(answered), 10,
                       "Herald's answers to the eight forged requests")  # fmt: skip
        # Each kind of request reached Herald and was refused for want of a credential: the
        # session cookie the browser sent along is no credential for the JSON API.
        kinds = {kind.partition(";")[0] for kind in sent.values()}
        assert kinds == {"text/plain", "application/x-www-form-urlencoded"}, sent
        assert {answered[i] for i in sent} == {401}, answered
        async with httpx.AsyncClient(base_url=h.url, headers=AUTH) as admin:
            listed = (await admin.get("/api/notifications")).json()["data"]
            assert listed["pagination"]["totalItems"] == 0, listed
        assert not await email_paused(h)


async def test_a_foreign_host_header_is_refused(tmp_path: Path) -> None:
    async with serve(tmp_path, deliver=False) as h:
        for path in ("/api/health", "/dashboard/login", "/dashboard"):
            answer = await h.client.get(path, headers={"Host": "evil.example"})
            assert answer.status_code == 400, path
            assert "evil.example" in answer.json()["message"]
        assert (await h.client.get("/dashboard/login")).status_code == 200

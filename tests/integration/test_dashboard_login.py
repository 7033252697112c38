"""Signing in to the dashboard: sessions, lockouts, CSRF tokens on forms, and what each role sees.

Each test talks to an in-process Herald as a browser would: an HTTP client
with a cookie jar and no API key, reading the forms' tokens off the pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import structlog

from herald.access import Role, hash_password
from herald.dashboard import login as login_module
from herald.dashboard import sessions as sessions_module
from herald.models import DEFAULT_TENANT

pytestmark = pytest.mark.every_store

PASSWORD = "correct horse battery"
EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "Disk", "message": "91%"}
FAILING = {"email_providers": ["fault"], "fault_failure_rate": 1.0, "fault_error": "permanent"}
TOKEN = re.compile(r'name="csrf" value="([^"]*)"')


async def add_user(h: Any, email: str, role: str, tenant: str = DEFAULT_TENANT,
                   password: str = PASSWORD) -> None:  # fmt: skip
    digest = await asyncio.to_thread(hash_password, password)
    await h.engine.store.access.create_user(tenant, email, Role(role), digest)


class Visitor:
    """A browser's view of the dashboard: cookies kept, forms posted from its own pages."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client = client
        self.url = url
        self.origin = {"Origin": url}

    async def token(self, path: str = "/dashboard") -> str:
        page = await self.client.get(path)
        assert page.status_code == 200, page.text
        found = TOKEN.search(page.text)
        assert found, f"no csrf field on {path}"
        return found.group(1)

    async def login(self, email: str, password: str = PASSWORD, next_page: str = "",
                    headers: dict[str, str] | None = None) -> httpx.Response:  # fmt: skip
        token = await self.token("/dashboard/login")
        fields = {"email": email, "password": password, "csrf": token, "next": next_page}
        return await self.client.post("/dashboard/login", data=fields,
                                      headers={**self.origin, **(headers or {})})  # fmt: skip

    async def post(self, path: str, token: str | None, **fields: str) -> httpx.Response:
        if token is not None:
            fields["csrf"] = token
        return await self.client.post(path, data=fields, headers=self.origin)


@asynccontextmanager
async def visitor(h: Any) -> AsyncIterator[Visitor]:
    async with httpx.AsyncClient(base_url=h.url, timeout=10) as client:
        yield Visitor(client, h.url)


async def signed_in(v: Visitor, email: str) -> None:
    answer = await v.login(email)
    assert answer.status_code == 303, answer.text


async def create(h: Any, body: dict[str, Any]) -> str:
    reply = await h.client.post("/api/notifications", json=body)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["data"]["_id"])


async def test_a_login_opens_a_session_with_a_safe_cookie(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        bounced = await v.client.get("/dashboard/dlq", params={"type": "EMAIL"})
        assert bounced.status_code == 303
        target = bounced.headers["location"]
        assert urlsplit(target).path == "/dashboard/login"
        wanted = parse_qs(urlsplit(target).query)["next"][0]
        assert wanted == "/dashboard/dlq?type=EMAIL"

        page = await v.client.get(target)
        assert page.status_code == 200 and "Sign in" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert 'value="/dashboard/dlq?type=EMAIL"' in page.text
        login_cookie = page.headers["set-cookie"].lower()
        assert "herald_login=" in login_cookie and "httponly" in login_cookie
        assert "samesite=strict" in login_cookie and "path=/dashboard/login" in login_cookie

        done = await v.login("OPS@example.com ", next_page=wanted)
        assert done.status_code == 303 and done.headers["location"] == wanted
        cookie = next(c for c in done.headers.get_list("set-cookie") if "herald_session=" in c)
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert "secure" not in flags, "plain http: a Secure cookie would never come back"

        overview = await v.client.get("/dashboard")
        assert overview.status_code == 200
        assert "ops@example.com" in overview.text and 'action="/dashboard/logout"' in overview.text
        user = await h.engine.store.access.user("ops@example.com")
        assert user is not None and user.last_login_at is not None
        api = await v.client.get("/api/notifications")
        assert api.status_code == 401, "a session cookie is no credential for the JSON API"


async def test_the_cookie_is_secure_behind_an_https_proxy(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        https = {"X-Forwarded-Proto": "https", "Origin": h.url.replace("http:", "https:")}
        done = await v.login("ops@example.com", headers=https)
        assert done.status_code == 303
        cookie = next(c for c in done.headers.get_list("set-cookie") if "herald_session=" in c)
        assert "secure" in [part.strip().lower() for part in cookie.split(";")]


@pytest.mark.parametrize(
    "wanted",
    ["https://evil.example/dashboard", "//evil.example/dashboard", "/\\evil.example/dashboard",
     "/dashboard/../api/notifications", "/dashboard/\t/evil", "/api/notifications",
     "/dashboard/login?next=/dashboard", "javascript:alert(1)"],
)  # fmt: skip
async def test_next_never_leaves_the_dashboard(herald: Any, wanted: str) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        page = await v.client.get("/dashboard/login", params={"next": wanted})
        assert 'name="next" value="/dashboard"' in page.text
        done = await v.login("ops@example.com", next_page=wanted)
        assert done.status_code == 303 and done.headers["location"] == "/dashboard"


async def test_a_failed_login_says_nothing_about_the_account(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "admin")
        await add_user(h, "gone@example.com", "admin")
        assert await h.engine.store.access.set_disabled("gone@example.com", True)
        answers = [
            await v.login("ops@example.com", "wrong password!"),
            await v.login("nobody@example.com", "wrong password!"),
            await v.login("gone@example.com"),  # the right password, but disabled
        ]
        for answer in answers:
            assert answer.status_code == 401
            assert "herald_session" not in answer.headers.get("set-cookie", "")
            assert "do not match an account that may sign in" in answer.text
        texts = {a.text.replace(e, "EMAIL") for a, e in
                 zip(answers, ["ops@example.com", "nobody@example.com", "gone@example.com"],
                     strict=True)}  # fmt: skip
        texts = {TOKEN.sub("", t) for t in texts}
        assert len(texts) == 1, "every failure renders the same page"
        assert await h.engine.store.access.set_disabled("gone@example.com", False)
        assert (await v.login("gone@example.com")).status_code == 303


async def test_disabling_or_a_new_password_ends_a_session(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v, visitor(h) as w:
        await add_user(h, "ops@example.com", "viewer")
        await signed_in(v, "ops@example.com")
        await signed_in(w, "ops@example.com")
        assert (await v.client.get("/dashboard")).status_code == 200
        await h.engine.store.access.set_disabled("ops@example.com", True)
        assert (await v.client.get("/dashboard")).status_code == 303
        await h.engine.store.access.set_disabled("ops@example.com", False)
        await signed_in(v, "ops@example.com")
        await h.engine.store.access.set_password("ops@example.com", hash_password("another one!"))
        for who in (v, w):
            assert (await who.client.get("/dashboard")).status_code == 303


async def test_five_failures_lock_an_account_and_say_so_in_the_log(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        await add_user(h, "other@example.com", "operator")
        with structlog.testing.capture_logs() as logged:
            for attempt in range(5):  # from five addresses: only the account counts to five
                where = {"X-Forwarded-For": f"198.51.100.{attempt + 1}"}
                answer = await v.login("ops@example.com", f"guess number {attempt}", headers=where)
                assert answer.status_code == (429 if attempt == 4 else 401), attempt
        locked = [e for e in logged if e["event"] == "login_locked"]
        assert [e["subject_kind"] for e in locked] == ["account"]
        assert "guess number" not in repr(logged), "a password never reaches the log"

        elsewhere = {"X-Forwarded-For": "203.0.113.9"}
        refused = await v.login("ops@example.com", headers=elsewhere)  # the right password
        assert refused.status_code == 429 and "Too many sign-in attempts" in refused.text
        assert 14 * 60 < int(refused.headers["retry-after"]) <= 15 * 60
        assert "herald_session" not in refused.headers.get("set-cookie", "")
        assert (await v.login("other@example.com", headers=elsewhere)).status_code == 303


async def test_parallel_guesses_get_no_more_than_five_checks(
    herald: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[str] = []
    real = login_module.verify_password

    def counted(password: str, stored: str) -> bool:
        checked.append(password)
        return real(password, stored)

    monkeypatch.setattr(login_module, "verify_password", counted)
    async with herald(deliver=False) as h:
        await add_user(h, "ops@example.com", "operator")
        visitors = []
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(10):
                visitors.append(await stack.enter_async_context(visitor(h)))
            tokens = [await v.token("/dashboard/login") for v in visitors]

            async def guess(n: int) -> int:
                fields = {"email": "ops@example.com", "password": f"guess {n}",
                          "csrf": tokens[n], "next": ""}  # fmt: skip
                where = {**visitors[n].origin, "X-Forwarded-For": f"198.51.100.{n + 1}"}
                answer = await visitors[n].client.post("/dashboard/login", data=fields,
                                                       headers=where)  # fmt: skip
                return answer.status_code

            codes = await asyncio.gather(*(guess(n) for n in range(10)))
        assert codes.count(401) <= 4 and codes.count(429) >= 6, codes
        assert len(checked) == 5, "past the fifth, guesses are refused before any check"
        async with visitor(h) as v:
            right = await v.login("ops@example.com", headers={"X-Forwarded-For": "203.0.113.9"})
            assert right.status_code == 429, "the account is locked"


async def test_good_logins_never_lock_their_address(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        office = {"X-Forwarded-For": "198.51.100.50"}
        for _ in range(7):
            assert (await v.login("ops@example.com", headers=office)).status_code == 303


async def test_five_failures_lock_an_address(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        sprayer = {"X-Forwarded-For": "198.51.100.7"}
        with structlog.testing.capture_logs() as logged:
            for n in range(5):
                await v.login(f"user{n}@example.com", "Winter2025!", headers=sprayer)
        assert [e["subject_kind"] for e in logged if e["event"] == "login_locked"] == ["address"]
        assert (await v.login("ops@example.com", headers=sprayer)).status_code == 429
        fine = await v.login("ops@example.com", headers={"X-Forwarded-For": "198.51.100.8"})
        assert fine.status_code == 303


async def test_logins_spend_the_address_budget(herald: Any) -> None:
    async with herald(deliver=False, anonymous_rate_limit="3/min") as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        for _ in range(3):
            assert (await v.login("ops@example.com", "not it at all")).status_code == 401
        spent = await v.login("ops@example.com")
        assert spent.status_code == 429 and int(spent.headers["retry-after"]) >= 1


async def test_login_inputs_are_bounded(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        long_email = "a" * 250 + "@example.com"
        assert (await v.login(long_email)).status_code == 400
        assert (await v.login("ops@example.com", "p" * 1025)).status_code == 400
        token = await v.token("/dashboard/login")
        padded = {"csrf": token, "email": "ops@example.com", "password": "x", "pad": "y" * 40_000}
        huge = await v.client.post("/dashboard/login", headers=v.origin, data=padded)
        assert huge.status_code == 413
        many = {f"f{i}": "1" for i in range(50)}
        crowded = await v.client.post("/dashboard/login", headers=v.origin,
                                      data={**many, "csrf": token})  # fmt: skip
        assert crowded.status_code == 400
        assert (await v.login("ops@example.com")).status_code == 303


async def test_a_login_form_needs_its_token_and_this_origin(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "operator")
        fields = {"email": "ops@example.com", "password": PASSWORD}
        no_token = await v.client.post("/dashboard/login", data=fields, headers=v.origin)
        assert no_token.status_code == 403 and "herald_session" not in str(no_token.headers)
        token = await v.token("/dashboard/login")
        forged = await v.client.post("/dashboard/login", headers=v.origin,
                                     data={**fields, "csrf": token[:-2] + "xx"})  # fmt: skip
        assert forged.status_code == 403
        foreign = await v.client.post("/dashboard/login", data={**fields, "csrf": token},
                                      headers={"Origin": "http://evil.example"})  # fmt: skip
        assert foreign.status_code == 403
        async with visitor(h) as stranger:  # a token without the cookie it was made for
            lone = await stranger.client.post("/dashboard/login", headers=v.origin,
                                              data={**fields, "csrf": token})  # fmt: skip
            assert lone.status_code == 403
        ok = await v.client.post("/dashboard/login", data={**fields, "csrf": token},
                                 headers=v.origin)  # fmt: skip
        assert ok.status_code == 303


async def test_a_session_form_needs_the_session_token(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "root@example.com", "admin")
        await signed_in(v, "root@example.com")
        token = await v.token("/dashboard")

        async def paused() -> bool:
            health = (await h.client.get("/api/queue-health")).json()["data"]
            return bool(health["queues"]["email"]["paused"])

        for bad in (None, "", token[:-1], "x" * 200):
            refused = await v.post("/dashboard/queues/email/pause", bad, next="/dashboard")
            assert refused.status_code == 403, bad
            assert "no valid token" in refused.text
        assert not await paused()
        foreign = await v.client.post("/dashboard/queues/email/pause", data={"csrf": token},
                                      headers={"Origin": "http://evil.example"})  # fmt: skip
        assert foreign.status_code == 403 and not await paused()
        done = await v.post("/dashboard/queues/email/pause", token, next="/dashboard")
        assert done.status_code == 303 and await paused()


async def test_logout_ends_the_session(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        await signed_in(v, "ops@example.com")
        token = await v.token("/dashboard")
        old = v.client.cookies["herald_session"]
        assert (await v.post("/dashboard/logout", None)).status_code == 403
        assert (await v.client.get("/dashboard")).status_code == 200, "still signed in"
        out = await v.post("/dashboard/logout", token)
        assert out.status_code == 303 and out.headers["location"] == "/dashboard/login"
        assert "herald_session" not in v.client.cookies
        async with httpx.AsyncClient(base_url=h.url, cookies={"herald_session": old}) as replay:
            again = await replay.get("/dashboard")
            assert again.status_code == 303, "the old cookie is no session any more"


class Clock:
    """The sessions' clock: real time plus ``ahead`` seconds, moved forward by a test."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def time(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(sessions_module, "time", moved)
    return moved


async def sent_to_login(v: Visitor) -> bool:
    page = await v.client.get("/dashboard")
    if page.status_code == 200:
        return False
    assert page.status_code == 303, page.text
    assert urlsplit(page.headers["location"]).path == "/dashboard/login"
    return True


async def test_a_session_idle_past_the_limit_ends(herald: Any, clock: Clock) -> None:
    minute = 60.0
    async with herald(deliver=False, session_idle_minutes=30) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        await signed_in(v, "ops@example.com")
        for ahead in (29, 58):  # each visit within 30 minutes of the one before
            clock.ahead = ahead * minute
            assert not await sent_to_login(v), f"signed out {ahead} minutes in"
        clock.ahead = (58 + 30) * minute + 5
        assert await sent_to_login(v), "30 minutes idle and the session still works"
        clock.ahead = 58 * minute
        assert await sent_to_login(v), "an ended session stays ended"


async def test_a_session_ends_at_its_lifetime_even_if_active(herald: Any, clock: Clock) -> None:
    minute = 60.0
    settings = {"session_idle_minutes": 30, "session_max_hours": 1}
    async with herald(deliver=False, **settings) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        await signed_in(v, "ops@example.com")
        for ahead in (20, 40, 59):
            clock.ahead = ahead * minute
            assert not await sent_to_login(v), f"signed out {ahead} minutes in"
        clock.ahead = 61 * minute  # two minutes after the last visit, an hour after login
        assert await sent_to_login(v), "an hour after login the session still works"


async def test_signing_in_again_replaces_the_session(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        await add_user(h, "ops@example.com", "viewer")
        await add_user(h, "root@example.com", "admin")
        await signed_in(v, "ops@example.com")
        first = v.client.cookies["herald_session"]
        await signed_in(v, "root@example.com")
        assert "root@example.com" in (await v.client.get("/dashboard")).text
        async with httpx.AsyncClient(base_url=h.url, cookies={"herald_session": first}) as old:
            assert (await old.get("/dashboard")).status_code == 303


@pytest.mark.parametrize(
    ("role", "actions", "refused"),
    [
        ("viewer", set(), {"pause", "replay", "delete", "cancel"}),
        ("operator", {"replay", "delete", "cancel"}, {"pause"}),
        ("admin", {"pause", "replay", "delete", "cancel"}, set()),
    ],
)
async def test_each_role_sees_and_may_do_its_own(
    herald: Any, role: str, actions: set[str], refused: set[str]
) -> None:
    async with herald(**FAILING) as h, visitor(h) as v:
        dead = await create(h, EMAIL)
        await h.wait_status(dead, "FAILED")
        later = await create(h, {**EMAIL, "delaySeconds": 3600})
        await add_user(h, f"{role}@example.com", role)
        await signed_in(v, f"{role}@example.com")
        pages = {
            "pause": "/dashboard",
            "replay": "/dashboard/dlq",
            "delete": f"/dashboard/notifications/{dead}",
            "cancel": f"/dashboard/notifications/{later}",
        }
        forms = {
            "pause": "/dashboard/queues/email/pause",
            "replay": f"/dashboard/dlq/{dead}/replay",
            "delete": f"/dashboard/dlq/{dead}/delete",
            "cancel": f"/dashboard/notifications/{later}/cancel",
        }
        for action, path in pages.items():
            html = (await v.client.get(path)).text
            assert (f'action="{forms[action]}"' in html) == (action in actions), (role, action)
            assert f"{role}@example.com" in html
        token = await v.token("/dashboard")
        for action in refused:
            answer = await v.post(forms[action], token, next="/dashboard")
            assert answer.status_code == 403, (role, action)
            assert "lacks the" in answer.text
        health = (await h.client.get("/api/queue-health")).json()["data"]
        assert health["queues"]["email"]["paused"] is False
        state = (await h.client.get(f"/api/notifications/{later}")).json()["data"]
        assert state["notification"]["status"] == "SCHEDULED"
        if "cancel" in actions:
            done = await v.post(forms["cancel"], token, next="/dashboard")
            assert done.status_code == 303


async def test_a_user_sees_only_its_own_tenant(herald: Any) -> None:
    async with herald(deliver=False) as h, visitor(h) as v:
        theirs = await create(h, EMAIL)
        await add_user(h, "acme@example.com", "admin", tenant="acme")
        await signed_in(v, "acme@example.com")
        assert theirs not in (await v.client.get("/dashboard/notifications")).text
        assert (await v.client.get(f"/dashboard/notifications/{theirs}")).status_code == 404

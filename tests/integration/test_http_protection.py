"""What the guard and the ETag layer promise over HTTP: media types, conditional reads,
CORS, Host, links, security headers and compression."""

from __future__ import annotations

import asyncio
import gzip
import re
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from herald.access import Scope
from herald.config import Settings
from tests.conftest import ADMIN_KEY, AUTH

pytestmark = pytest.mark.every_store

EMAIL = {"type": "EMAIL", "recipient": "guard@example.com", "subject": "Hi", "message": "Hello"}
SIGNUP = {"username": "linkuser", "email": "link@example.com", "firstName": "Link",
          "lastName": "User", "userId": 4242}  # fmt: skip
ORIGIN = "https://app.example.com"
IDENTITY = {"Accept-Encoding": "identity"}
#: Strong: a quoted opaque tag without W/.
STRONG = re.compile(r'^"[0-9a-f]{32}"$')


async def raw_status(url: str, head: str) -> int:
    """Send ``head`` (request line and headers) as written, without a body; the status back.

    For requests httpx would not send as they are: a POST without Content-Length (curl -X POST).
    """
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    await writer.drain()
    answer = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    await writer.wait_closed()
    return int(answer.split()[1])


# 1. Media types ------------------------------------------------------------------------------


async def test_a_body_that_is_not_json_is_415_on_every_json_route(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for path, method in [
            ("/api/notifications", "POST"),  # the fast path
            ("/api/events", "POST"),
            ("/api/templates/welcome-email", "PUT"),
            ("/api/notifications/bulk", "POST"),
        ]:
            for kind in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
                reply = await h.client.request(
                    method, path, content=b'{"a": 1}', headers={"Content-Type": kind}
                )
                assert reply.status_code == 415, (path, kind, reply.text)
                assert reply.headers["content-type"] == "application/json"
                body = reply.json()
                assert body["success"] is False and body["message"]
                assert body["errors"][0]["field"] == "headers.content-type"
                assert kind in body["errors"][0]["message"]
        # A body without any Content-Type is not JSON either.
        missing = await h.client.post("/api/notifications", content=b'{"type": "EMAIL"}')
        assert missing.status_code == 415
        assert missing.json()["errors"] == [
            {"field": "headers.content-type", "message": "is missing"}
        ]
        # An Idempotency-Key (the framework's door) changes nothing.
        keyed = await h.client.post(
            "/api/notifications",
            content=b"{}",
            headers={"Content-Type": "text/plain", "Idempotency-Key": "k-415"},
        )
        assert keyed.status_code == 415
        # A Content-Type without a body is a claim about a body all the same.
        claimed = await h.client.post(
            "/api/queue/email/pause", headers={"Content-Type": "text/plain"}
        )
        assert claimed.status_code == 415


async def test_json_in_all_its_spellings_is_accepted(herald: Any) -> None:
    async with herald(deliver=False) as h:
        body = httpx.Request("POST", "/", json=EMAIL).content
        for kind in (
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            "application/vnd.herald+json",
        ):
            for extra in ({}, {"Idempotency-Key": f"k-{kind}"}):
                reply = await h.client.post(
                    "/api/notifications", content=body, headers={"Content-Type": kind, **extra}
                )
                assert reply.status_code == 201, (kind, extra, reply.text)


async def test_a_post_without_body_or_content_type_passes(herald: Any) -> None:
    async with herald(deliver=False) as h:
        # As curl -X POST sends it: no Content-Length, no Content-Type.
        head = (
            f"POST /api/queue/email/pause HTTP/1.1\nHost: 127.0.0.1\n"
            f"Authorization: Bearer {ADMIN_KEY}\nConnection: close"
        )
        assert await raw_status(h.url, head) == 200
        # As httpx sends it: Content-Length: 0.
        assert (await h.client.post("/api/queue/email/resume")).status_code == 200
        # A GET is never asked for a media type, whatever it claims.
        listing = await h.client.get("/api/notifications", headers={"Content-Type": "text/plain"})
        assert listing.status_code == 200


async def test_media_type_is_checked_after_the_credential_and_the_size(herald: Any) -> None:
    async with herald(deliver=False, max_body_bytes=4096) as h:
        text = {"Content-Type": "text/plain"}
        anonymous = await h.client.post(
            "/api/notifications", content=b"x", headers={**text, "Authorization": ""}
        )
        assert anonymous.status_code == 401
        declared = await h.client.post("/api/notifications", content=b"x" * 5000, headers=text)
        assert declared.status_code == 413 and "4096" in declared.json()["message"]

        async def chunks(size: int) -> Any:
            for _ in range(size // 1000):
                yield b"x" * 1000

        streamed = await h.client.post("/api/notifications", content=chunks(10_000), headers=text)
        assert streamed.status_code == 413
        small = await h.client.post("/api/notifications", content=chunks(2000), headers=text)
        assert small.status_code == 415


async def test_forms_outside_the_json_api_are_not_refused(herald: Any) -> None:
    async with herald(deliver=False) as h:
        login = await h.client.post(
            "/dashboard/login",
            data={"email": "nobody@example.com", "password": "wrong"},
            headers={"Authorization": "", "Origin": h.url},
        )
        assert login.status_code != 415


# 2. ETags and 304 ----------------------------------------------------------------------------


async def test_a_notification_answers_with_an_etag_and_304_when_unchanged(herald: Any) -> None:
    async with herald(deliver=False) as h:
        created = (await h.client.post("/api/notifications", json=EMAIL)).json()["data"]
        path = f"/api/notifications/{created['id']}"
        first = await h.client.get(path)
        tag = first.headers["etag"]
        assert first.status_code == 200 and STRONG.match(tag), tag
        assert first.headers["cache-control"] == "private, no-cache"
        assert (await h.client.get(path)).headers["etag"] == tag  # a hash of the body

        for condition in (tag, f"W/{tag}", "*", f'"nope", {tag}', f'"a","b" , W/{tag}'):
            cached = await h.client.get(path, headers={"If-None-Match": condition})
            assert cached.status_code == 304, condition
            assert cached.content == b"" and cached.headers["etag"] == tag
            assert cached.headers["cache-control"] == "private, no-cache"
            assert "content-type" not in cached.headers
        other = await h.client.get(path, headers={"If-None-Match": '"nope"'})
        assert other.status_code == 200 and other.json() == first.json()

        # A change makes a new tag; the old one no longer matches.
        assert (await h.client.post(f"{path}/cancel")).status_code == 200
        changed = await h.client.get(path, headers={"If-None-Match": tag})
        assert changed.status_code == 200 and changed.headers["etag"] != tag
        assert changed.json()["data"]["notification"]["status"] == "CANCELLED"


async def test_every_list_answers_with_an_etag_and_304(herald: Any) -> None:
    async with herald(deliver=False) as h:
        await h.client.post("/api/notifications", json=EMAIL)
        for path in (
            "/api/notifications",
            "/api/dlq",
            "/api/events",
            "/api/signups",
            "/api/templates",
            "/api/event-types",
            "/api/keys",
        ):
            first = await h.client.get(path, headers=IDENTITY)  # gzip would make the tag weak
            assert first.status_code == 200, (path, first.text)
            tag = first.headers["etag"]
            assert STRONG.match(tag), (path, tag)
            assert first.headers["cache-control"] == "private, no-cache"
            again = await h.client.get(path, headers={"If-None-Match": tag})
            assert again.status_code == 304 and again.content == b"", path
        # What changes a list changes its tag.
        tag = (await h.client.get("/api/notifications")).headers["etag"]
        await h.client.post("/api/notifications", json=EMAIL)
        fresh = await h.client.get("/api/notifications", headers={"If-None-Match": tag})
        assert fresh.status_code == 200 and fresh.headers["etag"] != tag


async def test_only_successful_reads_are_tagged(herald: Any) -> None:
    async with herald(deliver=False) as h:
        missing = await h.client.get(
            "/api/notifications/0123456789abcdef0123456789abcdef", headers={"If-None-Match": "*"}
        )
        assert missing.status_code == 404 and "etag" not in missing.headers
        created = await h.client.post("/api/notifications", json=EMAIL)
        assert created.status_code == 201 and "etag" not in created.headers
        invalid = await h.client.get("/api/notifications", params={"limit": 1000})
        assert invalid.status_code == 422 and "etag" not in invalid.headers


# 3. CORS -------------------------------------------------------------------------------------


def cors_headers(reply: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in reply.headers.items() if k.startswith("access-control-")}


async def test_cors_is_off_by_default(herald: Any) -> None:
    async with herald(deliver=False) as h:
        preflight = await h.client.options(
            "/api/notifications",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert cors_headers(preflight) == {}
        for reply in (
            await h.client.get("/api/notifications", headers={"Origin": ORIGIN}),
            await h.client.post("/api/notifications", json=EMAIL, headers={"Origin": ORIGIN}),
            await h.client.get(
                "/api/notifications", headers={"Origin": ORIGIN, "Authorization": ""}
            ),
        ):
            assert cors_headers(reply) == {}, reply.headers


async def test_cors_answers_allowed_origins_only(herald: Any) -> None:
    async with herald(deliver=False, cors_origins=[ORIGIN]) as h:
        asked = "authorization, x-api-key, content-type, idempotency-key"
        preflight = await h.client.options(
            "/api/notifications",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
                "Authorization": "",  # a browser's preflight carries no credential
            },
        )
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        methods = preflight.headers["access-control-allow-methods"]
        assert {"GET", "POST", "PUT", "PATCH", "DELETE"} <= set(methods.split(", "))
        allowed = preflight.headers["access-control-allow-headers"].lower().split(", ")
        assert {"authorization", "x-api-key", "content-type", "idempotency-key"} <= set(allowed)
        assert "access-control-allow-credentials" not in preflight.headers
        assert "Origin" in preflight.headers["vary"]

        refused = await h.client.options(
            "/api/notifications",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Authorization": "",
            },
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        ok = await h.client.get("/api/notifications", headers={"Origin": ORIGIN})
        assert ok.headers["access-control-allow-origin"] == ORIGIN
        assert "etag" in ok.headers["access-control-expose-headers"].lower()
        assert "Origin" in ok.headers["vary"]
        # A refusal an allowed page's script must be able to read is marked too.
        denied = await h.client.get(
            "/api/notifications", headers={"Origin": ORIGIN, "Authorization": ""}
        )
        assert denied.status_code == 401
        assert denied.headers["access-control-allow-origin"] == ORIGIN

        foreign = await h.client.get(
            "/api/notifications", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in foreign.headers
        assert "Origin" in foreign.headers["vary"]
        plain = await h.client.get("/api/notifications")
        assert "access-control-allow-origin" not in plain.headers
        assert "Origin" in plain.headers["vary"]  # a cache must not reuse it for a page
        host = await h.client.get("/api/health", headers={"Origin": ORIGIN, "Host": "evil.example"})
        assert host.status_code == 400 and "Origin" in host.headers["vary"]


# 4. Host and links ---------------------------------------------------------------------------


async def test_a_foreign_host_is_refused_everywhere(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for path in ("/api/notifications", "/api/health", "/dashboard", "/dashboard/login"):
            reply = await h.client.get(path, headers={"Host": "evil.example"})
            assert reply.status_code == 400, path
            assert "evil.example" in reply.json()["message"]
        posted = await h.client.post(
            "/api/notifications", json=EMAIL, headers={"Host": "evil.example:8000"}
        )
        assert posted.status_code == 400
        for host in ("localhost", f"127.0.0.1:{h.engine.settings.port}", "[::1]:8000"):
            assert (await h.client.get("/api/health", headers={"Host": host})).status_code == 200


async def test_allowed_hosts_replace_the_default_and_star_allows_any(herald: Any) -> None:
    async with herald(deliver=False, allowed_hosts=["herald.example.com"]) as h:
        named = await h.client.get("/api/notifications", headers={"Host": "herald.example.com"})
        assert named.status_code == 200
        assert (await h.client.get("/api/notifications")).status_code == 400  # 127.0.0.1
    with pytest.raises(ValidationError, match="HERALD_PUBLIC_URL"):
        Settings(_env_file=None, allowed_hosts=["*"])  # links would follow the Host header
    public = "https://herald.example.com"
    async with herald(deliver=False, allowed_hosts=["*"], public_url=public) as h:
        for path in ("/api/notifications", "/dashboard"):
            reply = await h.client.get(path, headers={"Host": "anything.example"})
            assert reply.status_code == 200, path


async def test_verify_links_come_from_the_public_url_never_the_host(herald: Any) -> None:
    public = "https://herald.example.com/base"
    async with herald(deliver=False, allowed_hosts=["*"], public_url=public) as h:
        reply = await h.client.post("/api/signups", json=SIGNUP, headers={"Host": "evil.example"})
        assert reply.status_code == 201, reply.text
        event_id = reply.json()["data"]["id"]
        [welcome] = (await h.engine.store.event_notifications("default", [event_id]))[event_id]
        links = re.findall(r"https?://[^\s\"'<>]+/verify/[A-Za-z0-9_-]+", welcome.body)
        assert links and all(link.startswith(f"{public}/api/signups/verify/") for link in links)
        assert "evil.example" not in welcome.body + (welcome.html or "")


# 5. Security headers and gzip ----------------------------------------------------------------


def assert_secured(what: str, reply: httpx.Response) -> None:
    headers = reply.headers
    assert headers.get("x-content-type-options") == "nosniff", what
    # The dashboard keeps its own pages' referrers (same-origin); nothing else leaves.
    assert headers.get("referrer-policy") in ("no-referrer", "same-origin"), what
    assert headers.get("x-frame-options") == "DENY", what
    assert "frame-ancestors" in headers.get("content-security-policy", ""), what


async def test_every_answer_carries_the_security_headers(herald: Any) -> None:
    async with herald(deliver=False, max_body_bytes=4096, cors_origins=[ORIGIN]) as h:
        c = h.client
        access = h.engine.store.access
        reader, _ = await access.create_key("default", {Scope.READ}, name="r")
        read = {"Authorization": f"Bearer {reader}"}
        slow, _ = await access.create_key("default", {Scope.SEND}, name="slow", rate_limit="1/h")
        created = await c.post("/api/notifications", json=EMAIL)
        path = f"/api/notifications/{created.json()['data']['id']}"
        await c.post("/api/notifications", json=EMAIL, headers={"Authorization": f"Bearer {slow}"})
        answers = {
            200: await c.get("/api/notifications"),
            201: created,
            304: await c.get(path, headers={"If-None-Match": "*"}),
            400: await c.get("/api/notifications", headers={"Host": "evil.example"}),
            401: await c.get("/api/notifications", headers={"Authorization": ""}),
            403: await c.post("/api/notifications", json=EMAIL, headers=read),
            404: await c.get("/api/notifications/0123456789abcdef0123456789abcdef"),
            413: await c.post("/api/notifications", json={**EMAIL, "message": "x" * 5000}),
            415: await c.post(
                "/api/notifications", content=b"{}", headers={"Content-Type": "text/plain"}
            ),
            422: await c.post("/api/notifications", json={"type": "EMAIL"}),
            429: await c.post(
                "/api/notifications", json=EMAIL, headers={"Authorization": f"Bearer {slow}"}
            ),
        }
        for status, reply in answers.items():
            assert reply.status_code == status, (status, reply.status_code, reply.text)
            assert_secured(str(status), reply)
        assert answers[429].headers["retry-after"]
        dashboard = await c.get("/dashboard")
        assert dashboard.status_code == 200 and dashboard.headers["content-type"].startswith(
            "text/html"
        )
        assert_secured("dashboard", dashboard)
        login = await c.get("/dashboard", headers={"Authorization": ""})
        assert login.status_code == 303
        assert_secured("dashboard redirect", login)
        css = await c.get("/dashboard/static/dashboard.css", headers={"Authorization": ""})
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert_secured("css", css)
        preflight = await c.options(
            "/api/notifications",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        )
        assert_secured("preflight", preflight)


async def test_large_json_is_gzipped_for_clients_that_ask(herald: Any) -> None:
    async with herald(deliver=False) as h:
        for i in range(10):
            await h.client.post("/api/notifications", json={**EMAIL, "message": f"n{i} " * 20})
        plain = await h.client.get("/api/notifications", headers={"Accept-Encoding": "identity"})
        assert len(plain.content) > 1024 and "content-encoding" not in plain.headers
        assert plain.headers["content-length"] == str(len(plain.content))

        async with httpx.AsyncClient(base_url=h.url, headers=AUTH) as raw:
            request = raw.build_request(
                "GET", "/api/notifications", headers={"Accept-Encoding": "gzip"}
            )
            zipped = await raw.send(request, stream=True)
            packed = b"".join([chunk async for chunk in zipped.aiter_raw()])
        assert zipped.headers["content-encoding"] == "gzip"
        assert "Accept-Encoding" in zipped.headers["vary"]
        assert len(packed) < len(plain.content)
        assert gzip.decompress(packed) == plain.content
        assert_secured("gzip", zipped)
        # The compressed answer is other bytes: its tag is weak, and still revalidates.
        assert zipped.headers["etag"] == f"W/{plain.headers['etag']}"
        again = await h.client.get(
            "/api/notifications",
            headers={"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]},
        )
        assert again.status_code == 304

        small = await h.client.get("/api/health", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers  # below 1 KiB: not worth it
        created = await h.client.post(
            "/api/notifications", json=EMAIL, headers={"Accept-Encoding": "gzip"}
        )
        assert created.status_code == 201 and "content-encoding" not in created.headers

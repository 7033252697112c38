"""``HEAD`` on every route that serves ``GET``: the same status and headers, no body.

The API, the dashboard, health, the docs and static files alike, through
Herald's own HTTP front (uvicorn with ``httpserver``'s protocol), as a load
balancer's probe or a link checker would send it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from herald.api.app import create_app
from herald.api.authz import endpoints
from tests.conftest import ADMIN_KEY
from tests.integration.test_seed_routes import SIGNUP

EMAIL = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}
#: Answers whose body (so its length and ETag) changes from one call to the next.
VOLATILE = {"/api/health", "/api/metrics", "/api/queue-health"}
#: Framing, not content: a streamed (gzipped) GET is chunked, its HEAD has no body to chunk.
NOT_COMPARED = {"date", "transfer-encoding"}
#: Present on both, but each request has its own.
OWN = {"x-request-id"}


async def get_urls(h: Any) -> list[str]:
    """Every GET route of the app, with its path parameter filled in where one is known."""
    created = await h.client.post("/api/notifications", json=EMAIL)
    signup = await h.client.post("/api/signups", json=SIGNUP)
    assert signup.status_code == 201, signup.text
    event = signup.json()["data"]["id"]
    values = {"notification_id": created.json()["data"]["_id"], "event_id": event,
              "signup_id": event, "name": "signup"}  # fmt: skip
    urls = []
    for method, path, _ in endpoints(create_app(h.engine.settings, deliver=False)):
        if method != "GET":
            continue
        for name, value in values.items():
            path = path.replace(f"{{{name}}}", value)
        if "{" not in path:
            urls.append(path)
    return [*urls, "/dashboard/static/dashboard.css", "/docs/assets/swagger-ui.css"]


async def test_head_answers_like_get_without_a_body_on_every_get_route(herald: Any) -> None:
    async with herald(deliver=False) as h:
        urls = await get_urls(h)
        assert len(urls) > 30 and "/api/health" in urls and "/dashboard" in urls
        for url in urls:
            got, head = await h.client.get(url), await h.client.head(url)
            assert head.status_code == got.status_code != 405, url
            assert head.content == b"", url
            names = {k for k in got.headers if k not in NOT_COMPARED}
            assert {k for k in head.headers if k not in NOT_COMPARED} == names, url
            if url not in VOLATILE:  # Content-Length among them (of the gzipped body)
                for name in names - OWN:
                    assert head.headers[name] == got.headers[name], (url, name)

        # Refusals too: a HEAD is refused exactly as its GET would be.
        for url, headers in (("/api/notifications", {"Authorization": ""}),
                             ("/api/notifications/bulk", {}),  # a POST-only route
                             ("/dashboard", {"Authorization": ""})):  # fmt: skip
            got = await h.client.get(url, headers=headers)
            head = await h.client.head(url, headers=headers)
            assert (head.status_code, head.content) == (got.status_code, b""), url
            assert head.headers.get("location") == got.headers.get("location"), url


async def test_a_head_answer_carries_no_body_on_the_wire(herald: Any) -> None:
    """The next answer on the connection starts right after the HEAD answer's headers,
    though those announce a body's length: nothing of the body was sent."""
    async with herald(deliver=False) as h:
        await h.client.post("/api/notifications", json=EMAIL)
        expected = (await h.client.get("/api/notifications")).content
        address = urlsplit(h.url)
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        head = (f"HEAD /api/notifications HTTP/1.1\r\nHost: {address.netloc}\r\n"
                f"Authorization: Bearer {ADMIN_KEY}\r\n\r\n")  # fmt: skip
        health = f"GET /api/health HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n\r\n"
        writer.write((head + health).encode())
        await writer.drain()
        async with asyncio.timeout(10):
            wire = await reader.read(-1)
        writer.close()
        first, _, rest = wire.partition(b"\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 200 "), first
        assert f"content-length: {len(expected)}".encode() in first.lower()
        assert rest.startswith(b"HTTP/1.1 200 "), rest[:200]
        assert rest.endswith(b"}"), "the GET that followed has its body"

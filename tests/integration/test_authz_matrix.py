"""The authorization matrix, built from the application's own route table.

Every route the app serves is tried three ways: with no credential (401, or
the dashboard's redirect to its login page), with a key that holds every
scope but the one the route declared (403), and with another tenant's key on
tenant A's resources (404, exactly like an id that does not exist, and absent
from every list, count and stat). A route added later joins each check by
itself; one whose path names a resource this file cannot fill fails the test
until it is added to ``RESOURCES``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from herald.access import Scope
from herald.api import authz
from herald.api.app import create_app
from tests.conftest import make_settings

pytestmark = pytest.mark.every_store

PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")
ALL_BUT_ADMIN = [Scope.SEND, Scope.READ, Scope.MANAGE]
SMS_TO = "+14155550123"


def table() -> list[tuple[str, str, Scope | None]]:
    app = create_app(make_settings_for_table())
    return [(m, p, authz.route_scope(r)) for m, p, r in authz.endpoints(app)]


def make_settings_for_table() -> Any:
    import tempfile
    from pathlib import Path

    return make_settings(Path(tempfile.mkdtemp()))


def fill(path: str, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AssertionError(f"{path}: add {name!r} to the matrix's resources")
        return values[name]

    return PARAM.sub(one, path)


def body_for(method: str) -> dict[str, Any] | None:
    return {} if method in ("POST", "PUT", "PATCH") else None


async def call(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> httpx.Response:
    body = kw.pop("json", body_for(method))
    return await client.request(method, path, json=body, follow_redirects=False, **kw)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


DUMMY = {"notification_id": "0" * 32, "name": "email", "event_id": "0" * 32,
         "signup_id": "0" * 32, "key_id": "0" * 32, "token": "x" * 43,
         "recipient": "nobody@example.invalid"}  # fmt: skip


async def test_every_route_needs_a_credential(herald: Any) -> None:
    async with (
        herald(deliver=False, anonymous_rate_limit="100000/min") as h,
        httpx.AsyncClient(base_url=h.url) as anonymous,
    ):
        checked = 0
        for method, path, _scope in table():
            reply = await call(anonymous, method, fill(path, DUMMY))
            if authz.is_public(method, path):
                # Public: whatever it answers, it never asks for a credential.
                assert reply.status_code != 401, (method, path)
                assert "www-authenticate" not in reply.headers, (method, path)
                continue
            checked += 1
            if path.startswith("/dashboard") and method == "GET":
                assert reply.status_code == 303, (method, path, reply.status_code)
                assert reply.headers["location"].startswith("/dashboard/login?next=")
            else:
                assert reply.status_code == 401, (method, path, reply.status_code, reply.text)
                assert reply.headers["www-authenticate"].startswith("Bearer")
        assert checked >= 50, "the table lists every route"


async def test_every_route_refuses_a_key_without_its_scope(herald: Any) -> None:
    async with herald(deliver=False) as h:
        access = h.engine.store.access
        keys = {
            scope: (await access.create_key("default", set(ALL_BUT_ADMIN) - {scope}))[0]
            for scope in Scope
        }
        for method, path, scope in table():
            if scope is None:
                continue
            assert not authz.is_public(method, path), f"{method} {path} is public and scoped"
            reply = await call(h.client, method, fill(path, DUMMY), headers=bearer(keys[scope]))
            assert reply.status_code == 403, (method, path, scope, reply.status_code, reply.text)
            if path.startswith("/api"):
                assert repr(scope.value) in reply.json()["message"], (method, path)


async def make_tenant_a(h: Any, key: dict[str, str]) -> dict[str, str]:
    """Tenant A's resources, one of each kind a route path can name."""
    c = h.client
    dead = await c.post("/api/notifications", headers=key, json={
        "type": "SMS", "recipient": SMS_TO, "message": "alpha secret message"})  # fmt: skip
    assert dead.status_code == 201, dead.text
    dead_id = dead.json()["data"]["id"]
    deadline = asyncio.get_running_loop().time() + 10
    while (await h.engine.store.get("alpha", dead_id)).status.value != "FAILED":
        assert asyncio.get_running_loop().time() < deadline, "never dead-lettered"
        await asyncio.sleep(0.02)
    template = {"name": "alpha-only", "channel": "EMAIL", "locale": "en", "subject": "A {{ x }}",
                "text": "alpha template {{ x }}"}  # fmt: skip
    assert (await c.post("/api/templates", headers=key, json=template)).status_code == 201
    kind = {"name": "alpha-kind", "description": "A's own",
            "targets": [{"channel": "EMAIL", "template": "alpha-only"}]}  # fmt: skip
    assert (await c.post("/api/event-types", headers=key, json=kind)).status_code == 201
    signup = await c.post("/api/signups", headers=key, json={
        "email": "alpha-user@example.com", "username": "alphauser", "userId": 4242})  # fmt: skip
    assert signup.status_code == 201, signup.text
    signup_id = signup.json()["data"]["id"]
    body = {"type": "alpha-kind", "recipient": "alpha-event@example.com", "data": {"x": 1}}
    event = await c.post("/api/events", headers=key, json=body)
    assert event.status_code == 201, event.text
    [message] = [m for m in await h.engine.store.mailbox("alpha", 50)
                 if "alpha-user@example.com" in m.recipient]  # fmt: skip
    token = re.search(r"verify/([A-Za-z0-9_-]{20,})", message.body)
    assert token, message.body
    own_key = await c.post("/api/keys", headers=key, json={"name": "alpha-ci", "scopes": ["read"]})
    listed = await c.post("/api/suppressions", headers=key, json={"recipient": ALPHA_SUPPRESSED})
    assert listed.status_code == 201, listed.text
    category = {"unsubscribable": True, "description": "A's own"}
    assert (await c.put(f"/api/categories/{ALPHA_CATEGORY}", headers=key,
                        json=category)).status_code == 200  # fmt: skip
    return {
        "notification_id": dead_id, "event_id": event.json()["data"]["event"]["id"],
        "signup_id": signup_id, "key_id": own_key.json()["data"]["id"], "token": token.group(1),
        "template": "alpha-only", "event_type": "alpha-kind", "recipient": ALPHA_SUPPRESSED,
        "category": ALPHA_CATEGORY,
    }  # fmt: skip


#: Which of tenant A's resources each path parameter names, by route prefix.
RESOURCES = {"notification_id": "notification_id", "event_id": "event_id",
             "signup_id": "signup_id", "key_id": "key_id", "token": "token",
             "recipient": "recipient"}  # fmt: skip


def names_for(path: str, a: dict[str, str]) -> dict[str, str]:
    values = {param: a[resource] for param, resource in RESOURCES.items()}
    if path.startswith("/api/templates/"):
        values["name"] = a["template"]
    elif path.startswith("/api/event-types/"):
        values["name"] = a["event_type"]
    elif path.startswith("/api/categories/"):
        values["name"] = a["category"]
    return values


#: Bodies that pass validation, so the answer is about the resource, not the body.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PUT", "/api/templates/{name}"): {"channel": "EMAIL", "locale": "en", "text": "t"},
    ("PUT", "/api/event-types/{name}"): {"targets": [{"channel": "EMAIL", "template": "x"}]},
    ("POST", "/api/templates/{name}/render"): {"data": {}},
}
#: Routes that make the caller's own resource of the name they are given (checked below):
#: with tenant A's name, B gets one of its own, and A's stays as it was.
UPSERTS = {("PUT", "/api/categories/{name}")}
ALPHA_SUPPRESSED = "alpha-suppressed@example.com"
ALPHA_CATEGORY = "alpha-cat"


async def test_another_tenants_resources_are_not_found(herald: Any) -> None:
    async with herald(sms_providers=["fault"], fault_failure_rate=1,
                      fault_error="permanent") as h:  # fmt: skip
        access = h.engine.store.access
        alpha = bearer((await access.create_key("alpha", ALL_BUT_ADMIN, name="alpha"))[0])
        beta = bearer((await access.create_key("beta", ALL_BUT_ADMIN, name="beta"))[0])
        a = await make_tenant_a(h, alpha)
        markers = [a["notification_id"], a["event_id"], a["signup_id"], a["key_id"], "alpha-only",
                   "alpha-kind", "alpha-user@example.com", "alpha secret", SMS_TO,
                   ALPHA_SUPPRESSED, ALPHA_CATEGORY]  # fmt: skip

        for method, path, scope in table():
            if scope is None or scope is Scope.ADMIN or (method, path) in UPSERTS:
                continue  # public, global (queues, metrics): nothing of a tenant's; or below
            if PARAM.search(path) and not path.startswith("/api/queue/"):
                url = fill(path, names_for(path, a))
                same_site = {"Origin": h.url} if path.startswith("/dashboard") else {}
                body = BODIES.get((method, path), body_for(method))
                reply = await call(h.client, method, url, headers={**beta, **same_site}, json=body)
                unknown = await call(h.client, method, fill(path, DUMMY),
                                     headers={**beta, **same_site}, json=body)  # fmt: skip
                # Exactly like an id that does not exist: same status, same words.
                assert reply.status_code == unknown.status_code, (method, path, reply.text)
                assert _unnamed(reply.text, a) == _unnamed(unknown.text, DUMMY), (method, path)
                if path.startswith("/api"):
                    assert reply.status_code == 404, (method, path, reply.status_code, reply.text)
                if method == "GET":
                    own = await call(h.client, method, url, headers=alpha)
                    assert own.status_code == 200, ("A's own id is real", path, own.text)
            elif method == "GET":
                reply = await call(h.client, method, path, headers=beta)
                assert reply.status_code == 200, (path, reply.status_code)
                leaked = [m for m in markers if m in reply.text]
                assert not leaked, (path, leaked)

        put = await h.client.put(f"/api/categories/{ALPHA_CATEGORY}", headers=beta,
                                 json={"unsubscribable": False})  # fmt: skip
        assert put.status_code == 200, put.text
        [kept] = (await h.client.get("/api/categories", headers=alpha)).json()["data"]["categories"]
        assert kept["unsubscribable"] and kept["description"] == "A's own"
        gone = await h.client.delete(f"/api/suppressions/{ALPHA_SUPPRESSED}", headers=alpha)
        assert gone.status_code == 200, "beta's DELETE left A's entry where it was"

        stats = (await h.client.get("/api/notifications/stats/system", headers=beta)).json()
        assert stats["data"]["total"] == 0
        own = (await h.client.get("/api/notifications/stats/system", headers=alpha)).json()
        assert own["data"]["total"] >= 2


def _unnamed(text: str, values: dict[str, str]) -> str:
    """An answer with the ids it names taken out, so two answers can be compared."""
    for value in values.values():
        text = text.replace(value, "ID")
    return re.sub(r"instance [\w.:-]+", "", text)


def test_an_app_with_an_undeclared_route_does_not_build(tmp_path: Any) -> None:
    app = create_app(make_settings(tmp_path))

    async def sneaky() -> dict[str, str]:
        return {}

    app.add_api_route("/api/sneaky", sneaky)
    with pytest.raises(RuntimeError, match="GET /api/sneaky declares no scope"):
        authz.verify(app)
    app.add_api_route("/api/declared", sneaky, dependencies=[authz.requires(Scope.READ)])
    assert ("GET", "/api/declared", Scope.READ) in [
        (m, p, authz.route_scope(r)) for m, p, r in authz.endpoints(app)
    ]

"""``POST /api/queue/{name}/clean`` (seed 002's ``queue.clean``): counts, tenants, scope, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from herald.access import Scope

pytestmark = pytest.mark.every_store

SMS_TO = "+14155550123"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def send(h: Any, tenant: str, key: dict[str, str], body: dict[str, Any], status: str) -> str:
    """Send as ``tenant`` and wait until the notification is ``status``; its id."""
    reply = await h.client.post("/api/notifications", headers=key, json=body)
    assert reply.status_code == 201, reply.text
    note_id: str = reply.json()["data"]["id"]
    deadline = asyncio.get_running_loop().time() + 10
    while (await h.engine.store.get(tenant, note_id)).status.value != status:
        assert asyncio.get_running_loop().time() < deadline, f"never {status}"
        await asyncio.sleep(0.02)
    return note_id


async def test_clean_removes_the_callers_old_rows_of_a_lane(herald: Any) -> None:
    async with herald(sms_providers=["fault"], fault_failure_rate=1,
                      fault_error="permanent") as h:  # fmt: skip
        access = h.engine.store.access
        every = [Scope.SEND, Scope.READ, Scope.MANAGE]
        alpha = bearer((await access.create_key("alpha", every, name="alpha"))[0])
        beta = bearer((await access.create_key("beta", every, name="beta"))[0])
        reader = bearer((await access.create_key("alpha", [Scope.READ], name="reader"))[0])
        mail = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}
        mine = [await send(h, "alpha", alpha, mail, "SENT") for _ in range(3)]
        text = {"type": "SMS", "recipient": SMS_TO, "message": "m"}
        dead = await send(h, "alpha", alpha, text, "FAILED")
        theirs = await send(h, "beta", beta, mail, "SENT")

        def clean(key: dict[str, str], queue: str = "email", **body: Any) -> Any:
            return h.client.post(f"/api/queue/{queue}/clean", headers=key, json=body)

        refused = await clean(reader, status="completed", olderThan=0)
        assert refused.status_code == 403 and "'manage'" in refused.json()["message"]

        # Tenant B's clean never reaches A's rows.
        reply = await clean(beta, status="completed", olderThan=0)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"success": True, "message": "1 removed from email", "data": {
            "queue": "email", "status": "completed", "olderThan": 0, "removed": 1}}  # fmt: skip
        assert (await h.client.get(f"/api/notifications/{theirs}", headers=beta)).status_code == 404
        for note_id in mine:
            assert (await h.client.get(f"/api/notifications/{note_id}", headers=alpha)).is_success

        assert (await clean(alpha, status="completed", olderThan=3600)).json()["data"][
            "removed"
        ] == 0, "nothing is an hour old"
        assert (await clean(alpha, status="failed", olderThan=0)).json()["data"]["removed"] == 0
        limited = await clean(alpha, status="SENT", olderThan=0, limit=2)
        assert limited.json()["data"]["removed"] == 2
        gone = [(await h.client.get(f"/api/notifications/{n}", headers=alpha)).status_code
                for n in mine]  # fmt: skip
        assert gone == [404, 404, 200], "the oldest go first"
        alias = await clean(alpha, "mail", status="completed", olderThan=0)
        assert alias.json()["data"]["removed"] == 1 and alias.json()["data"]["queue"] == "email"

        failed = await clean(alpha, "dlq", status="failed", olderThan=0)
        assert failed.json()["data"]["removed"] == 1
        assert (await h.client.get(f"/api/notifications/{dead}", headers=alpha)).status_code == 404
        assert (await clean(alpha, "nowhere", status="failed", olderThan=0)).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"olderThan": 0}, "status"),
        ({"status": "done", "olderThan": 0}, "status"),
        ({"status": "failed"}, "olderThan"),
        ({"status": "failed", "olderThan": -1}, "olderThan"),
        ({"status": "failed", "olderThan": 0, "limit": 0}, "limit"),
        ({"status": "failed", "olderThan": 0, "limit": 10_001}, "limit"),
    ],
)
async def test_clean_refuses_a_bad_body_naming_the_field(
    herald: Any, body: dict[str, Any], field: str
) -> None:
    async with herald(deliver=False) as h:
        reply = await h.client.post("/api/queue/email/clean", json=body)
        assert reply.status_code == 422, reply.text
        assert [e["field"] for e in reply.json()["errors"]] == [field]


async def test_seed_004s_group_names_clean_every_lane_they_mean(herald: Any) -> None:
    """``notifications`` is every channel lane (seed 004), within one limit; ``high_priority``
    is no lane in Herald and says so."""
    async with herald() as h:
        mail = {"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"}
        text = {"type": "SMS", "recipient": SMS_TO, "message": "m"}
        sent = [await send(h, "default", {}, body, "SENT") for body in (mail, text, mail)]
        clean = "/api/queue/{}/clean"
        body = {"status": "completed", "olderThan": 0}
        one = await h.client.post(clean.format("notifications"), json={**body, "limit": 2})
        assert one.status_code == 200, one.text
        assert one.json()["data"] == {"queue": "notifications", "status": "completed",
                                      "olderThan": 0, "removed": 2}  # fmt: skip
        rest = await h.client.post(clean.format("notifications"), json=body)
        assert rest.json()["data"]["removed"] == 1
        for note_id in sent:
            assert (await h.client.get(f"/api/notifications/{note_id}")).status_code == 404
        refused = await h.client.post(clean.format("high_priority"), json=body)
        assert refused.status_code == 422

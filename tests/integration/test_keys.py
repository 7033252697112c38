"""API keys over HTTP and the CLI: shown once, scoped, revocable, never read back."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError

from herald.config import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.every_store


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_key(h: Any, scopes: list[str], **fields: Any) -> dict[str, Any]:
    reply = await h.client.post("/api/keys", json={"name": "k", "scopes": scopes, **fields})
    assert reply.status_code == 201, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


async def test_a_key_is_shown_once_and_never_read_back(herald: Any) -> None:
    async with herald() as h:
        made = await new_key(h, ["send", "read"], name="checkout")
        secret = made["key"]
        assert secret.startswith("hk_") and len(secret) >= 46  # 256 bits in base64url
        assert secret.startswith(made["prefix"]) and made["prefix"] != secret
        assert made["tenant"] == "default" and made["scopes"] == ["send", "read"]

        listed = await h.client.get("/api/keys")
        assert secret not in listed.text
        assert [k["name"] for k in listed.json()["data"]["keys"]] == ["checkout"]
        stored = await h.engine.store.access.keys(None)
        assert all(secret not in repr(k) for k in stored)

        reply = await h.client.get("/api/notifications", headers=bearer(secret))
        assert reply.status_code == 200
        reply = await h.client.get(
            "/api/notifications", headers={"X-API-Key": secret, "Authorization": ""}
        )
        assert reply.status_code == 200


async def test_missing_wrong_and_underscoped_credentials(herald: Any) -> None:
    async with herald() as h:
        async with httpx.AsyncClient(base_url=h.url) as anonymous:
            none = await anonymous.get("/api/notifications")
            wrong = await anonymous.get("/api/notifications", headers=bearer("hk_nope"))
        for reply in (none, wrong):
            assert reply.status_code == 401
            assert reply.headers["www-authenticate"].startswith("Bearer")
            assert reply.json()["success"] is False
        assert "unknown, revoked or expired" in wrong.json()["message"]

        reader = (await new_key(h, ["read"]))["key"]
        refused = await h.client.post(
            "/api/notifications",
            headers=bearer(reader),
            json={"type": "EMAIL", "recipient": "a@example.com", "subject": "s", "message": "m"},
        )
        assert refused.status_code == 403
        assert "'send'" in refused.json()["message"]


async def test_nobody_grants_more_than_they_hold(herald: Any) -> None:
    async with herald() as h:
        manager = bearer((await new_key(h, ["manage", "read"]))["key"])
        for scopes in (["admin"], ["send"], ["manage", "send"]):
            reply = await h.client.post(
                "/api/keys", headers=manager, json={"name": "x", "scopes": scopes}
            )
            assert reply.status_code == 403, scopes
        ok = await h.client.post(
            "/api/keys", headers=manager, json={"name": "x", "scopes": ["read"]}
        )
        assert ok.status_code == 201
        other = await h.client.post(
            "/api/keys", headers=manager, json={"name": "x", "scopes": ["read"], "tenant": "acme"}
        )
        assert other.status_code == 403
        made = await new_key(h, ["send"], tenant="acme")  # the admin may name a tenant
        assert made["tenant"] == "acme"
        mine = await h.client.get("/api/keys", headers=manager)
        assert made["id"] not in mine.text, "a tenant never sees another tenant's keys"
        gone = await h.client.delete(f"/api/keys/{made['id']}", headers=manager)
        assert gone.status_code == 404


async def test_revoked_and_expired_keys_stop_working(herald: Any) -> None:
    async with herald() as h:
        made = await new_key(h, ["read"])
        assert (await h.client.get("/api/keys", headers=bearer(made["key"]))).status_code == 403
        assert (
            await h.client.get("/api/providers", headers=bearer(made["key"]))
        ).status_code == 200
        assert (await h.client.delete(f"/api/keys/{made['prefix']}")).status_code == 200
        assert (
            await h.client.get("/api/providers", headers=bearer(made["key"]))
        ).status_code == 401
        revoked = await h.client.get("/api/keys", params={"revoked": "true"})
        [shown] = [k for k in revoked.json()["data"]["keys"] if k["id"] == made["id"]]
        assert shown["revokedAt"] is not None

        brief = await new_key(h, ["read"], expiresInDays=1 / 86_400)  # one second
        deadline = asyncio.get_running_loop().time() + 10
        while (
            await h.client.get("/api/providers", headers=bearer(brief["key"]))
        ).status_code != 401:
            assert asyncio.get_running_loop().time() < deadline, "the key never expired"
            await asyncio.sleep(0.1)


async def clear_of_a_minute_boundary() -> None:
    """Rate windows are whole minutes: start a burst well inside one, never astride two."""
    into = time.time() % 60
    if into > 45:
        await asyncio.sleep(60.5 - into)


async def test_the_rate_limit_is_per_key(herald: Any) -> None:
    async with herald() as h:
        await clear_of_a_minute_boundary()
        limited = bearer((await new_key(h, ["read"], rateLimit="100/min"))["key"])
        other = bearer((await new_key(h, ["read"], rateLimit="100/min"))["key"])
        answers = [(await h.client.get("/api/providers", headers=limited)) for _ in range(101)]
        assert [r.status_code for r in answers[:100]] == [200] * 100
        over = answers[100]
        assert over.status_code == 429
        assert 1 <= int(over.headers["retry-after"]) <= 60
        assert over.headers["ratelimit-policy"] == '"default";q=100;w=60'
        assert over.headers["ratelimit"].startswith('"default";r=0;t=')
        assert (await h.client.get("/api/providers", headers=other)).status_code == 200


async def test_guessing_keys_is_limited_per_address(herald: Any) -> None:
    async with herald(anonymous_rate_limit="10/min") as h:
        await clear_of_a_minute_boundary()
        async with httpx.AsyncClient(base_url=h.url) as guesser:
            codes = [
                (await guesser.get("/api/providers", headers=bearer(f"hk_guess{i}"))).status_code
                for i in range(12)
            ]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
        # Callers with a valid key are not held back by the guesser's address budget.
        assert (await h.client.get("/api/providers")).status_code == 200


async def test_auth_off_takes_every_caller_as_an_admin(herald: Any) -> None:
    async with herald(auth="off") as h, httpx.AsyncClient(base_url=h.url) as anonymous:
        assert (await anonymous.get("/api/keys")).status_code == 200
        assert (await anonymous.post("/api/queue/email/pause")).status_code == 200


async def test_auth_off_says_so_at_every_start(herald: Any) -> None:
    with structlog.testing.capture_logs() as logged:
        for _ in range(2):
            async with herald(auth="off", deliver=False):
                pass
        async with herald(deliver=False):
            pass
    warnings = [e for e in logged if e["event"] == "auth_off"]
    assert len(warnings) == 2, "one warning per start with HERALD_AUTH=off, none without"
    for warning in warnings:
        assert warning["log_level"] == "warning"
        assert warning["host"] == "127.0.0.1" and "local use only" in warning["detail"]


async def test_using_a_key_sets_its_last_used_time(herald: Any) -> None:
    async with herald() as h:
        made = await new_key(h, ["read"])

        async def last_used() -> str | None:
            keys = (await h.client.get("/api/keys")).json()["data"]["keys"]
            [shown] = [k for k in keys if k["id"] == made["id"]]
            used: str | None = shown["lastUsedAt"]
            return used

        assert await last_used() is None, "a key nobody used has no last-used time"
        before = time.time()
        assert (await h.client.get("/api/providers", headers=bearer(made["key"]))).is_success
        after = time.time()
        deadline = asyncio.get_running_loop().time() + 5
        while (used := await last_used()) is None:  # written in the background
            assert asyncio.get_running_loop().time() < deadline, "lastUsedAt was never set"
            await asyncio.sleep(0.05)
        at = datetime.fromisoformat(used.replace("Z", "+00:00")).timestamp()
        assert before - 0.01 <= at <= after + 0.01, (before, used, after)


def test_auth_off_is_only_for_loopback() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        Settings(_env_file=None, auth="off", host="0.0.0.0")
    assert Settings(_env_file=None, auth="off", host="127.0.0.1").auth == "off"
    assert Settings(_env_file=None, auth="off", host="::1").auth == "off"


async def test_first_start_writes_an_admin_key_file(
    tmp_path: Path,
    herald_store: str,
    database_url_for_herald: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from herald.api.app import create_app
    from tests.integration.conftest import serve_app

    key_file = tmp_path / "secret" / "admin.key"
    settings = make_settings(tmp_path, admin_key=None, admin_key_file=str(key_file),
                             database_url=database_url_for_herald)  # fmt: skip
    caplog.set_level("DEBUG")
    # Herald's log lines are structlog's: captured here with the processors that
    # turn an exception into text, so a traceback would be searched too.
    processors = [structlog.processors.format_exc_info]
    with structlog.testing.capture_logs(processors=processors) as logged:
        async with serve_app(create_app(settings, deliver=False), settings.port) as url:
            secret = key_file.read_text().strip()
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            async with httpx.AsyncClient(base_url=url, headers=bearer(secret)) as client:
                keys = (await client.get("/api/keys")).json()["data"]["keys"]
                assert [(k["name"], k["scopes"]) for k in keys] == [("first-admin", ["admin"])]
    [created] = [e for e in logged if e["event"] == "admin_key_created"]
    assert created.get("path") == str(key_file), "the operator is told where the key is"
    assert secret.startswith(created["prefix"]) and created["prefix"] != secret
    printed = capfd.readouterr()
    everything = " ".join([repr(logged), printed.out, printed.err, caplog.text])
    assert secret not in everything, "the key itself is never logged"
    key_file.unlink()
    async with serve_app(create_app(settings, deliver=False), settings.port):
        pass
    assert not key_file.exists(), "a store that holds a key gets no second one"


def test_cli_create_prints_the_key_alone(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"

    def herald(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "herald.cli", "keys", *args],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    made = herald("create", "--tenant", "acme", "--scopes", "send,read", "--name", "ci",
                  "--expires", "30")  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert made.stdout == secret + "\n" and secret.startswith("hk_")
    listed = herald("list", "--tenant", "acme")
    assert secret[:12] in listed.stdout and "ci" in listed.stdout and secret not in listed.stdout
    assert "send,read" in listed.stdout
    assert herald("list", "--tenant", "other").stdout.count("hk_") == 0
    assert herald("create", "--scopes", "root").returncode == 2
    revoked = herald("revoke", secret[:12])
    assert revoked.returncode == 0, revoked.stderr
    assert herald("revoke", secret[:12]).returncode == 1
    assert herald("list").stdout.count("hk_") == 0

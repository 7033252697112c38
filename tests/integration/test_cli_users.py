"""`herald users`: dashboard accounts made and changed from the shell, then used to sign in."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from herald import ops
from herald.access import Role, verify_password
from herald.cli import main
from herald.store.sqlite import SQLiteStore

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``users("create", …, input=…)`` runs ``herald users …`` on a database in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    # The commands configure logging for a terminal; leave this process's logging alone.
    monkeypatch.setattr(ops, "configure", lambda level: None)
    env = {"HERALD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"}
    runner = CliRunner(env=env)

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(main, ["users", *args], input=input, catch_exceptions=False)

    yield invoke


def stored(tmp_path: Path, method: str, *args: Any) -> Any:
    async def ask() -> Any:
        store = SQLiteStore(str(tmp_path / "cli.db"))
        await store.open()
        try:
            return await getattr(store.access, method)(*args)
        finally:
            await store.close()

    return asyncio.run(ask())


def test_create_asks_twice_and_keeps_only_a_hash(users: Any, tmp_path: Path) -> None:
    made = users("create", "--tenant", "acme", "--role", "operator", "Ops@Example.com",
                 input=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "created operator ops@example.com in tenant acme" in made.output
    assert PASSWORD not in made.output, "the prompt does not echo"
    user = stored(tmp_path, "user", "ops@example.com")
    assert user.tenant_id == "acme" and user.role is Role.OPERATOR and not user.disabled
    assert PASSWORD not in user.password_hash and user.password_hash.startswith("scrypt$")
    assert verify_password(PASSWORD, user.password_hash)

    again = users("create", "--tenant", "acme", "--role", "viewer", "ops@example.com",
                  "--password-stdin", input=f"{PASSWORD}\n")  # fmt: skip
    assert again.exit_code == 1 and "exists already" in again.output


def test_create_refuses_bad_input(users: Any, tmp_path: Path) -> None:
    base = ["create", "--tenant", "acme", "--role", "viewer"]
    mismatch = users(*base, "a@example.com", input=f"{PASSWORD}\n{PASSWORD}x\n")
    assert mismatch.exit_code != 0 and "do not match" in mismatch.output.lower()
    short = users(*base, "a@example.com", "--password-stdin", input="nine char\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    long = users(*base, "a@example.com", "--password-stdin", input="p" * 1025 + "\n")
    assert long.exit_code == 1 and "at most 1024" in long.output
    assert users(*base[:-2], "--role", "root", "a@example.com").exit_code == 2
    assert users("create", "--tenant", "no spaces", "--role", "viewer", "a@b.com").exit_code == 2
    assert users(*base, "not-an-email").exit_code == 2
    assert users(*base, "a" * 250 + "@example.com").exit_code == 2
    assert stored(tmp_path, "users") == []


def test_list_disable_enable_and_reset(users: Any, tmp_path: Path) -> None:
    for email, tenant, role in [("v@example.com", "acme", "viewer"),
                                ("a@example.com", "globex", "admin")]:  # fmt: skip
        made = users("create", "--tenant", tenant, "--role", role, email, "--password-stdin",
                     input=f"{PASSWORD}\n")  # fmt: skip
        assert made.exit_code == 0, made.output

    listed = users("list")
    assert listed.exit_code == 0
    header = next(line for line in listed.output.splitlines() if "email" in line)
    for column in ("email", "tenant", "role", "disabled", "created", "last login"):
        assert column in header
    row = next(line for line in listed.output.splitlines() if "v@example.com" in line)
    assert "acme" in row and "viewer" in row and "never" in row
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", row), "the creation time"
    only = users("list", "--tenant", "globex").output
    assert "a@example.com" in only and "v@example.com" not in only

    user = stored(tmp_path, "user", "v@example.com")
    token, _ = stored(tmp_path, "open_session", user)
    assert users("disable", "V@example.com").exit_code == 0
    assert stored(tmp_path, "session", token) is None, "disabling ends its sessions"
    disabled_row = next(ln for ln in users("list").output.splitlines() if "v@example.com" in ln)
    assert "disabled" in disabled_row
    assert users("enable", "v@example.com").exit_code == 0
    assert not stored(tmp_path, "user", "v@example.com").disabled
    assert users("disable", "nobody@example.com").exit_code == 1

    token, _ = stored(tmp_path, "open_session", user)
    reset = users("reset-password", "v@example.com", input="a new password\na new password\n")
    assert reset.exit_code == 0, reset.output
    assert stored(tmp_path, "session", token) is None, "a new password ends its sessions"
    changed = stored(tmp_path, "user", "v@example.com").password_hash
    assert verify_password("a new password", changed) and not verify_password(PASSWORD, changed)
    short = users("reset-password", "v@example.com", "--password-stdin", input="short\n")
    assert short.exit_code == 1
    assert verify_password(
        "a new password", stored(tmp_path, "user", "v@example.com").password_hash
    )
    missing = users("reset-password", "nobody@example.com", "--password-stdin", input="x" * 12)
    assert missing.exit_code == 1 and "no user" in missing.output


async def test_a_user_made_by_the_command_signs_in(herald: Any, tmp_path: Path) -> None:
    """The installed command (a real process, password on stdin), then a dashboard login."""
    database = tmp_path / "shell.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{database}"
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "herald.cli", "users", "create", "--tenant", "default",
         "--role", "viewer", "--password-stdin", "shell@example.com"],
        input=f"{PASSWORD}\n", cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    async with (
        herald(deliver=False, database_url=f"sqlite:///{database}") as h,
        httpx.AsyncClient(base_url=h.url) as browser,
    ):
        page = await browser.get("/dashboard/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        fields = {"email": "shell@example.com", "password": PASSWORD, "csrf": token.group(1)}
        done = await browser.post("/dashboard/login", data=fields, headers={"Origin": h.url})
        assert done.status_code == 303, done.text
        overview = await browser.get("/dashboard")
        assert overview.status_code == 200 and "shell@example.com" in overview.text

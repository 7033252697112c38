"""The `herald` command: migrate and send, as a user runs them from a shell."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from herald.store.sql import migrations


def herald(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env["HERALD_LOG_LEVEL"] = "warning"
    return subprocess.run(
        [sys.executable, "-m", "herald.cli", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_migrate_then_send_queues_one_notification(tmp_path: Path) -> None:
    migrated = herald(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    sent = herald(
        tmp_path, "send", "--type", "SMS", "--to", "+1 415 555 0123", "--message", "code 4321",
        "--priority", "CRITICAL",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    shown = json.loads(sent.stdout)
    assert shown["status"] == "QUEUED" and shown["recipient"] == "+14155550123"
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        row = conn.execute("SELECT channel, priority, status FROM notifications").fetchall()
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert row == [("SMS", 3, "QUEUED")]
    assert versions == [(m.version,) for m in migrations("sqlite")]


def test_send_refuses_bad_input_with_the_field_named(tmp_path: Path) -> None:
    refused = herald(tmp_path, "send", "--to", "not-an-address", "--subject", "s", "--message", "m")
    assert refused.returncode != 0
    assert "recipient" in refused.stderr
    assert not (tmp_path / "cli.db").exists() or _count(tmp_path) == 0


def _count(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        return int(conn.execute("SELECT count(*) FROM notifications").fetchone()[0])

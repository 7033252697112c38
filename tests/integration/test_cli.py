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
    env["COLUMNS"] = "200"  # rich folds long ids in narrower tables
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


def test_queues_and_dlq_commands(tmp_path: Path) -> None:
    assert herald(tmp_path, "queues", "pause", "mail").returncode == 0
    shown = herald(tmp_path, "queues")
    assert shown.returncode == 0
    email_row = next(line for line in shown.stdout.splitlines() if " email " in line)
    assert "paused" in email_row
    assert herald(tmp_path, "queues", "resume", "email").returncode == 0
    assert "paused" not in next(
        line for line in herald(tmp_path, "queues").stdout.splitlines() if " email " in line
    )
    assert herald(tmp_path, "queues", "pause", "nowhere").returncode != 0

    sent = herald(tmp_path, "send", "--to", "a@example.com", "--subject", "s", "--message", "m")
    notification_id = json.loads(sent.stdout)["id"]
    with sqlite3.connect(tmp_path / "cli.db") as conn:  # as if delivery had failed for good
        conn.execute(
            "UPDATE notifications SET status = 'FAILED', queue = 'dlq', attempts = 6, "
            "last_error = '550 no such user', failed_at = created_at WHERE id = ?",
            (notification_id,),
        )
    listed = herald(tmp_path, "dlq", "list")
    assert listed.returncode == 0 and notification_id in listed.stdout and "550" in listed.stdout
    replayed = herald(tmp_path, "dlq", "replay", "--all")
    assert replayed.returncode == 0 and "1 replayed" in replayed.stdout
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        row = conn.execute(
            "SELECT status, attempts FROM notifications WHERE id = ?", (notification_id,)
        ).fetchone()
        actor = conn.execute(
            "SELECT message FROM audit WHERE notification_id = ? ORDER BY id DESC LIMIT 1",
            (notification_id,),
        ).fetchone()[0]
    assert row == ("QUEUED", 0)
    assert "by cli:" in actor
    stats = herald(tmp_path, "stats")
    assert stats.returncode == 0 and "QUEUED" in stats.stdout
    cleaned = herald(tmp_path, "clean")
    assert cleaned.returncode == 0 and "removed 0 sent notifications" in cleaned.stdout


def test_operator_commands_act_on_the_tenant_named(tmp_path: Path) -> None:
    sent = herald(tmp_path, "send", "--tenant", "acme", "--to", "a@example.com", "--subject", "s",
                  "--message", "m")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    mine = herald(tmp_path, "stats", "--tenant", "acme")
    theirs = herald(tmp_path, "stats")
    assert mine.returncode == theirs.returncode == 0
    assert "total 1 " in mine.stdout and "total 0 " in theirs.stdout
    assert "email" in herald(tmp_path, "queues", "--tenant", "acme").stdout

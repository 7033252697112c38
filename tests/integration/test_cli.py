"""The `herald` command: migrate and send, as a user runs them from a shell."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from herald.store.sql import migrations


def herald(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run ``herald ARGS`` in ``tmp_path`` on its own SQLite file, with ``variables`` set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    env["HERALD_LOG_LEVEL"] = "warning"
    env["COLUMNS"] = "200"  # rich folds long ids in narrower tables
    env.update(variables)
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


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--to", "not-an-address", "--subject", "s"),
         "Error: Invalid value for '--to': must be a valid email address"),
        (("--to", "a@example.com"), "Error: Invalid value for '--subject': is required for EMAIL"),
        (("--to", "a@example.com", "--subject", "s", "--priority", "urgent"),
         "Invalid value for '--priority': 'urgent' is not one of LOW, MEDIUM, HIGH, CRITICAL"),
        (("--type", "fax", "--to", "a@example.com"),
         "Error: Invalid value for '--type': 'fax' is not one of EMAIL, SMS, PUSH, WEBHOOK, CHAT"),
        (("--type", "sms", "--to", "+14155550123", "--metadata", "[1"),
         "Error: Invalid value for '--metadata': not JSON"),
    ],
)  # fmt: skip
def test_send_refuses_bad_input_naming_the_option(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    refused = herald(tmp_path, "send", *args, "--message", "m")
    assert refused.returncode == 2, refused.stderr
    assert said in refused.stderr
    assert "validation error" not in refused.stderr and "pydantic" not in refused.stderr
    assert not (tmp_path / "cli.db").exists() or _count(tmp_path) == 0


def test_send_takes_words_in_any_case_and_shows_its_defaults(tmp_path: Path) -> None:
    sent = herald(tmp_path, "send", "--type", "sms", "--to", "+14155550123", "--message", "m",
                  "--priority", "high")  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert (json.loads(sent.stdout)["type"], json.loads(sent.stdout)["priority"]) == ("SMS", "HIGH")
    shown = herald(tmp_path, "send", "--help").stdout
    assert "[EMAIL|SMS|PUSH|WEBHOOK|CHAT]" in shown and "[default: EMAIL]" in shown
    assert "[default: MEDIUM]" in shown


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
    assert listed.returncode == 0 and notification_id[:8] in listed.stdout, listed.stdout
    assert "550" in listed.stdout
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

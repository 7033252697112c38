"""The operator commands: ids shown short and taken short, `dlq delete`, `clean --dry-run`
and `--queue`, `--limit` on list commands, and their exit statuses (2 usage, 1 not done)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from herald import ops
from herald.cli import main
from herald.models import Channel, NewNotification
from herald.store.sqlite import SQLiteStore

DAY = 86_400
#: Dead letters' ids: A and B share 16 digits, C shares 8 with them, D none.
A = "0123456789abcdef" + "0" * 16
B = "0123456789abcdef" + "1" + "0" * 15
C = "0123456799" + "0" * 22
D = "fedcba98" + "0" * 24


@pytest.fixture
def herald(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``herald("dlq", "list")`` runs the command on a database in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setattr(ops, "configure", lambda level: None)  # leave this process's logging
    env = {"HERALD_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "COLUMNS": "200"}
    runner = CliRunner(env=env)

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield invoke


def rows(tmp_path: Path, *made: tuple[str, str, str, float]) -> None:
    """Store one notification per ``(id, status, queue, created_at)``, as given."""

    async def create() -> list[str]:
        store = SQLiteStore(str(tmp_path / "cli.db"))
        await store.open()
        try:
            new = NewNotification(Channel.EMAIL, "ada@example.com", "hello", subject="s")
            return [n.id for n in await store.create([new] * len(made))]
        finally:
            await store.close()

    ids = asyncio.run(create())
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        for old, (new, status, queue, created_at) in zip(ids, made, strict=True):
            conn.execute(
                "UPDATE notifications SET id = ?, status = ?, queue = ?, created_at = ?, "
                "last_error = '550 no such user' WHERE id = ?",
                (new, status, queue, created_at, old),
            )


def ids_of(tmp_path: Path) -> set[str]:
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        return {r[0] for r in conn.execute("SELECT id FROM notifications")}


@pytest.fixture
def dead(tmp_path: Path) -> None:
    rows(tmp_path, *((i, "FAILED", "dlq", time.time()) for i in (A, B, C, D)))


def test_dlq_list_shows_each_id_by_its_shortest_unique_beginning(herald: Any, dead: None) -> None:
    listed = herald("dlq", "list")
    assert listed.exit_code == 0, listed.output
    shown = [line.split("│")[1].strip() for line in listed.output.splitlines()
             if line.startswith("│") and "550" in line]  # fmt: skip
    assert sorted(shown) == sorted([A[:17], B[:17], C[:9], D[:8]])
    assert A not in listed.output, "no id is shown whole when less will do"
    few = herald("dlq", "list", "--limit", "2")
    assert few.exit_code == 0 and "showing 2 of 4 (--limit shows more)" in few.output


def test_dlq_delete_takes_a_unique_beginning(herald: Any, dead: None, tmp_path: Path) -> None:
    ambiguous = herald("dlq", "delete", "01234567")
    assert ambiguous.exit_code == 2
    assert "'01234567' begins 3 notification ids" in ambiguous.output
    assert f"{A[:17]}, {B[:17]}, {C[:9]}" in ambiguous.output, "the candidates, shortened"
    short = herald("dlq", "delete", "012")
    assert short.exit_code == 2 and "4 to 32 hex digits" in short.output
    unknown = herald("dlq", "delete", "abcdef12")
    assert unknown.exit_code == 1
    assert "no notification 'abcdef12' in tenant 'default'" in unknown.output
    assert ids_of(tmp_path) == {A, B, C, D}, "nothing deleted by a refused command"

    done = herald("dlq", "delete", C[:9], "FEDCBA98")
    assert done.exit_code == 0, done.output
    assert "2 deleted" in done.output and ids_of(tmp_path) == {A, B}
    assert herald("dlq", "delete", A).exit_code == 0 and ids_of(tmp_path) == {B}, "whole ids too"


def test_dlq_replay_takes_a_unique_beginning(herald: Any, dead: None, tmp_path: Path) -> None:
    replayed = herald("dlq", "replay", "--id", B[:17])
    assert replayed.exit_code == 0 and "1 replayed" in replayed.output, replayed.output
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        statuses = dict(conn.execute("SELECT id, status FROM notifications").fetchall())
    assert statuses == {A: "FAILED", B: "QUEUED", C: "FAILED", D: "FAILED"}
    assert herald("dlq", "replay", "--id", "0123").exit_code == 2, "ambiguous: nothing replayed"
    gone = herald("dlq", "delete", B[:17])
    assert gone.exit_code == 1 and f"not in the dead letter queue: {B[:17]}" in gone.output


def test_clean_dry_run_says_what_would_go_and_removes_nothing(herald: Any, tmp_path: Path) -> None:
    old, new = time.time() - 40 * DAY, time.time()

    def at(when: float, n: int) -> str:
        return f"{int(when * 1000):012x}{n:020x}"

    sent_old, sent_old2, sent_new = at(old, 1), at(old, 2), at(new, 3)
    cancelled, failed = at(old, 4), at(old - DAY, 5)
    rows(tmp_path, (sent_old, "SENT", "email", old), (sent_old2, "DELIVERED", "email", old),
         (sent_new, "SENT", "email", new), (cancelled, "CANCELLED", "email", old),
         (failed, "FAILED", "dlq", old - DAY))  # fmt: skip
    everything = ids_of(tmp_path)

    preview = herald("clean", "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "would remove 2 sent notifications older than 30 days" in preview.output
    assert "nothing removed (--dry-run)" in preview.output
    assert "would remove 3 sent" in herald("clean", "--days", "0", "--dry-run").output
    lane = herald("clean", "--queue", "mail", "--status", "CANCELLED", "--days", "7", "--dry-run")
    assert "would remove 1 cancelled notifications older than 7 days from mail" in lane.output
    assert ids_of(tmp_path) == everything, "a dry run removes nothing"

    refused = herald("clean", "--status", "failed")
    assert refused.exit_code == 2 and "--status chooses rows of one lane" in refused.output
    assert herald("clean", "--queue", "high_priority").exit_code == 2
    assert herald("clean", "--queue", "nowhere").exit_code == 2

    lane = herald("clean", "--queue", "dlq", "--status", "failed", "--days", "7")
    assert "removed 1 failed notifications older than 7 days from dlq" in lane.output
    done = herald("clean")
    assert "removed 2 sent notifications older than 30 days" in done.output, done.output
    assert ids_of(tmp_path) == {sent_new, cancelled}


def test_list_commands_take_a_limit(herald: Any) -> None:
    for name in ("one", "two", "three"):
        made = herald("keys", "create", "--scopes", "read", "--name", name)
        assert made.exit_code == 0, made.output
    listed = herald("keys", "list", "--limit", "2")
    assert listed.exit_code == 0 and "showing 2 of 3 (--limit shows more)" in listed.output
    assert " one " in listed.output and " three " not in listed.output, "oldest first"
    assert "showing" not in herald("keys", "list").output
    assert "showing 0" not in herald("users", "list", "--limit", "1").output
    assert herald("keys", "list", "--limit", "0").exit_code == 2
    for command in (("dlq", "list"), ("keys", "list"), ("users", "list"),
                    ("suppressions", "list")):  # fmt: skip
        assert "--limit" in herald(*command, "--help").output, command

"""``herald backup PATH``: what it writes, and what it refuses to touch.

Taking a backup while Herald writes is tested end to end in
``tests/e2e/test_backup.py``; here the command runs on a store at rest.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from herald.cli import main


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite store holding one notification; the working directory is its folder."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "herald.db"
    assert herald(path, "migrate").exit_code == 0
    sent = herald(path, "send", "--to", "a@example.com", "--subject", "s", "--message", "m")
    assert sent.exit_code == 0, sent.output
    return path


def herald(db: Path | str, *args: str) -> Result:
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    env = {"HERALD_DATABASE_URL": url, "HERALD_LOG_LEVEL": "warning"}
    return CliRunner().invoke(main, list(args), env=env)


def notifications(path: Path) -> int:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM notifications").fetchone()[0])
    finally:
        conn.close()


def test_the_backup_is_one_private_self_contained_file(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "backup.db"
    target.parent.mkdir()
    done = herald(store, "backup", str(target))
    assert done.exit_code == 0, done.output
    assert f"backed up {store} to {target}" in done.output
    assert sorted(p.name for p in target.parent.iterdir()) == ["backup.db"]
    assert target.stat().st_mode & 0o777 == 0o600
    conn = sqlite3.connect(target)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()
    assert notifications(target) == 1


def test_an_existing_file_is_replaced_only_with_force(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "backup.db"
    target.write_bytes(b"last night's backup")
    refused = herald(store, "backup", str(target))
    assert refused.exit_code != 0 and "exists: pass --force to replace it" in refused.output
    assert target.read_bytes() == b"last night's backup"
    replaced = herald(store, "backup", "--force", str(target))
    assert replaced.exit_code == 0, replaced.output
    assert notifications(target) == 1


@pytest.mark.parametrize("name", ["herald.db", "herald.db-wal", "./herald.db-shm"])
def test_the_live_database_is_never_a_target(store: Path, name: str) -> None:
    before = store.read_bytes()
    refused = herald(store, "backup", "--force", name)
    assert refused.exit_code != 0 and "is the live database" in refused.output
    assert store.read_bytes() == before


def test_what_is_not_a_backup_target(store: Path, tmp_path: Path) -> None:
    folder = herald(store, "backup", str(tmp_path))
    assert folder.exit_code != 0 and "is a directory: name the backup file" in folder.output
    nowhere = herald(store, "backup", str(tmp_path / "missing" / "backup.db"))
    assert nowhere.exit_code != 0 and "does not exist" in nowhere.output


def test_no_database_is_made_where_there_was_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.db"
    refused = herald(missing, "backup", str(tmp_path / "backup.db"))
    assert refused.exit_code != 0 and f"no SQLite database at {missing}" in refused.output
    assert sorted(os.listdir(tmp_path)) == []


def test_postgresql_is_pointed_at_pg_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    refused = herald("postgresql://herald:secret@127.0.0.1:5432/herald", "backup", "x.db")
    assert refused.exit_code != 0
    assert "pg_dump --format=custom" in refused.output and "secret" not in refused.output
    assert not (tmp_path / "x.db").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can read another user's database")
def test_root_is_sent_to_the_database_owner(store: Path, tmp_path: Path) -> None:
    os.chown(store, 65534, 65534)
    refused = herald(store, "backup", str(tmp_path / "backup.db"))
    assert refused.exit_code != 0 and "run this as" in refused.output
    assert not (tmp_path / "backup.db").exists()

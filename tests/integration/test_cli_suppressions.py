"""`herald suppressions`: the list kept from a shell, on both stores, round trips included."""

from __future__ import annotations

import csv
import io
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from herald.suppressions_cli import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS

HEADER = "recipient,category,reason,detail"
Done = subprocess.CompletedProcess[str]
Herald = Callable[..., Done]


@pytest.fixture
def herald(tmp_path: Path, database_url: str) -> Herald:
    """``herald("suppressions", "list")`` runs the command as a shell user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATABASE_URL=database_url, HERALD_LOG_LEVEL="warning", COLUMNS="200")

    def run(*args: str, shell: str | None = None) -> Done:
        """``args`` to ``herald``, or a ``shell`` command line (a pipe, say)."""
        command = ["sh", "-c", shell] if shell else [sys.executable, "-m", "herald.cli", *args]
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    assert run("migrate").returncode == 0
    return run


#: For refusals that happen before the store is opened: one store is enough.
ONE_STORE = pytest.mark.parametrize("backend", ["sqlite"])
HERALD = f"{shlex.quote(sys.executable)} -m herald.cli"


def rows(exported: str) -> list[list[str]]:
    """The exported CSV's rows after its header, sorted (the order is newest first)."""
    found = list(csv.reader(io.StringIO(exported)))
    assert found[0] == HEADER.split(","), exported
    return sorted(found[1:])


def test_add_list_and_remove(herald: Herald) -> None:
    added = herald("suppressions", "add", " Ann@Example.COM ", "--detail", "asked by phone")
    assert added.returncode == 0, added.stderr
    assert "added ann@example.com" in added.stdout
    again = herald("suppressions", "add", "ann@example.com", "--reason", "bounce")
    assert again.returncode == 0 and "already listed" in again.stdout
    news = herald("suppressions", "add", "ann@example.com", "--category", "news",
               "--reason", "unsubscribe")  # fmt: skip
    assert news.returncode == 0, news.stderr

    shown = herald("suppressions", "list")
    assert shown.returncode == 0, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if "ann@example.com" in line]
    assert len(lines) == 2 and "asked by phone" in shown.stdout and "2 entries" in shown.stdout
    only = herald("suppressions", "list", "--reason", "unsubscribe")
    assert "news" in only.stdout and "asked by phone" not in only.stdout
    other = herald("suppressions", "list", "--tenant", "acme")
    assert "ann@example.com" not in other.stdout and "0 entries" in other.stdout

    gone = herald("suppressions", "remove", "ANN@example.com", "--category", "news")
    assert gone.returncode == 0 and "removed 1 entry" in gone.stdout
    assert rows(herald("suppressions", "export").stdout) == [
        ["ann@example.com", "", "manual", "asked by phone"]
    ]
    assert herald("suppressions", "remove", "ann@example.com").returncode == 0
    missing = herald("suppressions", "remove", "ann@example.com")
    assert missing.returncode != 0 and "not on the suppression list" in missing.stderr

    refused = herald("suppressions", "add", "bob@example.com", "--category", "Not A Slug")
    assert refused.returncode != 0 and "category" in refused.stderr
    assert rows(herald("suppressions", "export").stdout) == []


def test_export_piped_into_import_copies_the_list(herald: Herald, tmp_path: Path) -> None:
    entries = [
        ["a@example.com", "--detail", 'said "stop", twice'],
        ["b@example.com", "--category", "news", "--reason", "unsubscribe"],
        ["+14155550123", "--reason", "complaint", "--detail", "line one\nline two"],
    ]
    for args in entries:
        assert herald("suppressions", "add", *args).returncode == 0
    original = herald("suppressions", "export")
    assert original.returncode == 0, original.stderr

    piped = herald(
        shell=f"{HERALD} suppressions export | {HERALD} suppressions import - --tenant copy"
    )
    assert piped.returncode == 0, piped.stderr
    assert "3 rows: 3 added, 0 already listed" in piped.stdout
    copied = herald("suppressions", "export", "--tenant", "copy")
    assert rows(copied.stdout) == rows(original.stdout)
    assert ["a@example.com", "", "manual", 'said "stop", twice'] in rows(copied.stdout)

    (tmp_path / "list.csv").write_text(original.stdout)
    again = herald("suppressions", "import", "list.csv", "--tenant", "copy")
    assert again.returncode == 0 and "0 added, 3 already listed" in again.stdout


@ONE_STORE
def test_a_bad_row_is_named_by_its_line_and_nothing_is_imported(
    herald: Herald, tmp_path: Path
) -> None:
    (tmp_path / "bad.csv").write_text(
        "recipient,detail,category\n"              # line 1
        "good@example.com,fine,\n"                  # line 2
        'also@example.com,"two\nlines",Bad Slug\n'  # lines 3-4: one row
        "\n"                                        # line 5: blank, skipped
        "worse@example.com,,news\n"                 # line 6
        ",no recipient,\n"                          # line 7
        f"long@example.com,{'d' * 501},\n"           # line 8
    )  # fmt: skip
    refused = herald("suppressions", "import", "bad.csv")
    assert refused.returncode != 0
    assert "line 3: category:" in refused.stderr, refused.stderr
    assert "line 7: recipient: must not be empty" in refused.stderr
    assert "line 8: detail: must be at most 500 characters" in refused.stderr
    assert "3 bad row(s); nothing imported" in refused.stderr
    assert rows(herald("suppressions", "export").stdout) == []

    (tmp_path / "bad.csv").write_text("email,reason\nann@example.com,manual\n")
    header = herald("suppressions", "import", "bad.csv")
    assert header.returncode != 0 and "line 1: header: needs a recipient column" in header.stderr
    (tmp_path / "bad.csv").write_text("recipient,reason\nann@example.com,spam\n")
    reason = herald("suppressions", "import", "bad.csv")
    assert "line 2: reason: must be one of bounce, complaint" in reason.stderr
    assert rows(herald("suppressions", "export").stdout) == []


@ONE_STORE
def test_an_import_past_its_bounds_is_refused_whole(herald: Herald, tmp_path: Path) -> None:
    many = "".join(f"user{n}@example.com\n" for n in range(MAX_IMPORT_ROWS + 1))
    (tmp_path / "many.csv").write_text("recipient\n" + many)
    assert (tmp_path / "many.csv").stat().st_size < MAX_IMPORT_BYTES
    refused = herald("suppressions", "import", "many.csv")
    assert refused.returncode != 0 and f"more than {MAX_IMPORT_ROWS:,} rows" in refused.stderr

    with (tmp_path / "huge.csv").open("w") as huge:
        huge.write("recipient,detail\n")
        huge.write(f"ann@example.com,{'x' * 400}\n" * (MAX_IMPORT_BYTES // 400 + 1))
    refused = herald("suppressions", "import", "huge.csv")
    assert refused.returncode != 0 and "larger than" in refused.stderr
    assert rows(herald("suppressions", "export").stdout) == []

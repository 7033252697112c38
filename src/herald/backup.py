"""``herald backup PATH``: a consistent copy of the SQLite store, taken while Herald runs.

Copying the file with ``cp`` is not a backup: the newest commits may still sit in
the ``-wal`` file beside it, and a copy taken during a checkpoint is torn.
SQLite's online backup API copies the database inside one read transaction
instead: in WAL mode Herald goes on committing meanwhile, and the copy is the
database as it stood when that transaction began, every committed row in it.

The copy is written beside PATH under a temporary name, checked with
``PRAGMA integrity_check``, flushed to disk and renamed over PATH, so PATH is
always either what it was before or a whole backup. It is one self-contained
file (rollback journal, no ``-wal`` beside it), readable by its owner only:
restoring is pointing ``HERALD_DATABASE_URL`` at a copy of it.

PostgreSQL has its own tools (``pg_dump``, base backups); this command refuses
that store rather than pretend.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import tempfile
import time
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

import click

from .config import Settings
from .errors import HeraldError
from .logs import configure

#: The live database's companions: a backup must never be written over one of them.
_SIDECARS = ("", "-wal", "-shm", "-journal")


class BackupRefused(HeraldError):
    """The backup was not taken (nothing at PATH changed); the message says why."""


@dataclass(frozen=True)
class Backup:
    path: Path
    pages: int
    size: int
    seconds: float


def backup_sqlite(
    source: str, target: Path, *, force: bool = False, busy_timeout_ms: int = 5000
) -> Backup:
    """Copy the SQLite database at ``source`` to ``target`` atomically."""
    live = Path(source)
    if not live.is_file():
        raise BackupRefused(f"no SQLite database at {source}")
    _check_owner(live)
    _check_target(live, target, force)
    started = time.monotonic()
    handle, partial = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".partial", dir=target.parent
    )  # mode 0600: the store holds key hashes and every message
    os.close(handle)
    try:
        pages = _copy(live, partial, busy_timeout_ms)
        _flush(partial)
        os.replace(partial, target)
        _flush(str(target.parent))
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(partial)
        raise
    return Backup(target, pages, target.stat().st_size, time.monotonic() - started)


def _check_owner(live: Path) -> None:
    """Root reading another user's database would leave root's ``-shm`` and ``-wal`` files
    beside it when Herald is stopped, and Herald could not open it again."""
    owner = live.stat().st_uid
    if os.geteuid() == 0 and owner != 0:
        try:
            name = pwd.getpwuid(owner).pw_name
        except KeyError:
            name = str(owner)
        raise BackupRefused(f"{live} belongs to {name}: run this as {name} (sudo -u {name} ...)")


def _check_target(live: Path, target: Path, force: bool) -> None:
    if target.is_dir():
        raise BackupRefused(f"{target} is a directory: name the backup file")
    if not target.parent.is_dir():
        raise BackupRefused(f"{target.parent} does not exist")
    resolved = target.resolve()
    if any(resolved == Path(f"{live.resolve()}{suffix}") for suffix in _SIDECARS):
        raise BackupRefused(f"{target} is the live database: choose another path")
    if target.exists() and not force:
        raise BackupRefused(f"{target} exists: pass --force to replace it")


def _copy(live: Path, partial: str, busy_timeout_ms: int) -> int:
    """One backup step over every page: one read transaction, so one consistent moment."""
    # Read-only: a wrong path or a stopped Herald must never get a database created
    # or changed by a backup.
    uri = f"{live.resolve().as_uri()}?mode=ro"
    with (
        closing(sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000)) as source,
        closing(sqlite3.connect(partial, isolation_level=None)) as copy,
    ):
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
        verdict = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupRefused("the copy failed its integrity check: " + "; ".join(verdict[:5]))
        return int(copy.execute("PRAGMA page_count").fetchone()[0])


def _flush(path: str) -> None:
    """fsync a file, or a directory so that a rename in it survives a power cut."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Replace PATH if it exists.")
@click.pass_context
def backup(ctx: click.Context, path: Path, force: bool) -> None:
    """Copy the SQLite store to PATH, consistently, while Herald runs.

    PATH is written atomically (a temporary file beside it, then a rename). On
    PostgreSQL use pg_dump instead.
    """
    settings: Settings = ctx.obj["settings"](reach=False)  # it must not make the database
    configure("warning")
    if settings.postgres_url is not None:
        raise click.ClickException(
            "herald backup copies the SQLite store; HERALD_DATABASE_URL names PostgreSQL, "
            "whose own tool does this: "
            'pg_dump --format=custom --file=herald.dump "$HERALD_DATABASE_URL"'
        )
    source = settings.sqlite_path
    if source is None:
        raise click.ClickException("HERALD_DATABASE_URL is not a sqlite:/// URL")
    try:
        done = backup_sqlite(
            source, path, force=force, busy_timeout_ms=settings.sqlite_busy_timeout_ms
        )
    except (BackupRefused, sqlite3.Error, OSError) as exc:
        raise click.ClickException(f"no backup taken: {exc}") from None
    click.echo(
        f"backed up {source} to {done.path}: {done.pages:,} pages, "
        f"{done.size:,} bytes in {done.seconds:.2f} s"
    )

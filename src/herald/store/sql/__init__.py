"""SQL lives here, one folder per store: numbered migrations and named queries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def queries(dialect: str) -> dict[str, str]:
    """The named queries of ``sql/<dialect>/queries.sql`` (``-- name: x`` sections)."""
    return parse(resources.files(__package__).joinpath(dialect, "queries.sql").read_text())


def parse(text: str) -> dict[str, str]:
    """The ``-- name: x`` sections of a SQL file, by name."""
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def migrations(dialect: str) -> list[Migration]:
    """The numbered migrations of ``sql/<dialect>/``, in order."""
    folder = resources.files(__package__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)

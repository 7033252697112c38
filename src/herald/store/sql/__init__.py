"""Reading SQL: each store's package (``store/sqlite/``, ``store/postgres/``) holds its
numbered migrations and named queries; the portable ``access.sql`` lives here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

_NAME = re.compile(r"^--\s*name:\s*(\S+)\s*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def _folder(dialect: str) -> Traversable:
    """The store package of ``dialect`` (``herald.store.sqlite``), where its SQL files are."""
    return resources.files(f"{__package__.rpartition('.')[0]}.{dialect}")


def queries(dialect: str, file: str = "queries.sql") -> dict[str, str]:
    """The named queries (``-- name: x`` sections) of a SQL file of ``store/<dialect>/``."""
    return parse(_folder(dialect).joinpath(file).read_text())


def parse(text: str) -> dict[str, str]:
    """The ``-- name: x`` sections of a SQL file, by name."""
    parts = _NAME.split(text)
    return {
        name: body.strip().rstrip(";") for name, body in zip(parts[1::2], parts[2::2], strict=True)
    }


def migrations(dialect: str) -> list[Migration]:
    """The numbered migrations of ``store/<dialect>/``, in order."""
    folder = _folder(dialect)
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found, key=lambda m: m.version)

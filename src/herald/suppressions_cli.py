"""``herald suppressions``: list, add, remove, import and export the suppression list.

Straight on the store, like the other operator commands, so it works with the
API down. ``export`` writes CSV (``recipient,category,reason,detail``) to
standard output and ``import`` reads the same, from a file or ``-`` for
standard input, so ``herald suppressions export | herald suppressions import -
--tenant other`` copies a list. An import is checked whole before anything is
stored: one bad row (named by its line) and nothing is imported. Entries
already listed are kept as they were.
"""

from __future__ import annotations

import csv
import io
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import suppressions as rules
from .access import check_tenant
from .api.present import iso
from .ops import run, settings_from, tenant_option
from .store import Store
from .store.receipts import REASONS, Suppression

#: The CSV columns, in the order ``export`` writes them; ``import`` needs ``recipient``.
COLUMNS = ("recipient", "category", "reason", "detail")
#: An import's bounds: a list this size is a few minutes of a large sender's bounces.
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_IMPORT_ROWS = 100_000
#: Bad rows shown before the rest are only counted.
SHOWN_ERRORS = 20
#: Entries read from the store at a time.
CHUNK = 500

console = Console()
err = Console(stderr=True)


def _tenant(ctx: click.Context, tenant: str) -> str:
    try:
        return check_tenant(tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param_hint="'--tenant'") from None


class BadRows(click.ClickException):
    """A CSV that is refused whole, with each bad row's line and field."""

    def __init__(self, problems: list[tuple[int, str, str]], bad: int) -> None:
        lines = [f"line {line}: {field}: {message}" for line, field, message in problems]
        if bad > len(problems):
            lines.append(f"... and {bad - len(problems)} more")
        super().__init__("\n".join([*lines, f"{bad} bad row(s); nothing imported"]))


def read_csv(raw: bytes, tenant_id: str) -> list[Suppression]:
    """Every row of ``raw`` as a checked entry, or ``BadRows`` naming each bad one."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"the file is not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [name.strip().lower() for name in next(reader, [])]
    except csv.Error as exc:
        raise BadRows([(1, "header", str(exc))], 1) from None
    unknown = sorted(set(header) - set(COLUMNS))
    if "recipient" not in header or unknown or len(set(header)) != len(header):
        why = f"unknown column {unknown[0]!r}" if unknown else "needs each column once"
        if "recipient" not in header:
            why = "needs a recipient column"
        raise BadRows([(1, "header", f"{why} ({','.join(COLUMNS)})")], 1)
    entries: list[Suppression] = []
    problems: list[tuple[int, str, str]] = []
    bad = 0
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:  # a broken quote: the rest of the file cannot be read
            raise BadRows([*problems, (start, "row", str(exc))], bad + 1) from None
        if row is None:
            break
        line, start = start, reader.line_num + 1  # a quoted field may span lines
        if not any(field.strip() for field in row):
            continue
        if len(entries) + bad >= MAX_IMPORT_ROWS:
            raise click.ClickException(f"more than {MAX_IMPORT_ROWS:,} rows; split the file")
        try:
            if len(row) > len(header):
                raise rules.BadEntry("row", f"{len(row)} fields, the header names {len(header)}")
            fields = dict(zip(header, row, strict=False))
            entries.append(rules.entry(tenant_id, fields["recipient"], fields.get("category"),
                                       fields.get("reason"), fields.get("detail")))  # fmt: skip
        except rules.BadEntry as exc:
            bad += 1
            if len(problems) < SHOWN_ERRORS:
                problems.append((line, exc.field, str(exc)))
    if bad:
        raise BadRows(problems, bad)
    return entries


def _read(path: str) -> bytes:
    """The file's bytes (``-``: standard input), refused past ``MAX_IMPORT_BYTES``."""
    if path == "-":
        raw = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)
    else:
        with open(path, "rb") as source:
            raw = source.read(MAX_IMPORT_BYTES + 1)
    if len(raw) > MAX_IMPORT_BYTES:
        raise click.ClickException(f"the file is larger than {MAX_IMPORT_BYTES:,} bytes")
    return raw


async def _every(store: Store, tenant: str) -> list[Suppression]:
    found: list[Suppression] = []
    page = 1
    while True:
        chunk, total = await store.suppressions(tenant, None, None, page, CHUNK)
        found.extend(chunk)
        if not chunk or page * CHUNK >= total:
            return found
        page += 1


@click.group()
def suppressions() -> None:
    """The suppression list: `list`, `add`, `remove`, `import`, `export`."""


@suppressions.command(name="list")
@tenant_option
@click.option("--reason", type=click.Choice(REASONS), default=None, help="Only this reason.")
@click.option("--recipient", default=None, help="Only this recipient (any case).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Show at most this many, newest first.")  # fmt: skip
@click.pass_context
def list_entries(
    ctx: click.Context, tenant: str, reason: str | None, recipient: str | None, limit: int
) -> None:
    """Show entries: recipient, category, reason, detail, added."""
    tenant = _tenant(ctx, tenant)
    found, total = run(settings_from(ctx),
                       lambda s: s.suppressions(tenant, recipient, reason, 1, limit))  # fmt: skip
    table = Table(title=f"Suppression list of {escape(tenant)}")
    for column in ("recipient", "category", "reason", "detail", "added"):
        table.add_column(column, overflow="fold")
    for s in found:
        added = (iso(s.created_at) or "")[:16].replace("T", " ")
        table.add_row(escape(s.recipient), escape(s.category) or "(every)", s.reason,
                      escape(s.detail or ""), added)  # fmt: skip
    console.print(table)
    more = f" (showing {len(found):,}; `herald suppressions export` gives all)"
    console.print(_entries(total) + (more if total > len(found) else ""))


@suppressions.command()
@click.argument("recipient")
@tenant_option
@click.option("--category", default=None, help="Only this category (default: every one).")
@click.option("--reason", type=click.Choice(REASONS), default="manual", show_default=True)
@click.option("--detail", default=None, help="Why, in a few words.")
@click.pass_context
def add(
    ctx: click.Context, recipient: str, tenant: str, category: str | None, reason: str,
    detail: str | None,
) -> None:  # fmt: skip
    """Add RECIPIENT: its notifications end SUPPRESSED from now on."""
    tenant = _tenant(ctx, tenant)
    try:
        entry = rules.entry(tenant, recipient, category, reason, detail)
    except rules.BadEntry as exc:
        raise click.BadParameter(str(exc), ctx, param_hint=exc.field) from None
    added = run(settings_from(ctx), lambda s: s.suppress([entry]))
    where = f" for {entry.category}" if entry.category else ""
    done = "added {}{}" if added else "{} is already listed{}; kept as it was"
    console.print(escape(done.format(entry.recipient, where)))


@suppressions.command()
@click.argument("recipient")
@tenant_option
@click.option(
    "--category",
    default=None,
    help="Only this category's entry ('': the every-category one). Default: all.",
)
@click.pass_context
def remove(ctx: click.Context, recipient: str, tenant: str, category: str | None) -> None:
    """Take RECIPIENT off the list (all its entries, or only --category's)."""
    tenant = _tenant(ctx, tenant)
    removed = run(settings_from(ctx), lambda s: s.unsuppress(tenant, recipient, category))
    if not removed:
        raise click.ClickException(f"{recipient!r} is not on the suppression list of {tenant}")
    console.print(f"removed {_entries(removed)}")


@suppressions.command(name="import")
@click.argument("path", metavar="FILE.csv", type=click.Path(dir_okay=False, allow_dash=True))
@tenant_option
@click.pass_context
def import_entries(ctx: click.Context, path: str, tenant: str) -> None:
    """Add every row of FILE.csv (`-`: standard input), or none if one row is bad.

    The header names the columns: recipient, and any of category, reason, detail.
    """
    tenant = _tenant(ctx, tenant)
    try:
        raw = _read(path)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror}") from None
    entries = read_csv(raw, tenant)
    added = run(settings_from(ctx), lambda s: s.suppress(entries)) if entries else 0
    kept = len(entries) - added
    console.print(f"{len(entries):,} rows: {added:,} added, {kept:,} already listed")


@suppressions.command(name="export")
@tenant_option
@click.pass_context
def export_entries(ctx: click.Context, tenant: str) -> None:
    """Write the whole list as CSV to standard output (what `import` reads)."""
    tenant = _tenant(ctx, tenant)
    found = run(settings_from(ctx), lambda s: _every(s, tenant))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(COLUMNS)
    out.writerows([s.recipient, s.category, s.reason, s.detail or ""] for s in found)
    err.print(f"{_entries(len(found))} of {tenant}")


def _entries(count: int) -> str:
    return f"{count:,} entr{'y' if count == 1 else 'ies'}"

"""``herald keys``: create, list and revoke API keys, straight on the store.

``create`` prints the new key alone on standard output (so
``KEY=$(herald keys create …)`` works); everything else goes to standard error.
Like the other operator commands it works with the API down, and acts as an
administrator: whoever can run it can read the database anyway.
"""

from __future__ import annotations

import time

import click
from rich.console import Console
from rich.table import Table

from .access import Scope, check_tenant, parse_rate, parse_scopes
from .api.present import iso
from .models import DEFAULT_TENANT
from .ops import limit_option, run, settings_from, show_more

console = Console()
err = Console(stderr=True)


def _scopes(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_scopes(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _tenant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_tenant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else str(parse_rate(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def keys() -> None:
    """API keys: `create`, `list`, `revoke`."""


@keys.command()
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, callback=_tenant)
@click.option("--scopes", required=True, callback=_scopes,
              help="Comma-separated: send, read, manage, admin.")  # fmt: skip
@click.option("--name", default="key", show_default=True, help="A label people recognise.")
@click.option("--expires", type=click.FloatRange(min=0, min_open=True, max=3650),
              default=None, help="Days until the key stops working.")  # fmt: skip
@click.option("--rate-limit", default=None, callback=_rate,
              help="e.g. 100/s or 6000/min (default: HERALD_API_RATE_LIMIT).")  # fmt: skip
@click.pass_context
def create(
    ctx: click.Context, tenant: str, scopes: str, name: str, expires: float | None,
    rate_limit: str | None,
) -> None:  # fmt: skip
    """Create a key and print it: it is shown this once and never stored."""
    expires_at = time.time() + expires * 86_400 if expires else None
    secret, key = run(
        settings_from(ctx),
        lambda s: s.access.create_key(
            tenant, parse_scopes(scopes), name=name, expires_at=expires_at, rate_limit=rate_limit
        ),
    )
    click.echo(secret)
    err.print(f"created {key.prefix}… ({key.name}) for tenant {key.tenant_id}: {scopes}")


@keys.command(name="list")
@click.option("--tenant", default=None, callback=_tenant, help="Only this tenant's keys.")
@click.option("--revoked", is_flag=True, help="Include revoked keys.")
@limit_option(100)
@click.pass_context
def list_keys(ctx: click.Context, tenant: str | None, revoked: bool, limit: int) -> None:
    """Show keys, oldest first: prefix, name, tenant, scopes, created, last used, expiry."""
    every = run(settings_from(ctx), lambda s: s.access.keys(tenant, revoked))
    found = every[:limit]
    table = Table(title="API keys")
    columns = ["prefix", "name", "tenant", "scopes", "created", "last used", "expires"]
    for column in [*columns, "revoked"] if revoked else columns:
        table.add_column(column, overflow="fold", no_wrap=column == "prefix")
    for k in found:
        row = [k.prefix, k.name, k.tenant_id, ",".join(s.value for s in Scope if s in k.scopes),
               _when(k.created_at), _when(k.last_used_at) or "never",
               _when(k.expires_at) or "never"]  # fmt: skip
        table.add_row(*row, _when(k.revoked_at)) if revoked else table.add_row(*row)
    console.print(table)
    show_more(len(found), len(every))


def _when(ts: float | None) -> str | None:
    """To the minute, in UTC: enough to recognise a key, narrow enough for a table."""
    shown = iso(ts)
    return shown[:16].replace("T", " ") if shown else None


@keys.command()
@click.argument("prefix_or_id")
@click.pass_context
def revoke(ctx: click.Context, prefix_or_id: str) -> None:
    """Revoke a key by its prefix or id; every process refuses it within seconds."""
    done = run(settings_from(ctx), lambda s: s.access.revoke_key(prefix_or_id, None))
    if not done:
        raise click.ClickException(f"no active key {prefix_or_id!r}")
    err.print(f"revoked {', '.join(done)}")

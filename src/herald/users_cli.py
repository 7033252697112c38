"""``herald users``: the dashboard's accounts, made and changed straight on the store.

There is no sign-up page and no account API: whoever can run this command can
read the database anyway, so this is where accounts come from. Passwords are
asked twice without echo, or read as one line from standard input with
``--password-stdin`` (for scripts: ``printf '%s\\n' "$PW" | herald users create …``),
never taken as an argument, where they would land in shell history and ``ps``.
"""

from __future__ import annotations

import sys

import click
from email_validator import EmailNotValidError, validate_email
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .access import MAX_PASSWORD, Role, check_tenant, hash_password
from .api.present import iso
from .ops import limit_option, run, settings_from, show_more
from .store.access import UserExists

MIN_PASSWORD = 10
MAX_EMAIL = 254
console = Console()

_password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password as one line from standard input."
)


def _email(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_EMAIL:
        raise click.BadParameter(f"at most {MAX_EMAIL} characters")
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise click.BadParameter(str(exc)) from None
    return value.lower()


def _tenant(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else check_tenant(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _password(from_stdin: bool) -> str:
    """The new password, prompted twice (or one line of stdin), within the length bounds."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise click.ClickException(f"a password has at most {MAX_PASSWORD} characters")
    return password


def _exists(ctx: click.Context, email: str) -> None:
    if run(settings_from(ctx), lambda s: s.access.user(email)) is None:
        raise click.ClickException(f"there is no user {email!r}")


@click.group()
def users() -> None:
    """Dashboard users: `create`, `list`, `disable`, `enable`, `reset-password`."""


@users.command()
@click.option("--tenant", required=True, callback=_tenant, help="The tenant whose data it sees.")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]),
              help="viewer sees; operator also replays, cancels, deletes; admin also "
                   "pauses queues.")  # fmt: skip
@_password_stdin
@click.argument("email", callback=_email)
@click.pass_context
def create(ctx: click.Context, tenant: str, role: str, password_stdin: bool, email: str) -> None:
    """Create a user who signs in to the dashboard with EMAIL."""
    settings = settings_from(ctx)
    if run(settings, lambda s: s.access.user(email)) is not None:
        raise click.ClickException(f"a user {email!r} exists already")
    password_hash = hash_password(_password(password_stdin))
    try:
        run(settings, lambda s: s.access.create_user(tenant, email, Role(role), password_hash))
    except UserExists as exc:  # made by someone else since we looked
        raise click.ClickException(str(exc)) from None
    click.echo(f"created {role} {email} in tenant {tenant}")


@users.command(name="list")
@click.option("--tenant", default=None, callback=_tenant, help="Only this tenant's users.")
@limit_option(100)
@click.pass_context
def list_users(ctx: click.Context, tenant: str | None, limit: int) -> None:
    """Every user (or one tenant's), by email."""
    every = run(settings_from(ctx), lambda s: s.access.users(tenant))
    found = every[:limit]
    table = Table(title="Dashboard users")
    for column in ("email", "tenant", "role", "disabled", "created", "last login"):
        table.add_column(column)
    for user in found:
        table.add_row(escape(user.email), escape(user.tenant_id), user.role.value,
                      "[bold red]disabled[/]" if user.disabled else "",
                      iso(user.created_at) or "", iso(user.last_login_at) or "never")  # fmt: skip
    console.print(table)
    show_more(len(found), len(every))


def _set_disabled(ctx: click.Context, email: str, disabled: bool) -> None:
    if not run(settings_from(ctx), lambda s: s.access.set_disabled(email, disabled)):
        raise click.ClickException(f"there is no user {email!r}")
    click.echo(f"{email} {'disabled: its sessions are ended' if disabled else 'enabled'}")


@users.command()
@click.argument("email", callback=_email)
@click.pass_context
def disable(ctx: click.Context, email: str) -> None:
    """Stop EMAIL signing in, and end its sessions now."""
    _set_disabled(ctx, email, True)


@users.command()
@click.argument("email", callback=_email)
@click.pass_context
def enable(ctx: click.Context, email: str) -> None:
    """Let a disabled EMAIL sign in again."""
    _set_disabled(ctx, email, False)


@users.command(name="reset-password")
@_password_stdin
@click.argument("email", callback=_email)
@click.pass_context
def reset_password(ctx: click.Context, password_stdin: bool, email: str) -> None:
    """Give EMAIL a new password; every session it has ends."""
    _exists(ctx, email)
    password_hash = hash_password(_password(password_stdin))
    if not run(settings_from(ctx), lambda s: s.access.set_password(email, password_hash)):
        raise click.ClickException(f"there is no user {email!r}")
    click.echo(f"{email}: new password set; its sessions are ended")

"""The operator's commands: ``herald queues``, ``herald dlq``, ``herald stats``, ``herald clean``.

They talk to the store directly (like ``herald send``), so they work with the
API down, and print readable tables with rich.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import retention
from .api.present import iso
from .config import Settings
from .logs import configure
from .models import DEFAULT_TENANT, NOT_LANES, Channel, lanes_of
from .providers.ssrf import mask_credentials
from .store import Store, open_store
from .store.base import DlqFilter

T = TypeVar("T")
console = Console()
#: These commands read the store directly, as its administrator; --tenant picks whose rows.
tenant_option = click.option("--tenant", default=DEFAULT_TENANT, show_default=True,
                             help="The tenant whose rows to show or change.")  # fmt: skip


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[Store]:
    store = open_store(settings)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def run(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        async with opened(settings) as store:
            return await action(store)

    return asyncio.run(main())


def settings_from(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]()
    configure("warning")  # the tables are the output; logs only for trouble
    return settings


@click.group(invoke_without_command=True)
@tenant_option
@click.pass_context
def queues(ctx: click.Context, tenant: str) -> None:
    """Show every queue's counts (one tenant's); `pause NAME` and `resume NAME` change one."""
    if ctx.invoked_subcommand is not None:
        return
    rows = run(settings_from(ctx), lambda s: s.queues(tenant))
    table = Table(title="Queues")
    for column in ("queue", "waiting", "active", "delayed", "completed", "failed", "paused"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for q in rows:
        paused = "[bold red]paused[/]" if q.paused else ""
        table.add_row(q.name, *(f"{n:,}" for n in (q.waiting, q.active, q.delayed)),
                      f"{q.completed:,}", f"{q.failed:,}", paused)  # fmt: skip
    console.print(table)


def _pause(ctx: click.Context, name: str, paused: bool) -> None:
    if name.lower() in NOT_LANES:
        raise click.BadParameter(NOT_LANES[name.lower()], param_hint="NAME")
    lanes = lanes_of(name)
    if not lanes:
        raise click.BadParameter(f"unknown queue {name!r}", param_hint="NAME")

    async def change(store: Store) -> None:
        for lane in lanes:
            await store.set_paused(lane, paused)

    run(settings_from(ctx), change)
    for lane in lanes:
        console.print(f"queue [bold]{lane}[/] {'paused' if paused else 'resumed'}")


@queues.command()
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Stop claiming from queue NAME (mail is email)."""
    _pause(ctx, name, True)


@queues.command()
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Claim from queue NAME again."""
    _pause(ctx, name, False)


def _dlq_filter(channel: str | None, error: str | None, since: datetime | None) -> DlqFilter:
    return DlqFilter(
        channel=Channel(channel) if channel else None,
        error=error,
        since=since.timestamp() if since else None,
    )


_channel = click.option(
    "--type", "channel", type=click.Choice([c.value for c in Channel], case_sensitive=False)
)
_error = click.option("--error", help="Only those whose last error contains this text.")
_since = click.option("--since", type=click.DateTime(), help="Only those that failed since.")


@click.group()
def dlq() -> None:
    """Inspect and replay the dead letter queue."""


@dlq.command("list")
@_channel
@_error
@_since
@click.option("--limit", type=click.IntRange(1, 100), default=50, show_default=True)
@tenant_option
@click.pass_context
def dlq_list(
    ctx: click.Context, channel: str | None, error: str | None, since: datetime | None,
    limit: int, tenant: str,
) -> None:  # fmt: skip
    """List dead letters, newest failure first."""
    where = _dlq_filter(channel, error, since)
    page = run(settings_from(ctx), lambda s: s.dlq(tenant, where, 1, limit))
    table = Table(title=f"Dead letters ({page.total:,} in all)")
    for column in ("id", "type", "recipient", "attempts", "failed at", "error"):
        table.add_column(column, overflow="fold")
    for n in page.items:
        table.add_row(n.id, n.channel.value, mask_credentials(n.recipient), str(n.attempts),
                      iso(n.failed_at) or "", n.last_error or "")  # fmt: skip
    console.print(table)


@dlq.command("replay")
@click.option("--id", "ids", multiple=True, help="A dead letter to replay (repeatable).")
@click.option("--all", "everything", is_flag=True, help="Replay every dead letter matching.")
@_channel
@_error
@_since
@tenant_option
@click.pass_context
def dlq_replay(
    ctx: click.Context,
    ids: tuple[str, ...],
    everything: bool,
    channel: str | None,
    error: str | None,
    since: datetime | None,
    tenant: str,
) -> None:
    """Put dead letters back on their queue with a fresh retry ladder."""
    if not ids and not (everything or channel or error or since):
        raise click.UsageError(
            "name dead letters with --id, or select them with --all/--type/--error"
        )
    where = _dlq_filter(channel, error, since)
    actor = f"cli:{getpass.getuser()}"

    async def replay(store: Store) -> int:
        chosen = list(ids) or await _all_ids(store, tenant, where)
        done = 0
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("replay", total=len(chosen))
            for start in range(0, len(chosen), 100):
                chunk = chosen[start : start + 100]
                done += len(await store.replay(tenant, chunk, None, actor))
                progress.advance(task, len(chunk))
        return done

    done = run(settings_from(ctx), replay)
    console.print(f"{done:,} replayed")


async def _all_ids(store: Store, tenant: str, where: DlqFilter) -> list[str]:
    ids: list[str] = []
    page = 1
    while True:
        found = await store.dlq(tenant, where, page, 100)
        ids.extend(n.id for n in found.items)
        if page * 100 >= found.total or not found.items:
            return ids
        page += 1


@click.command()
@tenant_option
@click.pass_context
def stats(ctx: click.Context, tenant: str) -> None:
    """Counts by status, type and priority, and queue depth (one tenant's)."""
    s = run(settings_from(ctx), lambda store: store.stats(tenant))
    for title, counts in (("status", s.by_status), ("type", s.by_channel),
                          ("priority", s.by_priority), ("queue depth", s.queue_depth)):  # fmt: skip
        table = Table(title=f"By {title}")
        table.add_column(title)
        table.add_column("count", justify="right")
        for name, count in counts.items():
            table.add_row(name, f"{count:,}")
        console.print(table)
    console.print(
        f"total {s.total:,} · success rate {s.success_rate:.2f}% · "
        f"average processing {s.average_processing_ms:.1f} ms"
    )


@click.command()
@click.pass_context
def clean(ctx: click.Context) -> None:
    """Delete SENT notifications older than HERALD_CLEANUP_DAYS, and expired idempotency keys."""
    settings = settings_from(ctx)
    done = run(settings, lambda store: retention.clean_once(store, settings))
    console.print(
        f"removed {done.notifications:,} sent notifications older than "
        f"{settings.cleanup_days} days and {done.idempotency_keys:,} expired idempotency keys"
    )

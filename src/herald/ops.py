"""The operator's commands: ``herald queues``, ``herald dlq``, ``herald stats``, ``herald clean``.

They talk to the store directly (like ``herald send``), so they work with the
API down, and print readable tables with rich.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import retention, shortids
from .api.present import iso
from .api.queues import CLEANABLE
from .config import Settings
from .logs import configure
from .models import DEFAULT_TENANT, NOT_LANES, Channel, Page, Status, lanes_of
from .providers.ssrf import mask_credentials
from .store import Store, open_store
from .store.base import DlqFilter

T = TypeVar("T")
console = Console()
#: These commands read the store directly, as its administrator; --tenant picks whose rows.
tenant_option = click.option("--tenant", default=DEFAULT_TENANT, show_default=True,
                             help="The tenant whose rows to show or change.")  # fmt: skip


def limit_option(default: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """``--limit`` of a list command: how many rows its table shows."""
    return click.option("--limit", type=click.IntRange(1, 10_000), default=default,
                        show_default=True, help="Show at most this many.")  # fmt: skip


def show_more(shown: int, total: int) -> None:
    """Say so when the table shows fewer rows than there are."""
    if total > shown:
        console.print(f"showing {shown:,} of {total:,} (--limit shows more)")


class AnyCase(click.Choice[str]):
    """Words taken in any case (``sms``) and shown as Herald spells them (``SMS``)."""

    def __init__(self, words: Sequence[str]) -> None:
        super().__init__(words, case_sensitive=False)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"[{'|'.join(self.choices)}]"

    def get_invalid_choice_message(self, value: object, ctx: click.Context | None) -> str:
        return f"{value!r} is not one of {', '.join(self.choices)}"


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
    lanes = _lanes(name, "NAME")

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


_channel = click.option("--type", "channel", type=AnyCase([c.value for c in Channel]),
                        help="Only this channel's.")  # fmt: skip
_error = click.option("--error", help="Only those whose last error contains this text.")
_since = click.option("--since", type=click.DateTime(), help="Only those that failed since.")


@click.group()
def dlq() -> None:
    """Inspect and replay the dead letter queue."""


@dlq.command("list")
@_channel
@_error
@_since
@limit_option(50)
@tenant_option
@click.pass_context
def dlq_list(
    ctx: click.Context, channel: str | None, error: str | None, since: datetime | None,
    limit: int, tenant: str,
) -> None:  # fmt: skip
    """List dead letters, newest failure first; ids shortened as long as they stay unique."""
    where = _dlq_filter(channel, error, since)

    async def listed(store: Store) -> tuple[Page, dict[str, str]]:
        page = await store.dlq(tenant, where, 1, limit)
        return page, await shortids.shorten(store, tenant, [n.id for n in page.items])

    page, short = run(settings_from(ctx), listed)
    table = Table(title=f"Dead letters ({page.total:,} in all)")
    for column in ("id", "type", "recipient", "attempts", "failed at", "error"):
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    for n in page.items:
        table.add_row(short[n.id], n.channel.value, mask_credentials(n.recipient),
                      str(n.attempts), iso(n.failed_at) or "", n.last_error or "")  # fmt: skip
    console.print(table)
    show_more(len(page.items), page.total)


@dlq.command("replay")
@click.option("--id", "ids", multiple=True,
              help="A dead letter to replay, or its id's beginning (repeatable).")  # fmt: skip
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

    async def replay(store: Store) -> tuple[int, int]:
        named = {await shortids.resolve(store, tenant, i, "--id") for i in ids}
        chosen = sorted(named) or await _all_ids(store, tenant, where)
        done = 0
        columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("replay", total=len(chosen))
            for start in range(0, len(chosen), 100):
                chunk = chosen[start : start + 100]
                done += len(await store.replay(tenant, chunk, None, actor))
                progress.advance(task, len(chunk))
        return done, len(named)

    done, named = run(settings_from(ctx), replay)
    console.print(f"{done:,} replayed")
    if done < named:
        raise click.ClickException(f"{named - done:,} of the ids named are not dead letters")


@dlq.command("delete")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
@tenant_option
@click.pass_context
def dlq_delete(ctx: click.Context, ids: tuple[str, ...], tenant: str) -> None:
    """Delete dead letters and their history, by id or an id's unique beginning."""

    async def delete(store: Store) -> list[str]:
        chosen = [await shortids.resolve(store, tenant, i) for i in ids]
        missing = [i for i, full in zip(ids, chosen, strict=True)
                   if not await store.delete_dead(tenant, full)]  # fmt: skip
        return missing

    missing = run(settings_from(ctx), delete)
    if len(missing) < len(ids):
        console.print(f"{len(ids) - len(missing):,} deleted")
    if missing:
        raise click.ClickException(f"not in the dead letter queue: {', '.join(missing)}")


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
@click.option(
    "--days",
    type=click.IntRange(min=0),
    default=None,
    help="Older than this many days.  [default: HERALD_CLEANUP_DAYS]",
)
@click.option(
    "--queue",
    default=None,
    help="Only this lane, and one tenant's rows (as POST /api/queue/NAME/clean).",
)
@click.option(
    "--status",
    type=AnyCase(sorted(CLEANABLE)),
    default=None,
    help="With --queue: the rows to remove.  [default: completed]",
)
@tenant_option
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.pass_context
def clean(
    ctx: click.Context, days: int | None, queue: str | None, status: str | None, tenant: str,
    dry_run: bool,
) -> None:  # fmt: skip
    """Run retention now, on every tenant: SENT notifications older than HERALD_CLEANUP_DAYS
    (or --days), FAILED ones and sent ones beyond the newest as HERALD_FAILED_RETENTION_DAYS
    and HERALD_KEEP_SENT say, and expired idempotency keys.

    With --queue: one tenant's notifications of that lane in --status, older than the days.
    """
    if status is not None and queue is None:
        raise click.UsageError("--status chooses rows of one lane: name it with --queue")
    lanes = _lanes(queue, "--queue") if queue is not None else []
    settings = settings_from(ctx)
    days = settings.cleanup_days if days is None else days
    if lanes:
        statuses = CLEANABLE[(status or "completed").lower()]
        said = f"{(status or 'completed').lower()} notifications older than {days} days " \
               f"from {queue} of tenant {tenant}"  # fmt: skip
        before = time.time() - days * 86_400
        counted = run(settings, lambda store: _clean_lanes(store, tenant, lanes, statuses,
                                                           before, dry_run))  # fmt: skip
        console.print(f"{'would remove' if dry_run else 'removed'} {counted:,} {said}")
    elif dry_run:
        console.print(run(settings, lambda store: _retention_preview(store, settings, days)))
    else:
        chosen = settings.model_copy(update={"cleanup_days": days})
        done = run(settings, lambda store: retention.clean_once(store, chosen))
        console.print(
            f"removed {done.notifications:,} sent notifications older than {days} days, "
            f"{done.failed:,} failed, {done.beyond_kept:,} beyond HERALD_KEEP_SENT and "
            f"{done.idempotency_keys:,} expired idempotency keys"
        )
    if dry_run:
        console.print("nothing removed (--dry-run)")


def _lanes(name: str, hint: str) -> list[str]:
    if name.lower() in NOT_LANES:
        raise click.BadParameter(NOT_LANES[name.lower()], param_hint=hint)
    lanes = lanes_of(name)
    if not lanes:
        raise click.BadParameter(f"unknown queue {name!r}", param_hint=hint)
    return list(lanes)


async def _clean_lanes(
    store: Store, tenant: str, lanes: list[str], statuses: Sequence[Status], before: float,
    dry_run: bool,
) -> int:  # fmt: skip
    counted = 0
    for lane in lanes:
        if dry_run:
            counted += await store.count_old(before, statuses, tenant, lane)
        else:
            counted += await store.clean_queue(tenant, lane, statuses, before, sys.maxsize)
    return counted


async def _retention_preview(store: Store, settings: Settings, days: int) -> str:
    """What a retention run would remove now, counted, in words."""
    now = time.time()
    sent = await store.count_old(now - days * 86_400)
    said = f"would remove {sent:,} sent notifications older than {days} days"
    if settings.failed_retention_days is not None:
        before = now - settings.failed_retention_days * 86_400
        failed = await store.count_old(before, (Status.FAILED,))
        said += f", {failed:,} failed ones older than {settings.failed_retention_days} days"
    if settings.keep_sent is not None:
        said += f", and each tenant's sent ones beyond its {settings.keep_sent:,} newest"
    return said + " (every tenant's), and expired idempotency keys"

"""The ``herald`` command: run the service, migrate, and send from the shell."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from typing import Any

import click
import orjson

from . import backup, keys_cli, ops, preflight, suppressions_cli, users_cli
from .config import Settings
from .engine import Engine
from .errors import ConfigError, StoreUnavailable
from .httpserver import server_options
from .logs import configure
from .models import DEFAULT_TENANT, Channel, Priority


class Refused(click.ClickException):
    """Settings that cannot work: one ``Error:`` line per problem, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        for line in self.message.splitlines():
            click.echo(f"Error: {line}", err=True)


def _settings(
    options: dict[str, str] | None = None, serving: bool = False, reach: bool = True,
    **overrides: Any,
) -> Settings:  # fmt: skip
    """The settings, checked: their values, the database (unless ``reach`` is False: a
    command such as ``backup`` judges it itself and must not create it) and, for a process
    that serves or delivers (``serving``), its providers. Anything wrong ends the command
    (``Refused``)."""
    try:
        settings = preflight.load(overrides, options)
        if reach:
            preflight.reach_database(settings)
        if serving:
            configure(settings.log_level)  # what building the providers logs is JSON too
            preflight.build_providers(settings)
    except ConfigError as exc:
        raise Refused(str(exc)) from None
    return settings


def _serve(settings: Settings, deliver: bool, socket_fd: int | None = None) -> None:
    import uvicorn

    from .api.app import create_app

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal
    # again under the handlers it found; these make that second delivery a no-op
    # so a clean shutdown exits 0, as `herald worker` does.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    options = server_options(settings)
    app = create_app(settings, deliver=deliver)
    # What is imported and built by now lives as long as the process: frozen, the
    # collector's full passes stop walking it. In bulk ingest those passes took
    # 3 to 6 us of CPU per notification (of about 20), and 0.1 us once frozen.
    gc.collect()
    gc.freeze()
    if socket_fd is None:
        uvicorn.run(app, **options)
        return
    # Under `herald up --api-workers N` the supervisor binds the port and every
    # API process accepts from that one inherited socket.
    import socket

    server = uvicorn.Server(uvicorn.Config(app, **options))
    server.run(sockets=[socket.socket(fileno=socket_fd)])
    if not server.started:
        sys.exit(3)  # as uvicorn.run does when the app cannot start


class _Commands(click.Group):
    """Errors the commands share, said in one line: settings that cannot work (exit
    status 2, as for a usage error) and a database lost while a command ran (1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise Refused(str(exc)) from None
        except StoreUnavailable as exc:
            raise click.ClickException(f"the database cannot be reached: {exc}") from None


@click.group(cls=_Commands)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Herald: self-hosted notification delivery.

    Exit status: 0 done; 1 not done (not found, refused, the database lost
    while running); 2 a usage error or a setting that cannot work.
    """
    ctx.ensure_object(dict)
    ctx.obj["settings"] = _settings


@main.command()
@click.option("--host", default=None, help="Listen address (HERALD_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (HERALD_PORT).")
@click.option(
    "--api-workers",
    type=click.IntRange(min=0),
    default=None,
    help="API processes sharing the port (with --delivery-workers: separate processes).",
)
@click.option(
    "--delivery-workers",
    type=click.IntRange(min=0),
    default=None,
    help="Delivery worker processes beside the API processes.",
)
def up(
    host: str | None, port: int | None, api_workers: int | None, delivery_workers: int | None
) -> None:
    """Migrate, then run the API and the delivery worker.

    With neither option: one process does both. With either: a supervisor runs
    that many API and worker processes (1 of each unless given), restarts any
    that dies, and stops them all gracefully on SIGTERM or SIGINT.
    """
    settings = _settings(serving=True, host=host, port=port)
    configure(settings.log_level)
    if api_workers is None and delivery_workers is None:
        _serve(settings, deliver=True)
        return
    from .supervisor import Supervisor

    try:
        supervisor = Supervisor(
            settings,
            1 if api_workers is None else api_workers,
            1 if delivery_workers is None else delivery_workers,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    sys.exit(supervisor.run())


@main.command()
@click.option("--host", default=None, help="Listen address (HERALD_HOST).")
@click.option("--port", type=int, default=None, help="Listen port (HERALD_PORT).")
@click.option("--socket-fd", type=int, default=None, hidden=True)  # set by `herald up`
def api(host: str | None, port: int | None, socket_fd: int | None) -> None:
    """Run the HTTP API only; it stores notifications and delivers nothing."""
    settings = _settings(serving=True, host=host, port=port)
    configure(settings.log_level)
    _serve(settings, deliver=False, socket_fd=socket_fd)


@main.command()
@click.option(
    "--channels",
    default=None,
    help="Claim only these channels' lanes, e.g. email,sms (one worker per channel).",
)
@click.option(
    "--queues",
    default=None,
    help="Claim only these lanes, e.g. email,retry-1 (HERALD_WORKER_QUEUES).",
)
def worker(channels: str | None, queues: str | None) -> None:
    """Run the delivery worker only. SIGTERM/SIGINT stop it gracefully.

    With --channels or --queues (both may be given) it claims from those lanes
    only; retries escalated to retry-1 and retry-2 need a worker serving those.
    """
    if channels is not None:
        for name in filter(None, (part.strip() for part in channels.split(","))):
            if name.upper() not in Channel.__members__:
                raise click.BadParameter(f"{name!r} is not a channel", param_hint="--channels")
    lanes = ",".join(filter(None, (channels, queues)))
    settings = _settings({"worker_queues": "--channels/--queues"}, serving=True,
                         worker_queues=lanes or None)  # fmt: skip
    configure(settings.log_level)
    _run_async(_worker(settings))


async def _worker(settings: Settings) -> None:
    from .scrape import open_door

    engine = Engine(settings, deliver=True)
    await engine.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.stop_delivery)
    door = None
    try:
        door = await open_door(settings, engine.store)  # HERALD_METRICS_PORT
        await engine.wait()
    finally:
        if door is not None:
            await door.close()
        await engine.stop()


@main.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    settings = _settings()
    configure(settings.log_level)

    async def run() -> None:
        # open() applies the migrations; it is all this command needs.
        engine = Engine(settings, deliver=False)
        await engine.store.open()
        await engine.store.close()

    _run_async(run())
    click.echo("schema is up to date")


@main.command()
@click.option(
    "--type",
    "channel",
    type=ops.AnyCase([c.value for c in Channel]),
    default="EMAIL",
    show_default=True,
)
@click.option("--to", "recipient", required=True, help="Address, number, token or URL.")
@click.option("--subject", default=None)
@click.option("--message", required=True)
@click.option("--priority", type=ops.AnyCase([p.name for p in Priority]), default="MEDIUM",
              show_default=True)  # fmt: skip
@click.option("--metadata", default=None, help="A JSON object.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True)
def send(
    channel: str,
    recipient: str,
    subject: str | None,
    message: str,
    priority: str,
    metadata: str | None,
    tenant: str,
) -> None:
    """Queue one notification directly in the store and print it as JSON."""
    from pydantic import ValidationError

    from .api.schemas import NotificationIn

    try:
        extra = orjson.loads(metadata) if metadata else {}
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="'--metadata'") from None
    try:
        body = NotificationIn(
            type=Channel(channel), recipient=recipient, subject=subject, message=message,
            priority=priority, metadata=extra,
        )  # fmt: skip
    except ValidationError as exc:
        raise click.UsageError("\n".join(_refusals(exc))) from None
    settings = _settings()
    configure(settings.log_level)

    async def run() -> None:
        from .api import present
        from .api.ingest import to_new

        engine = Engine(settings, deliver=False)
        await engine.store.open()
        try:
            [stored] = await engine.store.create([to_new(body, tenant)])
        finally:
            await engine.store.close()
        data = present.notification(stored, engine.policy)
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())

    _run_async(run())


#: The option that carries each field of a notification, for error messages.
_OPTIONS = {"type": "--type", "recipient": "--to", "subject": "--subject", "message": "--message",
            "priority": "--priority", "metadata": "--metadata"}  # fmt: skip


def _refusals(exc: Any) -> list[str]:
    """Each refusal of a notification's fields, naming the option instead of the field."""
    said = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        field = str(error["loc"][0]) if error["loc"] else ""
        said.append(f"Invalid value for '{_OPTIONS[field]}': {message}" if field in _OPTIONS
                    else message)  # fmt: skip
    return said


def _run_async(coro: Any) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(coro)


for command in (ops.queues, ops.dlq, ops.stats, ops.clean, keys_cli.keys):
    main.add_command(command)
main.add_command(users_cli.users)
main.add_command(suppressions_cli.suppressions)
main.add_command(backup.backup)


if __name__ == "__main__":
    sys.exit(main())

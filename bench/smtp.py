"""SMTP: how fast one `herald worker` hands a backlog of email to a real SMTP server.

What it measures: messages per second from one `herald worker` through
Herald's SMTP provider (aiosmtplib, a pool of long-lived sessions, each
message composed as bytes once a session is free) into a local SMTP server
that accepts everything. Unlike drain.py and slow.py the provider here does
real work: every message is composed and goes through MAIL FROM, RCPT TO and
DATA, each a round trip on one of the pool's ``HERALD_SMTP_POOL_SIZE``
sessions. The target is 1,000 messages a second.

How: the sink is this script started again as ``smtp.py --sink PORT FILE``, a
process of its own running aiosmtpd on 127.0.0.1 (under uvloop) with a handler
that counts each message's DATA, remembers its X-Herald-Notification-Id and
answers 250; on SIGTERM it writes both counts to FILE as JSON and exits. It is
aiosmtpd's own SMTP server but for one thing: a plain ``<local@domain>``
argument of MAIL FROM and RCPT TO is split by a regular expression rather
than by aiosmtpd's address parser, which took about 45% of the sink's CPU
and made the sink the limit (see ``sink_server_class``). N (default 20,000)
EMAIL notifications are written straight into a fresh store (``_seeded.py``,
as drain.py), then `herald worker` is started with HERALD_EMAIL_PROVIDERS=smtp,
HERALD_SMTP_HOST=127.0.0.1, HERALD_SMTP_PORT=<the sink's>,
HERALD_SMTP_TLS=none and Herald's default HERALD_SMTP_POOL_SIZE
(``--pool-size`` overrides it), and the store is polled read-only every 0.2 s
until no row is left to send.

Pinning: with two CPUs and taskset, the worker is pinned to the first and the
sink to the second, so the server on the other end of the wire does not take
the worker's core (``--no-pin`` turns this off). The whole backlog is in the
store before the worker starts; nothing is rate-limited. The CPU time each
process used is read from /proc before it is stopped, to show which side is
the limit: a process near 100% of one core over the wall time is it.

Two rates are reported, as in drain.py: wall (worker start until the poll that
sees all N SENT) and active (first to last SENT, from the rows' own
``sent_at``); the target is judged on the active rate. The worker's CPU time
per message hardly depends on what else the machine runs, and 1000 ms divided
by it is the most one core could deliver; it includes the worker's start-up
(imports, migrations: 1 to 1.5 s of CPU), which is why N is large.
Checks: exactly N rows are SENT, exactly N audit rows say SENT, and the sink
accepted exactly N messages, from N different notifications.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import (
    BenchError,
    Service,
    choose_pinning,
    cpu_seconds,
    free_port,
    herald_env,
    start_service,
    stop_all,
    taskset_prefix,
    temp_dir,
)
from _report import Options, exit_with, finish, fmt_int, fmt_mib, prepare
from _seeded import drain_with_workers, in_force, seed_timed
from _stores import database
from herald.config import Settings

NAME = "smtp"
TARGET_PER_S = 1_000
ID_HEADER = b"\r\nX-Herald-Notification-Id: "
#: ``<local@domain>`` and what follows it (MAIL FROM / RCPT TO parameters), for the sink.
PLAIN_PATH = re.compile(
    r"<([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+|$)"
)

# -- the sink (its own process) ------------------------------------------------


class CountingHandler:
    """aiosmtpd handler: accept every message, count it and note whose it is."""

    def __init__(self) -> None:
        self.received = 0
        self.notification_ids: set[bytes] = set()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        # aiosmtpd finds its hooks by name: handle_<SMTP verb>.
        self.received += 1
        content: bytes = envelope.original_content or b""
        start = content.find(ID_HEADER)
        if start >= 0:
            start += len(ID_HEADER)
            self.notification_ids.add(content[start : content.find(b"\r\n", start)])
        return "250 OK"


def sink_server_class() -> type[Any]:
    """aiosmtpd's SMTP server, reading a plain ``<mailbox>`` argument itself.

    aiosmtpd parses the address of every MAIL FROM and RCPT TO with the
    standard library's header parser, and defines a ``typing.Protocol`` class
    on each call while at it: about 45% of the sink's CPU (py-spy), enough to
    make the sink rather than the worker the limit. An argument whose address
    is a plain dot-atom mailbox in angle brackets is split here, to the same
    address and parameters; anything else goes to aiosmtpd's own parser. All
    the rest (the command loop, DATA, replies) is aiosmtpd's.
    """
    from aiosmtpd.smtp import SMTP

    class SinkSMTP(SMTP):
        def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
            plain = PLAIN_PATH.match(arg)
            if plain is None or self.local_part_limit:
                return super()._getaddr(arg)
            return plain.group(1), arg[plain.end() :]

    return SinkSMTP


async def serve_sink(port: int, result_file: Path) -> None:
    """Accept mail on 127.0.0.1:``port`` until SIGTERM, then write the counts."""
    server_class = sink_server_class()
    loop = asyncio.get_running_loop()
    handler = CountingHandler()
    # A fixed hostname: without one aiosmtpd looks up the FQDN for every session.
    server = await loop.create_server(
        lambda: server_class(handler, hostname="sink.localhost", loop=loop), "127.0.0.1", port
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    counts = {"received": handler.received, "distinct": len(handler.notification_ids)}
    partial = result_file.with_suffix(".tmp")
    partial.write_text(json.dumps(counts))
    partial.replace(result_file)


def run_sink(port: int, result_file: Path) -> int:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve_sink(port, result_file))
    return 0


@dataclass(frozen=True)
class SinkCounts:
    received: int
    distinct: int


def start_sink(port: int, result_file: Path, work: Path, cpu: int | None) -> Service:
    command = [
        *taskset_prefix(cpu),
        sys.executable,
        __file__,
        "--sink",
        str(port),
        str(result_file),
    ]
    return start_service("smtp sink", command, os.environ, work, work / "sink.log")


def wait_listening(service: Service, port: int, timeout: float = 15.0) -> float:
    """Wait until ``port`` accepts connections; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        service.check_running()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise BenchError(f"{service.name} not listening after {timeout:.0f}s\n{service.log_tail()}")


def read_sink_counts(result_file: Path) -> SinkCounts | None:
    try:
        counts = json.loads(result_file.read_text())
    except (OSError, ValueError):
        return None
    return SinkCounts(int(counts["received"]), int(counts["distinct"]))


# -- the benchmark ---------------------------------------------------------------


def fmt_cpu(seconds: float | None, over: float) -> str:
    if seconds is None:
        return "n/a"
    share = f" ({seconds / over:.0%} of one core over the wall time)" if over > 0 else ""
    return f"{seconds:.2f} s{share}"


def parse_args() -> Options:
    default_pool = Settings.model_fields["smtp_pool_size"].default
    options = Options(__doc__)
    options.count(20_000)
    options.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help=f"HERALD_SMTP_POOL_SIZE (default: Herald's, {default_pool})",
    )
    options.store()
    options.no_pin()
    options.timeout(300.0)
    options.add_argument(
        "--sink",
        nargs=2,
        metavar=("PORT", "FILE"),
        help="run only the SMTP sink on PORT, writing its counts to FILE on SIGTERM "
        "(the benchmark starts itself this way)",
    )
    return options


def main() -> int:
    options = parse_args()
    args = options.parse()
    if args.count < 1 or args.timeout <= 0:
        options.error("--count and --timeout must be positive")
    if args.pool_size is not None and args.pool_size < 1:
        options.error("--pool-size must be positive")
    if args.sink is not None:
        return run_sink(int(args.sink[0]), Path(args.sink[1]))
    prepare()
    pinning = choose_pinning(not args.no_pin)
    port = free_port()
    settings = {
        "email_providers": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_tls": "none",
        "smtp_pool_size": args.pool_size,
    }
    pool_size = in_force(args.store, settings).smtp_pool_size
    print(
        f"smtp: {args.count:,} EMAIL notifications on {args.store}, one herald worker, "
        f"SMTP pool of {pool_size} sessions into an aiosmtpd sink on port {port}"
    )
    if pinning.server_cpu is not None:
        placement = f"taskset: herald on CPU {pinning.server_cpu}, sink on CPU {pinning.client_cpu}"
    else:
        placement = pinning.description
    print(f"pinning: {placement}")

    with temp_dir() as work, database(args.store, work) as db:
        print(f"seeded {args.count:,} in {seed_timed(db, args.count):.2f}s")
        result_file = work / "sink.json"
        sink = start_sink(port, result_file, work, pinning.client_cpu)
        cpu: dict[str, float | None] = {}

        def measure(workers: list[Service]) -> None:
            cpu["worker"], cpu["sink"] = cpu_seconds(workers[0].pid), cpu_seconds(sink.pid)

        try:
            ready = wait_listening(sink, port)
            print(f"smtp sink (pid {sink.pid}) listening after {ready:.2f}s")
            env = herald_env(db.url, **settings)
            drained = drain_with_workers(
                db, env, work, args.count, args.timeout,
                cpu=pinning.server_cpu, watch=[sink], measure=measure,
            )  # fmt: skip
        finally:
            stop_all([sink])  # after the worker, which QUITs its sessions: it counts to the end
        counts = read_sink_counts(result_file)

    worker_cpu, sink_cpu, done = cpu["worker"], cpu["sink"], drained.done
    received = counts.received if counts is not None else None
    distinct = counts.distinct if counts is not None else None
    sink_ok = received == args.count and distinct == args.count
    rate = drained.rate
    if counts is None:
        sink_figure = "n/a (the sink wrote no counts)"
    else:
        sink_figure = (
            f"{counts.received:,} from {counts.distinct:,} notifications "
            f"({'== N: OK' if sink_ok else '!= N: MISMATCH'})"
        )
    # Start-up (imports, migrations) is in it too; over thousands of messages it is small.
    cpu_per_message = None if worker_cpu is None else worker_cpu * 1000 / args.count
    figures = {
        "notifications": fmt_int(args.count),
        "store": args.store,
        "pinning": placement,
        "worker": f"1 process, SMTP pool of {pool_size} sessions",
        **drained.timing("messages"),
        "target": f"{TARGET_PER_S:,}/s: "
        + ("met" if rate is not None and rate >= TARGET_PER_S else "NOT met"),
        **drained.rows(),
        "sink received": sink_figure,
        "worker CPU": fmt_cpu(worker_cpu, done),
        "worker CPU per message": "n/a"
        if cpu_per_message is None
        else f"{cpu_per_message:.2f} ms (at most {1000 / cpu_per_message:,.0f}/s on one core)",
        "sink CPU": fmt_cpu(sink_cpu, done),
        "worker peak RSS": fmt_mib(drained.peak_rss_kib),
    }
    metrics: dict[str, object] = {
        "messages_per_s": rate,
        "messages_per_s_wall": args.count / done,
        "pool_size": pool_size,
        "sink_received": received,
        "peak_rss_kib": drained.peak_rss_kib,
        "sink_distinct": distinct,
        **drained.metrics(),
        "statuses": drained.found.statuses,
        "worker_cpu_s": worker_cpu,
        "worker_cpu_ms_per_message": cpu_per_message,
        "sink_cpu_s": sink_cpu,
    }
    params = {
        "count": args.count,
        "pool_size": pool_size,
        "pinning": placement,
        "store": args.store,
    }
    title = f"smtp (one herald worker, SMTP pool of {pool_size}, aiosmtpd sink)"
    ok = drained.all_sent and sink_ok
    failed = [] if ok else [
        f"expected {args.count:,} SENT rows, audit rows and messages at the sink"
    ]  # fmt: skip
    return finish(args, NAME, title, figures, metrics, params, failed)


if __name__ == "__main__":
    exit_with(main)

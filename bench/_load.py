"""Open-loop HTTP load and delivery records, shared by latency.py and backlog.py.

Open loop: request ``i`` of a run at ``rate`` per second is due ``i / rate``
seconds after the start and is sent then, whether or not earlier answers have
come back. A slow server therefore cannot slow the generator down and hide its
own slowness (coordinated omission). Should the generator itself fall behind,
every latency is still measured from the time the request was due, and how far
behind it fell is reported.

The client is a few lines of HTTP/1.1 over asyncio streams (keep-alive,
Content-Length framing, nothing else) rather than httpx: sending 3,000 POSTs
at 833/s cost this client about 0.2 ms of CPU each and httpx's AsyncClient
about 8 ms, so with httpx the generator could not keep its schedule and its
own overhead would be part of the latency it measures. Its connections come
from a pool that opens another one whenever none is free, so requests do not
queue for a connection unless the pool's limit is reached (counted). Every
request carries the benchmark's admin key (``_common.ADMIN_KEY``) unless the
connection is opened with another key or ``key=None``.

After the load, ``wait_delivered`` polls the store until nothing is left to
deliver and ``deliveries`` reads, for every notification, its status, priority,
``sent_at`` and how many audit rows say it was SENT (exactly-once checks).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import uvloop

from _common import ADMIN_KEY, BenchError, Service, credential_headers
from _stores import Database

#: An answer slower than this counts as an error (the server is stuck, not slow).
REQUEST_TIMEOUT = 30.0

T = TypeVar("T")


class ProtocolError(BenchError):
    """The server answered something this minimal client does not read."""


# -- the client ------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        key: str | None = ADMIN_KEY,
    ):
        self.reader = reader
        self.writer = writer
        self.host = host
        self.credential = "".join(f"{k}: {v}\r\n" for k, v in credential_headers(key).items())
        self.reusable = True

    @classmethod
    async def open(cls, host: str, port: int, key: str | None = ADMIN_KEY) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}", key)

    def alive(self) -> bool:
        """False once the server has closed it (uvicorn drops idle ones after 5 s)."""
        return self.reusable and not self.reader.at_eof() and not self.writer.is_closing()

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one request with a JSON body; (status, answer body)."""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.credential}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
            elif name == b"transfer-encoding":
                raise ProtocolError(f"{method} {path}: chunked answers are not supported")
        if length is None:
            raise ProtocolError(f"{method} {path}: the answer has no Content-Length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


class ConnectionPool:
    """Keep-alive connections to one server, opened on demand up to ``limit``."""

    def __init__(self, host: str, port: int, limit: int, key: str | None = ADMIN_KEY) -> None:
        self.host = host
        self.port = port
        self.limit = limit
        self.key = key
        self.opened = 0  # in total, including replacements for closed ones
        self.waited = 0  # requests that found every connection busy at the limit
        self._idle: list[Connection] = []
        self._open = 0
        self._freed = asyncio.Condition()

    async def warm(self, count: int) -> None:
        """Open ``count`` connections now, so the run does not pay for connecting."""
        fresh = await asyncio.gather(*(self._connect() for _ in range(count)))
        self._idle.extend(fresh)

    async def _connect(self) -> Connection:
        self._open += 1
        self.opened += 1
        try:
            return await Connection.open(self.host, self.port, self.key)
        except BaseException:
            self._open -= 1
            raise

    async def _take(self) -> Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()  # the most recently used: least likely to be closed
                if conn.alive():
                    return conn
                conn.close()
                self._open -= 1
            if self._open < self.limit:
                return await self._connect()
            self.waited += 1
            async with self._freed:
                await self._freed.wait()

    async def _give_back(self, conn: Connection) -> None:
        if conn.alive():
            self._idle.append(conn)
        else:
            conn.close()
            self._open -= 1
        async with self._freed:
            self._freed.notify()

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        conn = await self._take()
        try:
            return await conn.request(method, path, body)
        except BaseException:
            conn.close()  # its state is unknown: never reuse it
            raise
        finally:
            await self._give_back(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop, the event loop Herald itself serves on."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


# -- the open loop ---------------------------------------------------------------


@dataclass
class Shot:
    """One request of an open-loop run and what became of it."""

    index: int
    due: float  # POSIX seconds (time.time clock): when it was due to be sent
    lag: float  # seconds it left after it was due (the generator falling behind)
    status: int | None = None  # None: no answer, see ``error``
    seconds: float | None = None  # from when it was due to its answer
    body: bytes = b""
    error: str | None = None

    def notification_id(self) -> str | None:
        """The id in a ``{"data": {"id": ...}}`` answer, if there is one."""
        try:
            return str(orjson.loads(self.body)["data"]["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None


async def open_loop(
    pool: ConnectionPool,
    rate: float,
    method: str,
    path: str,
    bodies: Sequence[bytes],
    keep_going: Callable[[], bool] | None = None,
) -> list[Shot]:
    """Send ``bodies[i]`` at ``i / rate`` seconds from now, each in a task of its own.

    Stops early, before the next request, once ``keep_going()`` is false.
    Returns once every request sent has its answer or its error.
    """
    shots: list[Shot] = []
    tasks: set[asyncio.Task[None]] = set()

    async def send(shot: Shot, due: float, body: bytes) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                shot.status, shot.body = await pool.request(method, path, body)
            shot.seconds = time.perf_counter() - due
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, BenchError) as exc:
            shot.error = f"{type(exc).__name__}: {exc}"

    started = time.perf_counter()
    wall = time.time()
    for index, body in enumerate(bodies):
        offset = index / rate
        # Always yield, even when late: the tasks created so far must get to send.
        await asyncio.sleep(max(0.0, offset - (time.perf_counter() - started)))
        if keep_going is not None and not keep_going():
            break
        shot = Shot(index, wall + offset, lag=time.perf_counter() - started - offset)
        shots.append(shot)
        task = asyncio.create_task(send(shot, started + offset, body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)
    return shots


def percentiles(values: Sequence[float], points: Sequence[float]) -> dict[float, float | None]:
    """Nearest-rank percentiles: the smallest value with ``p`` % of them at or below it."""
    ordered = sorted(values)
    if not ordered:
        return dict.fromkeys(points)
    return {p: ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in points}


def fmt_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


# -- after the load: what the store says -----------------------------------------

#: Through the worker's partial indexes, so polling costs the worker almost nothing.
ANY_LEFT_QUERY = (
    "SELECT EXISTS (SELECT 1 FROM notifications"
    " WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING'))"
    " OR EXISTS (SELECT 1 FROM notifications WHERE status = 'PROCESSING')"
)


def wait_delivered(
    db: Database, services: Sequence[Service], timeout: float, poll: float = 0.2
) -> float:
    """Poll until no notification is left to deliver; returns the seconds it took."""
    started = time.monotonic()
    while bool(db.scalar(ANY_LEFT_QUERY)):
        for service in services:
            service.check_running()
        if time.monotonic() - started > timeout:
            raise BenchError(f"notifications still undelivered after {timeout:g}s")
        time.sleep(poll)
    return time.monotonic() - started


@dataclass(frozen=True)
class Delivery:
    """One notification as the store has it after the run."""

    status: str
    priority: int
    sent_at: float | None  # POSIX seconds, taken by the worker when the provider accepted it
    sent_audits: int  # audit rows that say SENT: exactly one when delivered exactly once


def deliveries(db: Database) -> dict[str, Delivery]:
    """Every notification in the store, by id."""
    audits = dict(
        db.rows(
            "SELECT notification_id, count(*) FROM audit WHERE status = 'SENT'"
            " GROUP BY notification_id"
        )
    )
    rows = db.rows("SELECT id, status, priority, sent_at FROM notifications")
    return {
        str(id_): Delivery(str(status), int(priority), sent_at, int(audits.get(id_, 0)))
        for id_, status, priority, sent_at in rows
    }

"""PgQueuer doing Herald's drain work on PostgreSQL, one consumer process.

Configuration:
  * database: ``PEER_PG_DSN``, a throwaway database the driver creates and
    drops; the schema is installed with PgQueuer's own CLI
    (``pgq install``, durability ``durable``: every table logged, so each
    commit waits for the WAL flush under the server's ``synchronous_commit``,
    as Herald's PostgreSQL store does);
  * consumer: ``python pgqueuer_peer.py``, which runs ``consumer`` through
    ``pgqueuer.run`` exactly as ``pgq run pgqueuer_peer:consumer
    --batch-size 100`` would (``PEER_PG_BATCH_SIZE``
    changes it) (the installed CLI's ``run`` fails before it
    starts: it hands its log level to the logging setup as a string, which
    expects an enum). One process, one asyncpg connection, jobs claimed 100
    at a time (the default is 10; a competent user raises it for many tiny
    jobs), no cap on concurrent tasks, PgQueuer's log level WARNING. The
    entrypoint is an ``async`` function, so each job runs on the event loop,
    not in a thread;
  * status record: PgQueuer itself writes one ``pgqueuer_log`` row per job
    and status, in the same statement that deletes the finished job from the
    queue (buffered: up to one batch per statement); the row with status
    ``successful`` is the job's status record and its ``created`` time the
    completion time. The log rows are kept (the periodic aggregation into
    ``pgqueuer_statistics`` only marks them ``aggregated``).

Enqueueing: ``Queries.enqueue`` with lists, 1,000 jobs per INSERT. The
endpoint enqueues one job per request through an asyncpg pool of 8
connections, the library's async client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import endpoint
import orjson
import pgqueuer
import sink
from harness import Inspection
from pgqueuer import PgQueuer, Queries
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job

DSN = os.environ.get("PEER_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
ENTRYPOINT = "deliver"
BATCH_SIZE = int(os.environ.get("PEER_PG_BATCH_SIZE", "100"))
POOL_SIZE = 8


@contextlib.asynccontextmanager
async def consumer() -> AsyncIterator[PgQueuer]:
    """The factory ``pgq run`` takes: one connection, one entrypoint."""
    connection = await asyncpg.connect(DSN)
    queuer = PgQueuer(AsyncpgDriver(connection))

    @queuer.entrypoint(ENTRYPOINT)
    async def deliver(job: Job) -> None:
        sink.deliver(orjson.loads(job.payload or b"{}"))

    try:
        yield queuer
    finally:
        await connection.close()


class PgQueuerPeer:
    """The harness's view of the queue: PgQueuer's tables over one connection."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: asyncpg.Connection | None = None

    def _run(self, query: str, *args: Any) -> list[Any]:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._connection = self._loop.run_until_complete(asyncpg.connect(DSN))
        assert self._connection is not None
        return list(self._loop.run_until_complete(self._connection.fetch(query, *args)))

    def reset(self) -> None:
        self._run("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    def enqueue(self, notifications: list[dict[str, Any]]) -> None:
        self._run("SELECT 1")  # opens the connection on the peer's loop
        assert self._loop is not None and self._connection is not None
        queries = Queries.from_asyncpg_connection(self._connection)
        payloads: list[bytes | None] = [orjson.dumps(n) for n in notifications]
        count = len(payloads)
        self._loop.run_until_complete(queries.enqueue([ENTRYPOINT] * count, payloads, [0] * count))

    def any_left(self, count: int) -> bool:
        return bool(self._run("SELECT EXISTS (SELECT 1 FROM pgqueuer)")[0][0])

    def left(self, count: int) -> int:
        return int(self._run("SELECT count(*) FROM pgqueuer")[0][0])

    def queued(self) -> int:
        return self.left(0)

    def inspect(self) -> Inspection:
        [row] = self._run(
            "SELECT count(DISTINCT job_id),"
            " count(*) FILTER (WHERE status = 'successful'),"
            " extract(epoch FROM min(created) FILTER (WHERE status = 'successful')),"
            " extract(epoch FROM max(created) FILTER (WHERE status = 'successful'))"
            " FROM pgqueuer_log"
            " WHERE status IN ('successful', 'exception', 'failed', 'canceled', 'deleted')"
        )
        first, last = (None if v is None else float(v) for v in row[2:])
        return Inspection(int(row[0]), int(row[1]), first, last)


class _Endpoint:
    """The endpoint's enqueue side: an asyncpg pool opened at start-up."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None
        self.queries: Queries | None = None

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(DSN, min_size=POOL_SIZE, max_size=POOL_SIZE)
        self.queries = Queries.from_asyncpg_pool(self.pool)

    async def stop(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    async def enqueue(self, notification: dict[str, Any]) -> str:
        assert self.queries is not None
        [job_id] = await self.queries.enqueue(ENTRYPOINT, orjson.dumps(notification))
        return str(job_id)


PEER = PgQueuerPeer()
_endpoint = _Endpoint()
asgi = endpoint.build_app(_endpoint.enqueue, _endpoint.start, _endpoint.stop)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(pgqueuer.run(consumer, batch_size=BATCH_SIZE))

"""Huey doing Herald's drain work: SqliteHuey, one consumer with worker threads.

Configuration:
  * storage: ``SqliteHuey`` on the file ``PEER_HUEY_FILE`` in the driver's
    temporary directory, WAL journal (Huey's default) and ``fsync=True``,
    which is ``PRAGMA synchronous=FULL``, as Herald's SQLite store runs.
    Huey's default is ``fsync=False``, which means ``synchronous=OFF``: no
    fsync at all, so a crash of the machine can lose acknowledged jobs and
    results; that would not be the same work as Herald's durable status;
  * results on (Huey's default): the task's return value, the sink's status
    with ``sent_at``, is pickled into the ``kv`` table under the task id; that
    row is the job's status record;
  * consumer: one ``huey_consumer`` process, ``-k thread -w 4`` (four worker
    threads, the driver's ``--threads``: every dequeue and every result is
    its own ``BEGIN EXCLUSIVE`` transaction on one file, so more threads
    would mostly wait for that lock),
    ``-d 0.01`` (a worker that finds the queue empty polls again after 10 ms,
    backing off to ``-m 1`` s), ``-n`` (no periodic tasks), ``-C`` (no health
    check thread), ``-q`` (quiet logging).

Enqueueing: Huey has no bulk enqueue (``Task.map`` enqueues one at a time),
so each job is one INSERT in its own fsynced transaction. The endpoint calls
the task in the event loop: Huey's client is synchronous.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import Any

import endpoint
import sink
from harness import Inspection
from huey import SqliteHuey

HUEY_FILE = os.environ.get("PEER_HUEY_FILE", "huey.db")
NAME = "herald-peer"

huey = SqliteHuey(NAME, filename=HUEY_FILE, fsync=True)


@huey.task(name="deliver")
def deliver(notification: dict[str, Any]) -> dict[str, Any]:
    return sink.deliver(notification)


class HueyPeer:
    """The harness's view of the queue: Huey's storage, read with plain SQL where cheaper."""

    def reset(self) -> None:
        huey.flush()

    def enqueue(self, notifications: list[dict[str, Any]]) -> None:
        for notification in notifications:
            deliver(notification)

    def _results(self) -> int:
        rows = huey.storage.sql("SELECT count(*) FROM kv WHERE queue = ?", (NAME,), results=True)
        return int(rows[0][0])

    def left(self, count: int) -> int:
        return count - self._results()

    def any_left(self, count: int) -> bool:
        return self.left(count) > 0

    def queued(self) -> int:
        return int(huey.pending_count())

    def inspect(self) -> Inspection:
        with contextlib.closing(sqlite3.connect(f"file:{HUEY_FILE}?mode=ro", uri=True)) as conn:
            query = "SELECT value FROM kv WHERE queue = ?"
            values = [row[0] for row in conn.execute(query, (NAME,))]
        times = []
        for raw in values:
            result = huey.serializer.deserialize(raw)
            if isinstance(result, dict) and result.get("status") == sink.SENT:
                times.append(float(result["sent_at"]))
        return Inspection(
            len(values), len(times), min(times, default=None), max(times, default=None)
        )


async def _enqueue_one(notification: dict[str, Any]) -> str:
    return str(deliver(notification).id)


PEER = HueyPeer()
asgi = endpoint.build_app(_enqueue_one)

"""Celery 5 doing Herald's drain work: Redis as broker and result backend.

Configuration (what a competent user would pick for many small, fast tasks
that must not be lost):
  * broker and result backend: Redis at ``PEER_REDIS_URL`` (the driver uses a
    database index of its own, flushed before and after the run);
  * ``task_acks_late``: a message is acknowledged only after the task returned
    and its result was stored, so a worker that dies loses nothing (Herald's
    lease gives the same guarantee); ``task_reject_on_worker_lost`` re-queues
    the message if the worker process dies mid-task;
  * worker: one process, ``--pool threads --concurrency 8`` (the driver's
    ``--threads``), prefetch
    multiplier 32 (256 messages reserved at a time, so the worker is not
    waiting on Redis between tiny tasks), without gossip, mingle or
    heartbeats (one worker, nobody to talk to), log level warning;
  * the task calls the sink (``sink.deliver``, an in-process call that
    returns at once) and returns its status; the result backend stores it
    under ``celery-task-meta-<id>`` (status SUCCESS, the returned dict with
    ``sent_at``, ``date_done``), which is the job's status record. Results
    never expire during a run (``result_expires`` is one day).

Enqueueing: Celery has no bulk publish, so the jobs are sent with
``apply_async`` one by one over one producer connection. With the Redis result
backend each ``apply_async`` also SUBSCRIBEs the client to the task's result
channel (and UNSUBSCRIBEs when the result object is dropped): three Redis
commands per job, Celery's default behaviour, left as it is. The endpoint
calls ``apply_async`` in the event loop (Celery's client is synchronous; a
Redis round trip on localhost is shorter than a hand-off to a thread).
"""

from __future__ import annotations

import json
import os
from typing import Any

import endpoint
import sink
from celery import Celery
from harness import Inspection

REDIS_URL = os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/7")
QUEUE = "celery"
RESULT_PATTERN = "celery-task-meta-*"

queue_app = Celery("herald_peer", broker=REDIS_URL, backend=REDIS_URL)
queue_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=32,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=86_400,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@queue_app.task(name="deliver")
def deliver(notification: dict[str, Any]) -> dict[str, Any]:
    return sink.deliver(notification)


class CeleryPeer:
    """The harness's view of the queue: Redis keys, read with Celery's own client."""

    def _redis(self) -> Any:
        return queue_app.backend.client

    def reset(self) -> None:
        self._redis().flushdb()

    def enqueue(self, notifications: list[dict[str, Any]]) -> None:
        with queue_app.producer_or_acquire() as producer:
            for notification in notifications:
                deliver.apply_async((notification,), producer=producer)

    def left(self, count: int) -> int:
        redis = self._redis()
        return int(redis.llen(QUEUE)) + int(redis.hlen("unacked"))

    def any_left(self, count: int) -> bool:
        return self.left(count) > 0

    def queued(self) -> int:
        return int(self._redis().llen(QUEUE))

    def inspect(self) -> Inspection:
        redis = self._redis()
        keys = list(redis.scan_iter(match=RESULT_PATTERN, count=5_000))
        successes = 0
        times: list[float] = []
        for start in range(0, len(keys), 5_000):
            for raw in redis.mget(keys[start : start + 5_000]):
                meta = json.loads(raw) if raw else {}
                result = meta.get("result")
                succeeded = meta.get("status") == "SUCCESS" and isinstance(result, dict)
                if succeeded and result.get("status") == sink.SENT:
                    successes += 1
                    times.append(float(result["sent_at"]))
        return Inspection(len(keys), successes, min(times, default=None), max(times, default=None))


async def _enqueue_one(notification: dict[str, Any]) -> str:
    return str(deliver.apply_async((notification,)).id)


PEER = CeleryPeer()
asgi = endpoint.build_app(_enqueue_one)

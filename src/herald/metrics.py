"""Prometheus metrics (seed 004's names and Herald's own) at ``GET /api/metrics``.

Each kind stays true over time:

- Counters count events as they happen, in the process where they happen,
  once the store committed them: an API process counts the notifications it
  stored and the receipts it applied, a worker what it claimed and how each
  attempt ended. Deleting rows (retention, ``DELETE /api/dlq/{id}``) does not
  unsay them, so ``rate()`` holds.
- Gauges of the store (queue depth, rows waiting and for how long, the DLQ,
  breakers, live workers) are read from it at each scrape, over every tenant,
  so every API process reports the same truth.
- ``herald_inflight_sends`` is each worker's own, summed over processes.

Several processes on one host (``herald up --api-workers N --delivery-workers
M``): the supervisor hands them a private directory (``PROMETHEUS_MULTIPROC_DIR``)
where each keeps its counters, histograms and gauges in files
(prometheus_client's multiprocess mode), and any API process's scrape adds
them all up. Processes on several hosts are scraped each on their own (a
worker through ``HERALD_METRICS_PORT``, ``scrape.py``).

No tenant label: tenants are made through the API without bound, and a label
per tenant would let callers grow every scrape without end; each tenant's own
numbers are at ``GET /api/notifications/stats/system``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .models import (
    CLAIMED_QUEUES,
    Channel,
    Dead,
    Deferred,
    Gauges,
    Outcome,
    Priority,
    Retry,
    Sent,
    Status,
    Suppressed,
)

if TYPE_CHECKING:
    from .store.ports import BreakerState

#: Set for the processes of one ``herald up`` with several processes (``supervisor.py``):
#: prometheus_client reads it when it is imported, and keeps values in files there.
MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)  # fmt: skip
PROCESSING = Histogram(
    "notification_processing_duration_seconds",
    "Time from claim to the provider's answer, per attempt",
    ["type", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
#: Provider receipts (``api/receipts.py``). Outcomes ``matched`` and ``unknown`` count
#: events (one per message and recipient); ``refused``, ``replayed``, ``unavailable``
#: (not applied, the provider retries) and ``confirmed`` (an SNS subscription) count requests.
RECEIPTS = Counter(
    "herald_receipts", "Provider delivery receipts, by outcome", ["provider", "outcome"],
    registry=REGISTRY,
)  # fmt: skip


def _by_type(name: str, text: str, *more: str) -> Counter:
    return Counter(name, text, ["type", *more], registry=REGISTRY)


CREATED = _by_type("notifications_created", "Notifications stored (status callbacks included)")
SENT = _by_type("notifications_sent", "Notifications a provider accepted", "provider")
FAILED = _by_type("notifications_failed", "Notifications moved to FAILED (the DLQ)")
RETRIED = _by_type("notifications_retried", "Attempts that failed with a retry scheduled")
DEFERRED = _by_type(
    "notifications_deferred",
    "Attempts put back unspent: no capacity in time (rate limit, open breaker, ...)",
    "reason",
)
DELIVERED = _by_type("notifications_delivered", "Receipts that moved a notification to DELIVERED")
BOUNCED = _by_type("notifications_bounced", "Receipts that moved a notification to BOUNCED")
UNDELIVERED = _by_type(
    "notifications_undelivered", "Receipts that moved an SMS to UNDELIVERED (the carrier's word)"
)
COMPLAINED = _by_type(
    "notifications_complained", "Receipts that moved a notification to COMPLAINED (spam)"
)
SUPPRESSED = _by_type(
    "notifications_suppressed", "Notifications not sent: the recipient is on the suppression list"
)
CLAIMS = Counter("herald_claims", "Notifications claimed by workers", registry=REGISTRY)
INFLIGHT = Gauge(
    "herald_inflight_sends",
    "Claims workers hold: being sent, or sent and not yet recorded",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

#: Each per-channel counter's children, made here: every channel's series exists from
#: the start (at 0), and counting is a dictionary lookup, not ``labels()`` (which checks
#: its values and looks them up under a lock on every call).
_PER_CHANNEL = (CREATED, FAILED, RETRIED, DELIVERED, BOUNCED, UNDELIVERED, COMPLAINED, SUPPRESSED)
_CHANNEL = {counter: {c: counter.labels(c.value) for c in Channel} for counter in _PER_CHANNEL}
_CREATED = _CHANNEL[CREATED]
#: What a receipt moved a notification to, and the counter it counts in.
_MOVED = {
    Status.DELIVERED.value: DELIVERED, Status.BOUNCED.value: BOUNCED,
    Status.UNDELIVERED.value: UNDELIVERED, Status.COMPLAINED.value: COMPLAINED,
}  # fmt: skip
#: Children with a second label (provider, reason): bounded by the providers built and
#: ``models.DEFER_CAUSES``.
_CHILDREN: dict[tuple[Counter, str, str], Any] = {}


def _child(counter: Counter, channel: str, detail: str) -> Any:
    child = _CHILDREN.get((counter, channel, detail))
    if child is None:
        child = _CHILDREN[counter, channel, detail] = counter.labels(channel, detail)
    return child


#: Each (method, route, status)'s two children, looked up once: ``labels()`` checks its
#: values and looks them up under a lock on every call (3.5 us a request, 1.6 with this).
#: Routes are the app's templates and statuses a few dozen, so this stays small.
_HTTP_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_http(method: str, route: str, status: int, started: float) -> None:
    children = _HTTP_CHILDREN.get((method, route, status))
    if children is None:
        children = _HTTP_CHILDREN[method, route, status] = (
            HTTP_REQUESTS.labels(method, route, str(status)),
            HTTP_DURATION.labels(method, route),
        )
    children[0].inc()
    children[1].observe(time.perf_counter() - started)


# -- counting, after the store committed --------------------------------------------------


def created(channel: Channel) -> None:
    """One notification stored (the ingest path's: one lookup, one increment)."""
    _CREATED[channel].inc()


def created_many(channels: Iterable[Channel]) -> None:
    """Notifications stored together (bulk, an event's fan-out)."""
    counts: dict[Channel, int] = {}
    for channel in channels:
        counts[channel] = counts.get(channel, 0) + 1
    for channel, n in counts.items():
        _CREATED[channel].inc(n)


def claimed(count: int) -> None:
    CLAIMS.inc(count)


def holding(claims: int) -> None:
    """The claims this worker holds now (``herald_inflight_sends``)."""
    INFLIGHT.set(claims)


def recorded(outcomes: Sequence[Outcome]) -> None:
    """Count a batch of outcomes the store recorded, and the status callbacks it stored
    with them (one per Sent or Dead that asked for one)."""
    counts: dict[tuple[Counter, Channel, str | None], int] = {}
    callbacks = 0
    for o in outcomes:
        channel = o.claim.channel
        if isinstance(o, Sent):
            key: tuple[Counter, Channel, str | None] = (SENT, channel, o.provider)
            callbacks += o.callback is not None
        elif isinstance(o, Retry):
            key = (RETRIED, channel, None)
        elif isinstance(o, Dead):
            key = (FAILED, channel, None)
            callbacks += o.callback is not None
        elif isinstance(o, Deferred):
            key = (DEFERRED, channel, o.cause)
        else:
            assert isinstance(o, Suppressed)
            key = (SUPPRESSED, channel, None)
        counts[key] = counts.get(key, 0) + 1
    for (counter, channel, detail), n in counts.items():
        if detail is None:
            _CHANNEL[counter][channel].inc(n)
        else:
            _child(counter, channel.value, detail).inc(n)
    if callbacks:
        _CREATED[Channel.WEBHOOK].inc(callbacks)


def buried(channels: Iterable[Channel]) -> None:
    """Notifications a sweep moved to the DLQ (they stalled on their last attempt)."""
    for channel in channels:
        _CHANNEL[FAILED][channel].inc()


def receipts_applied(moves: Mapping[tuple[str, str], int], callbacks: int) -> None:
    """Status moves a batch of receipts made, by (channel, status), and the callbacks
    stored with them."""
    for (channel, status), n in moves.items():
        _CHANNEL[_MOVED[status]][Channel(channel)].inc(n)
    if callbacks:
        _CREATED[Channel.WEBHOOK].inc(callbacks)


# -- the scrape -----------------------------------------------------------------------------


class _StoreGauges(Collector):
    """The store's gauges, as read for one scrape: each series once."""

    def __init__(self, gauges: Gauges, breakers: Sequence[BreakerState], now: float) -> None:
        self.gauges = gauges
        self.breakers = breakers
        self.now = now

    def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's own signature
        g = self.gauges
        depth = GaugeMetricFamily(
            "queue_depth", "Notifications waiting or being sent, per lane", labels=["queue"]
        )
        for queue, count in g.depth.items():
            depth.add_metric([queue], count)
        yield depth
        waiting = GaugeMetricFamily(
            "herald_queue_waiting", "Notifications due and not yet claimed",
            labels=["queue", "priority"],
        )  # fmt: skip
        oldest = GaugeMetricFamily(
            "herald_oldest_waiting_seconds",
            "How long the longest-waiting due notification of each lane has waited",
            labels=["queue"],
        )
        for queue in CLAIMED_QUEUES:
            for priority in Priority:
                waiting.add_metric([queue, priority.name], g.waiting.get((queue, priority.name), 0))
            due = g.oldest_due.get(queue)
            oldest.add_metric([queue], 0.0 if due is None else max(0.0, self.now - due))
        yield waiting
        yield oldest
        yield GaugeMetricFamily("herald_dlq_size", "Notifications in the DLQ", value=g.dlq)
        yield GaugeMetricFamily(
            "herald_workers", "Delivery worker processes alive (by their heartbeats)",
            value=g.workers,
        )  # fmt: skip
        yield _breakers(self.breakers)
        by_status = GaugeMetricFamily(
            "notifications", "Notifications by current status", labels=["status"]
        )
        for status, count in g.by_status.items():
            by_status.add_metric([status], count)
        yield by_status


def _breakers(breakers: Sequence[BreakerState]) -> GaugeMetricFamily:
    """1 where a provider's breaker is open or half-open in a process, else 0.

    A webhook or chat provider has a breaker per receiver (``provider:destination``):
    receivers are the callers' to choose, so they are no label; the provider's series
    is 1 while any receiver's breaker is open.
    """
    family = GaugeMetricFamily(
        "herald_breaker_open", "Circuit breakers open or half-open (1) or closed (0)",
        labels=["provider", "process"],
    )  # fmt: skip
    opened: dict[tuple[str, str], int] = {}
    for b in breakers:
        key = (b.provider.partition(":")[0], b.instance)
        opened[key] = max(opened.get(key, 0), int(b.state != "closed"))
    for (provider, instance), value in sorted(opened.items()):
        family.add_metric([provider, instance], value)
    return family


def exposition(gauges: Gauges, breakers: Sequence[BreakerState], now: float) -> bytes:
    """One scrape: the store's gauges, then the counters, histograms and gauges of this
    process (of every process on the host, in multiprocess mode)."""
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_StoreGauges(gauges, breakers, now))
    return generate_latest(scrape) + processes()


def processes() -> bytes:
    """This process's own metrics; in multiprocess mode, every process's added up (the
    files of processes that died stay in: their counts happened)."""
    if MULTIPROCESS_DIR is None:
        return generate_latest(REGISTRY)
    merged = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(merged, MULTIPROCESS_DIR)  # type: ignore[no-untyped-call]
    return generate_latest(merged)

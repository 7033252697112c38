"""Prometheus metrics (seed 004's names) at ``GET /api/metrics``.

Counts of notifications by type and status and the depth of each queue are
read from the store when scraped, so every API process reports the same
truth however many workers write it. What only a process can know (its
HTTP requests, the provider calls its worker made) lives in that process's
registry.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .models import ACCEPTED, Stats, Status

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


#: The per-type counters read from the store: name -> (help, the statuses counted; None
#: for all). Seed 004 named the first three. A receipt moves a notification on from SENT,
#: so ``sent`` counts every status a provider accepted it in and ``delivered`` keeps a
#: complaint (only a recipient who got the message can complain): these counters then do
#: not step down as receipts arrive, which Prometheus would read as a reset. A late bounce
#: after a delivery receipt still moves one notification from delivered to bounced.
_BY_TYPE: dict[str, tuple[str, frozenset[str] | None]] = {
    "notifications_created": ("Notifications accepted", None),
    "notifications_sent": (
        "Notifications a provider accepted (SENT, or a status a receipt moved it to since)",
        frozenset(s.value for s in ACCEPTED),
    ),
    "notifications_failed": ("Notifications in the DLQ", frozenset({Status.FAILED.value})),
    "notifications_delivered": (
        "Notifications a receipt said were delivered (or complained about)",
        frozenset({Status.DELIVERED.value, Status.COMPLAINED.value}),
    ),
    "notifications_bounced": (
        "Notifications a receipt said bounced",
        frozenset({Status.BOUNCED.value}),
    ),
    "notifications_undelivered": (
        "SMS a receipt said the carrier could not deliver",
        frozenset({Status.UNDELIVERED.value}),
    ),
    "notifications_complained": (
        "Notifications the recipient marked as spam",
        frozenset({Status.COMPLAINED.value}),
    ),
    "notifications_suppressed": (
        "Notifications not sent: the recipient is on the suppression list",
        frozenset({Status.SUPPRESSED.value}),
    ),
}


class _StoreSnapshot(Collector):
    """The store's counts, as read for one scrape."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self):  # type: ignore[no-untyped-def]  # prometheus_client's own signature
        families = {
            name: CounterMetricFamily(name, text, labels=["type"])
            for name, (text, _) in _BY_TYPE.items()
        }
        for name, (_, statuses) in _BY_TYPE.items():
            per_channel: dict[str, int] = {}
            for (channel, status), count in self.stats.by_channel_status.items():
                if statuses is None or status in statuses:
                    per_channel[channel] = per_channel.get(channel, 0) + count
            for channel, count in sorted(per_channel.items()):
                families[name].add_metric([channel], count)
        yield from families.values()
        depth = GaugeMetricFamily(
            "queue_depth", "Notifications waiting per queue", labels=["queue"]
        )
        for queue, count in self.stats.queue_depth.items():
            depth.add_metric([queue], count)
        yield depth
        by_status = GaugeMetricFamily(
            "notifications", "Notifications by current status", labels=["status"]
        )
        for status, count in self.stats.by_status.items():
            by_status.add_metric([status], count)
        yield by_status


def exposition(stats: Stats) -> bytes:
    snapshot = CollectorRegistry(auto_describe=False)
    snapshot.register(_StoreSnapshot(stats))
    return generate_latest(snapshot) + generate_latest(REGISTRY)

"""The overview's charts: the last hour of delivery, drawn on the server as inline SVG.

Two sources, both honest about what they are:

- **Sent, failed and retried per minute** are counted from the store's history
  (``store.history_per_minute``, over an index on the history's time), so every
  process draws the same numbers. A tenant's counts are read at most once per
  ``ACTIVITY_TTL`` seconds per process, however many dashboards ask.
- **Queue depth** is not kept anywhere over time, so this process samples it
  (``Depths``): every ``SAMPLE_EVERY`` seconds while one of the tenant's
  dashboards is open (the live poller asks), and whenever its overview is
  rendered. The line has gaps where nobody was looking, and each process
  draws its own samples.

``line_chart`` lays a chart out (scales, ticks, paths) as plain values, and
``partials/chart.html`` draws it: an ``<svg role="img">`` with a title and a
description that says in words what the lines show. No script, no library.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..models import QueueCounts, Status
from ..store.base import Store

HOUR = 3600
ACTIVITY_TTL = 5.0
SAMPLE_EVERY = 10.0
#: Tenants whose queue depth one process remembers (the least recently looked at go first).
MAX_TENANTS = 64
CHARTED = (Status.SENT, Status.FAILED, Status.RETRYING)

#: SVG user units; the stylesheet sets the text's size per screen width (the image scales).
WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 28, 14, 30


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str  # the stroke's class in dashboard.css (colour and dash pattern)
    points: list[tuple[float, float] | None]  # (time, value); None breaks the line
    total: str  # what the legend says beside the name


@dataclass(frozen=True, slots=True)
class Drawn:
    name: str
    css: str
    path: str
    dots: list[tuple[float, float]]  # points with no neighbour to draw a line to
    total: str


@dataclass(frozen=True, slots=True)
class Chart:
    """A laid-out chart: what ``partials/chart.html`` needs, in SVG user units."""

    id: str
    title: str
    description: str
    unit: str
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    x_ticks: list[tuple[float, str]]
    y_ticks: list[tuple[float, str]]
    series: list[Drawn]
    empty: str | None


def nice_ceiling(value: float) -> tuple[float, float]:
    """A round top for an axis showing ``value`` and its tick step (1, 2 or 5 times 10^k)."""
    value = max(value, 4.0)
    rough = value / 4
    power = 10 ** math.floor(math.log10(rough))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= rough)
    return step * math.ceil(value / step - 1e-9), step


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def line_chart(chart_id: str, title: str, description: str, unit: str, start: float,
               end: float, series: Sequence[Series], empty: str | None) -> Chart:  # fmt: skip
    """Place ``series`` on a time axis from ``start`` to ``end`` (POSIX seconds, UTC)."""
    values = [p[1] for s in series for p in s.points if p is not None]
    top_value, step = nice_ceiling(max(values, default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: float) -> float:
        return round(LEFT + (at - start) / (end - start) * plot_w, 1)

    def y(value: float) -> float:
        return round(TOP + plot_h - value / top_value * plot_h, 1)

    drawn = []
    for s in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for point in s.points:
            if point is None:
                runs.append([])
            else:
                runs[-1].append((x(point[0]), y(point[1])))
        path = " ".join("M" + " L".join(f"{px},{py}" for px, py in run) for run in runs if run)
        dots = [run[0] for run in runs if len(run) == 1]
        drawn.append(Drawn(s.name, s.css, path, dots, s.total))
    quarter = 15 * 60
    first = math.ceil(start / quarter) * quarter
    x_ticks = [(x(t), datetime.fromtimestamp(t, UTC).strftime("%H:%M"))
               for t in range(int(first), int(end) + 1, quarter)]  # fmt: skip
    count = round(top_value / step)
    y_ticks = [(y(step * i), _number(step * i)) for i in range(count + 1)]
    return Chart(chart_id, title, description, unit, WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM,
                 x_ticks, y_ticks, drawn, empty)  # fmt: skip


def _clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M")


def activity_chart(counts: Iterable[tuple[int, str, int]], now: float) -> Chart:
    """Sent, failed and retried per minute over the hour before ``now``."""
    current = int(now // 60)
    minutes = range(current - 59, current + 1)
    per: dict[str, dict[int, int]] = {s.value: {} for s in CHARTED}
    for minute, status, count in counts:
        if status in per and minute in minutes:
            per[status][minute] = per[status].get(minute, 0) + count
    names = {"SENT": ("sent", "s-sent"), "FAILED": ("failed", "s-failed"),
             "RETRYING": ("retried", "s-retried")}  # fmt: skip
    series, words = [], []
    for status, (name, css) in names.items():
        points: list[tuple[float, float] | None] = [
            (m * 60 + 30, float(per[status].get(m, 0))) for m in minutes
        ]
        total = sum(per[status].values())
        series.append(Series(name, css, points, f"{total:,}"))
        words.append(f"{total:,} {name}")
    busiest = max(minutes, key=lambda m: sum(per[s].get(m, 0) for s in per))
    peak = sum(per[s].get(busiest, 0) for s in per)
    description = f"In the last 60 minutes: {', '.join(words)}."
    if peak:
        description += f" The busiest minute was {_clock_time(busiest * 60)} UTC with {peak:,}."
    empty = None if any(per[s] for s in per) else "Nothing sent, failed or retried this hour."
    return line_chart("activity", "Deliveries per minute, last hour", description, "per minute",
                      now - HOUR, now, series, empty)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Depth:
    at: float
    waiting: int
    active: int
    delayed: int


def depth_chart(samples: Sequence[Depth], now: float) -> Chart:
    """Waiting, delayed and active notifications (every lane) at each sample of the hour."""
    shown = [d for d in samples if d.at >= now - HOUR]
    fields = (("waiting", "s-waiting"), ("delayed", "s-delayed"), ("active", "s-active"))
    series = []
    for name, css in fields:
        points: list[tuple[float, float] | None] = []
        for i, d in enumerate(shown):
            if i and d.at - shown[i - 1].at > 3 * SAMPLE_EVERY:
                points.append(None)  # nobody looked in between: a gap, not a line
            points.append((d.at, float(getattr(d, name))))
        latest = getattr(shown[-1], name) if shown else 0
        series.append(Series(name, css, points, f"{latest:,} now"))
    if shown:
        last = shown[-1]
        description = (f"{len(shown)} samples since {_clock_time(shown[0].at)} UTC; at the latest "
                       f"({_clock_time(last.at)} UTC) {last.waiting:,} waiting, {last.delayed:,} "
                       f"delayed and {last.active:,} being delivered.")  # fmt: skip
    else:
        description = "No samples yet."
    empty = None if shown else "No samples yet: taken while a dashboard is open."
    return line_chart("depth", "Queue depth, last hour", description, "notifications",
                      now - HOUR, now, series, empty)  # fmt: skip


class Depths:
    """Queue depth samples per tenant for the last hour, in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._samples: OrderedDict[str, deque[Depth]] = OrderedDict()

    def record(self, tenant_id: str, queues: Sequence[QueueCounts]) -> None:
        """Keep a sample from counts just read, unless one is younger than ``SAMPLE_EVERY``."""
        now = self._clock()
        kept = self._samples.get(tenant_id)
        if kept is None:
            kept = self._samples[tenant_id] = deque(maxlen=int(HOUR / SAMPLE_EVERY) + 1)
            while len(self._samples) > MAX_TENANTS:
                self._samples.popitem(last=False)
        self._samples.move_to_end(tenant_id)
        if kept and now - kept[-1].at < SAMPLE_EVERY:
            return
        kept.append(Depth(now, sum(q.waiting for q in queues), sum(q.active for q in queues),
                          sum(q.delayed for q in queues)))  # fmt: skip

    def due(self, tenant_id: str) -> bool:
        kept = self._samples.get(tenant_id)
        return not kept or self._clock() - kept[-1].at >= SAMPLE_EVERY

    async def sample(self, store: Store, tenants: Iterable[str]) -> None:
        """Sample each of ``tenants`` whose last sample is ``SAMPLE_EVERY`` old (the poller's)."""
        for tenant in sorted(set(tenants))[:MAX_TENANTS]:
            if self.due(tenant):
                self.record(tenant, await store.queues(tenant))

    def samples(self, tenant_id: str) -> list[Depth]:
        return list(self._samples.get(tenant_id, ()))


class Charts:
    """The overview's two charts for a tenant, their reads shared by every dashboard."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.depths = Depths(clock)
        self._clock = clock
        self._activity: dict[str, tuple[float, list[tuple[int, str, int]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _counts(self, tenant_id: str) -> list[tuple[int, str, int]]:
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:  # one read per tenant at a time; the others take its answer
            read_at, counts = self._activity.get(tenant_id, (-math.inf, []))
            now = self._clock()
            if now - read_at >= ACTIVITY_TTL:
                since = (int(now // 60) - 59) * 60
                counts = await self.store.history_per_minute(tenant_id, since, CHARTED)
                self._activity[tenant_id] = (now, counts)
                if len(self._activity) > MAX_TENANTS:
                    oldest = min(self._activity, key=lambda t: self._activity[t][0])
                    del self._activity[oldest]
                    self._locks.pop(oldest, None)
            return counts

    async def for_tenant(self, tenant_id: str, queues: Sequence[QueueCounts]) -> list[Chart]:
        self.depths.record(tenant_id, queues)
        now = self._clock()
        return [activity_chart(await self._counts(tenant_id), now),
                depth_chart(self.depths.samples(tenant_id), now)]  # fmt: skip

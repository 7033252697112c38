"""The overview's charts laid out (scales, gaps, words), and the samples and counts behind them."""

from __future__ import annotations

import time

from herald.dashboard import charts
from herald.dashboard.charts import Charts, Depth, Depths, Series, line_chart, nice_ceiling
from herald.models import Channel, NewNotification, QueueCounts, Sent
from herald.store.memory import MemoryStore

NOW = 1_800_000_000.0  # a minute's start plus nothing: 2027-01-15 08:00:00 UTC


def test_axes_end_on_round_numbers() -> None:
    assert nice_ceiling(0) == (4, 1)
    assert nice_ceiling(7) == (8, 2)
    top, step = nice_ceiling(1234)
    assert top >= 1234 and step in (200, 500) and top / step <= 8


def test_a_gap_breaks_the_line_and_a_lone_point_is_a_dot() -> None:
    points = [(NOW - 600, 1.0), (NOW - 590, 2.0), None, (NOW - 300, 3.0), None, (NOW - 10, 1.0)]
    chart = line_chart("c", "T", "D", "u", NOW - 3600, NOW, [Series("s", "s-x", points, "")], None)
    [drawn] = chart.series
    assert drawn.path.count("M") == 3 and drawn.path.count("L") == 1
    assert len(drawn.dots) == 2
    assert [label for _, label in chart.x_ticks] == ["07:00", "07:15", "07:30", "07:45", "08:00"]
    assert [label for _, label in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    xs = [x for x, _ in chart.x_ticks]
    assert xs[0] == chart.left and xs[-1] == chart.width - chart.right


def test_the_activity_chart_counts_the_last_sixty_minutes_in_words() -> None:
    minute = int(NOW // 60)
    counts = [(minute, "SENT", 3), (minute - 5, "SENT", 2), (minute - 5, "FAILED", 1),
              (minute - 1, "RETRYING", 4), (minute - 60, "SENT", 100)]  # fmt: skip
    chart = charts.activity_chart(counts, NOW)
    totals = {s.name: s.total for s in chart.series}
    assert totals == {"sent": "5", "failed": "1", "retried": "4"}, "an hour ago is left out"
    assert chart.description.startswith("In the last 60 minutes: 5 sent, 1 failed, 4 retried.")
    assert "busiest minute was 07:59 UTC with 4" in chart.description
    assert chart.empty is None
    assert all(s.path.count("L") == 59 for s in chart.series), "one point a minute"
    quiet = charts.activity_chart([], NOW)
    assert quiet.empty and "0 sent" in quiet.description


def test_the_depth_chart_shows_where_nobody_looked() -> None:
    samples = [Depth(NOW - 600 + 10 * i, i, 1, 2) for i in range(5)]
    samples += [Depth(NOW - 100 + 10 * i, 9, 0, 0) for i in range(3)]
    chart = charts.depth_chart(samples, NOW)
    waiting = next(s for s in chart.series if s.name == "waiting")
    assert waiting.path.count("M") == 2 and waiting.total == "9 now"
    assert "8 samples since 07:50 UTC" in chart.description
    assert charts.depth_chart([], NOW).empty


def test_depth_samples_are_spaced_and_bounded() -> None:
    now = [NOW]
    depths = Depths(clock=lambda: now[0])
    lanes = [QueueCounts("email", 3, 1, 2, 0, 0, False), QueueCounts("sms", 4, 0, 0, 0, 0, True)]
    depths.record("t", lanes)
    now[0] += charts.SAMPLE_EVERY - 1
    depths.record("t", lanes)
    assert depths.samples("t") == [Depth(NOW, 7, 1, 2)], "one sample per SAMPLE_EVERY"
    for _ in range(500):
        now[0] += charts.SAMPLE_EVERY
        depths.record("t", lanes)
    assert len(depths.samples("t")) == charts.HOUR // charts.SAMPLE_EVERY + 1
    for n in range(charts.MAX_TENANTS + 5):
        depths.record(f"tenant-{n}", lanes)
    assert not depths.samples("t") and depths.samples(f"tenant-{charts.MAX_TENANTS + 4}")


async def test_counts_are_read_once_per_ttl_for_every_dashboard() -> None:
    # Today, not NOW: ids carry their time and never go back, so a future one would
    # leave every later test's rows "older" than it.
    now = [time.time()]
    store = MemoryStore(clock=lambda: now[0])
    await store.open()
    reads = []
    counted = store.history_per_minute

    async def counting(*args: object) -> list[tuple[int, str, int]]:
        reads.append(args)
        return await counted(*args)  # type: ignore[arg-type]

    store.history_per_minute = counting  # type: ignore[method-assign]
    board = Charts(store, clock=lambda: now[0])
    [item] = await store.create([NewNotification(Channel.EMAIL, "a@example.com", "b", subject="s")])
    [claim] = await store.claim(1, 30)
    await store.complete([Sent(claim, "capture", "m", 1.0, now[0])])
    first = await board.for_tenant("default", [])
    await board.for_tenant("default", [])
    assert len(reads) == 1 and first[0].series[0].total == "1"
    now[0] += charts.ACTIVITY_TTL
    await board.for_tenant("default", [])
    assert len(reads) == 2
    assert item.id

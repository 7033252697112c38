"""bench/run_all.py's judging of targets and its rewrite of docs/benchmarks.md.

The benchmarks themselves take minutes and are run by `make bench`, not here;
what is checked here is the arithmetic and bookkeeping that turns their
figures into the published table, where a slip would go unnoticed.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import receipts  # noqa: E402  (bench/receipts.py)
import run_all  # noqa: E402  (bench/ is not a package; its scripts import each other by name)


def outcome(label: str, script: str, **metrics: object) -> run_all.Outcome:
    bench = run_all.Benchmark(label, script, timeout=1)
    return run_all.Outcome(bench, code=0, seconds=1.0, metrics=dict(metrics), ok=True)


def by_label(*outcomes: run_all.Outcome) -> dict[str, run_all.Outcome]:
    return {o.bench.label: o for o in outcomes}


def test_a_target_is_met_missed_or_not_measured() -> None:
    target = run_all.Target("drain", run_all.metric("drain-sqlite", "rate"), 15_000, True, "/s")
    assert target.judge(by_label(outcome("drain-sqlite", "drain", rate=16_000))) == (16_000, "met")
    assert target.judge(by_label(outcome("drain-sqlite", "drain", rate=9_000)))[1] == "MISSED"
    assert target.judge(by_label(outcome("drain-sqlite", "drain", rate=None))) == (
        None,
        "not measured",
    )
    assert target.judge({}) == (None, "not measured")


def test_at_most_targets_and_ratios() -> None:
    p99 = run_all.Target("p99", run_all.metric("latency-sqlite", "p99"), 100, False, "ms")
    assert p99.judge(by_label(outcome("latency-sqlite", "latency", p99=99.0)))[1] == "met"
    assert p99.judge(by_label(outcome("latency-sqlite", "latency", p99=101.0)))[1] == "MISSED"

    versus = run_all.ratio(
        run_all.metric("drain-sqlite", "rate"), run_all.metric("peer-huey", "rate")
    )
    found = by_label(
        outcome("drain-sqlite", "drain", rate=15_000), outcome("peer-huey", "peers", rate=600)
    )
    assert versus(found) == pytest.approx(25.0)
    no_peer = by_label(outcome("drain-sqlite", "drain", rate=15_000))
    assert versus(no_peer) is None


def test_memory_counts_herald_processes_only() -> None:
    largest = run_all.largest("peak_rss_kib")
    found = by_label(
        outcome("backlog-sqlite", "backlog", api_peak_rss_kib=120_000, worker_peak_rss_kib=90_000),
        outcome("drain-sqlite", "drain", peak_rss_kib=100_000),
        outcome("peer-celery", "peers", peak_rss_kib=900_000),
        outcome("limits", "limits", peak_rss_kib=800_000),
    )
    assert largest(found) == 120_000


def test_every_issue_target_is_judged_on_both_stores() -> None:
    names = [t.what for t in run_all.TARGETS]
    assert len(names) == len(set(names))
    for store in run_all.STORES:
        assert sum(name.endswith(f", {store}") for name in names) == 14
    assert any("RSS" in name for name in names)


def test_docs_keep_their_prose_and_get_fresh_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        f"# Benchmarks\n\nHow we measure.\n\n{run_all.BEGIN_MARK}\nold table\n"
        f"{run_all.END_MARK}\n\nNotes after.\n"
    )
    monkeypatch.setattr(run_all, "DOCS", docs)
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    outcomes = [outcome("drain-sqlite", "drain", delivered_per_s_active=25_500.0)]
    outcomes[0].figures = {"delivered/s": "25,500 | fast"}
    targets = run_all.target_rows(by_label(*outcomes))
    machine = {"date": "today", "git": "abc123", "cpu": "2 cores"}
    section = run_all.markdown(outcomes, targets, machine, "make bench")

    run_all.write_docs(section)
    run_all.write_docs(section)  # twice: the second run replaces, never appends

    text = docs.read_text()
    assert text.startswith("# Benchmarks\n\nHow we measure.\n")
    assert text.rstrip().endswith("Notes after.")
    assert "old table" not in text
    assert text.count(run_all.BEGIN_MARK) == 1 == text.count(run_all.END_MARK)
    assert "| drain 100k, sqlite | 25,500 /s | ≥ 25,000 /s | met |" in text
    assert "25,500 / fast" in text  # a pipe in a figure would break the table
    assert "- cpu: 2 cores" in text and "`make bench`" in text


def test_receipts_are_judged_on_the_batched_figure_of_each_store() -> None:
    labels = [b.label for b in run_all.BENCHMARKS]
    for store in run_all.STORES:
        assert f"receipts-{store}" in labels
        [target] = [
            t for t in run_all.TARGETS if t.what == f"receipts in batches of 1,000, {store}"
        ]
        run = outcome(f"receipts-{store}", "receipts", events_per_s=10_500.0,
                      random_events_per_s=7_000.0, single_events_per_s=900.0)  # fmt: skip
        assert target.judge(by_label(run)) == (10_500.0, "met")
        run.metrics["events_per_s"] = 9_999.0  # the other phases do not count
        assert target.judge(by_label(run)) == (9_999.0, "MISSED")


def test_receipts_bench_deals_its_mix_near_send_order() -> None:
    ids = [f"<{i:06d}@bench>" for i in range(10_000)]
    events = receipts.mixed(ids, window=5_000)
    kinds = Counter(e.raw_type for e in events)
    assert kinds == {"delivered": 9_000, "bounce": 500, "deferred": 300, "spamreport": 200}
    assert sorted(e.message_id for e in events[:5_000]) == ids[:5_000]  # each run stays whole
    assert [e.message_id for e in events[:5_000]] != ids[:5_000]  # but is shuffled
    statuses, suppressed = receipts.expected(10_000, singles=7)
    assert statuses == {"DELIVERED": 18_007, "BOUNCED": 1_000, "SENT": 600, "COMPLAINED": 400}
    assert suppressed == 1_400  # bounces and complaints, in both batched phases

"""Run every benchmark once, on both stores, then print and keep one table.

`make bench` calls this. Each benchmark runs as a subprocess of its own
(`python bench/<script>.py ARGS --summary-json FILE`), one after the other so
they never compete for the machine; their output is shown as it comes. At the
end come two tables built from the summary files they write: every figure, and
every target of the benchmark issue with Herald's figure, the goal and whether
it was met. Figures that compare two runs (``ingest_auth_ratio``: authenticated
over unauthenticated ingest on one store) are added to the later run's metrics
and figures. Both go to ``bench/results/latest.json`` (and a dated copy beside
it); ``docs/benchmarks.md`` gets the same tables, the machine they ran on and
the command, between its generated-section markers (``--no-docs`` leaves it
alone).

A benchmark that overruns its time limit is sent SIGTERM (it then stops the
processes it started) and, if it still does not exit, SIGKILL. Exit status: 0
when every benchmark ran and passed its own checks (met targets or not), 1
otherwise.
"""

from __future__ import annotations

import datetime
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BENCH_DIR, RESULTS_DIR, ROOT, STORES, temp_dir
from _machine import describe_machine
from _report import Options, prepare

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- bench:begin (written by bench/run_all.py; edits inside are lost) -->"
END_MARK = "<!-- bench:end -->"


@dataclass(frozen=True)
class Benchmark:
    label: str  # unique within a run: "drain-sqlite"
    script: str  # bench/<script>.py
    timeout: float  # seconds, for the whole subprocess
    args: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.script


def _per_store(script: str, timeout: float, *args: str) -> tuple[Benchmark, ...]:
    return tuple(
        Benchmark(f"{script}-{store}", script, timeout, ("--store", store, *args))
        for store in STORES
    )


def _ingest_pairs(timeout: float) -> tuple[Benchmark, ...]:
    """Per store, ingest without authentication and then with a stored key, back to back.

    The issue judges authenticated ingest against the same run's unauthenticated
    ingest, and this machine's speed drifts, so the two runs sit side by side.
    """
    return tuple(
        Benchmark(label.format(store), "ingest", timeout, ("--store", store, "--auth", auth))
        for store in STORES
        for label, auth in (("ingest-noauth-{}", "off"), ("ingest-{}", "key"))
    )


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("limits", "limits", timeout=180),
    *_ingest_pairs(180),
    *_per_store("bulk", 180),
    *_per_store("drain", 300),
    *_per_store("latency", 150),
    *_per_store("backlog", 240),
    *_per_store("slow", 150),
    *_per_store("smtp", 150),
    *_per_store("receipts", 300),
    *(
        Benchmark(f"peer-{peer}", "peers", timeout=300, args=("--peer", peer, "--window", "40"))
        for peer in ("celery", "huey", "pgqueuer")
    ),
)


@dataclass
class Outcome:
    bench: Benchmark
    code: int | None
    seconds: float
    figures: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    ok: bool = False

    @property
    def verdict(self) -> str:
        if self.ok:
            return f"ok ({self.seconds:.0f}s)"
        if self.code is None:
            return f"TIMED OUT ({self.seconds:.0f}s)"
        return f"FAILED (exit {self.code}, {self.seconds:.0f}s)"


def run_one(bench: Benchmark, summary: Path, extra: list[str]) -> Outcome:
    command = [
        sys.executable,
        str(BENCH_DIR / f"{bench.script}.py"),
        *bench.args,
        *extra,
        "--summary-json",
        str(summary),
    ]
    print(f"\n=== {bench.label}: {' '.join(command[1:-2])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        code: int | None = process.wait(bench.timeout)
    except subprocess.TimeoutExpired:
        print(f"{bench.label}: no result after {bench.timeout:.0f}s; stopping it", flush=True)
        code = None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    outcome = Outcome(bench, code, time.monotonic() - started)
    if summary.exists():
        data = json.loads(summary.read_text())
        outcome.figures = {str(k): str(v) for k, v in data.get("figures", {}).items()}
        outcome.metrics = dict(data.get("metrics", {}))
        outcome.ok = bool(data.get("ok")) and code == 0
    return outcome


# -- targets -------------------------------------------------------------------

Metric = Callable[[dict[str, Outcome]], float | None]


def metric(label: str, key: str) -> Metric:
    """The number ``key`` from the run ``label``, if that run produced it."""

    def read(outcomes: dict[str, Outcome]) -> float | None:
        outcome = outcomes.get(label)
        value = None if outcome is None else outcome.metrics.get(key)
        return float(value) if isinstance(value, int | float) else None

    return read


def ratio(top: Metric, bottom: Metric) -> Metric:
    def read(outcomes: dict[str, Outcome]) -> float | None:
        a, b = top(outcomes), bottom(outcomes)
        return None if a is None or not b else a / b

    return read


def auth_ratio(store: str) -> Metric:
    """Ingest with a stored key ÷ ingest with HERALD_AUTH=off, on ``store``, same run."""
    return ratio(
        metric(f"ingest-{store}", "requests_per_s"),
        metric(f"ingest-noauth-{store}", "requests_per_s"),
    )


def add_comparisons(outcomes: dict[str, Outcome]) -> None:
    """Put ``ingest_auth_ratio`` in the authenticated ingest run's metrics and figures."""
    for store in STORES:
        keyed, value = outcomes.get(f"ingest-{store}"), auth_ratio(store)(outcomes)
        if keyed is not None and value is not None:
            keyed.metrics["ingest_auth_ratio"] = round(value, 4)
            keyed.figures["÷ unauthenticated ingest (same run)"] = f"{value:.2f}x"


def largest(key: str) -> Metric:
    """The largest ``key`` over every Herald run that reports it (not limits, not peers)."""

    def read(outcomes: dict[str, Outcome]) -> float | None:
        values = [
            float(o.metrics[k])
            for o in outcomes.values()
            if o.bench.script not in ("peers", "limits")
            for k in o.metrics
            if k.endswith(key) and isinstance(o.metrics[k], int | float)
        ]
        return max(values) if values else None

    return read


@dataclass(frozen=True)
class Target:
    what: str
    value: Metric
    goal: float
    at_least: bool  # False: at most
    unit: str

    def judge(self, outcomes: dict[str, Outcome]) -> tuple[float | None, str]:
        value = self.value(outcomes)
        if value is None:
            return None, "not measured"
        met = value >= self.goal if self.at_least else value <= self.goal
        return value, "met" if met else "MISSED"

    def show(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        if self.unit == "x":
            return f"{value:.2f}x"
        if self.unit == "MiB":
            return f"{value:,.1f} MiB"
        return f"{value:,.0f} {self.unit}" if value >= 100 else f"{value:,.1f} {self.unit}"

    @property
    def goal_text(self) -> str:
        return ("≥ " if self.at_least else "≤ ") + self.show(self.goal)


#: The ``limits`` figure each store's bulk ingest is held against: its raw rows a second.
ROW_CEILING = {"sqlite": "sqlite_batched_rows_per_s", "postgres": "pg_copy_rows_per_s"}


def _targets() -> list[Target]:
    targets: list[Target] = []
    for store in STORES:
        ingest = metric(f"ingest-{store}", "requests_per_s")
        drain = metric(f"drain-{store}", "delivered_per_s_active")
        bulk = metric(f"bulk-{store}", "notifications_per_s")
        targets += [
            Target(f"durable ingest, {store}", ingest, 4000, True, "req/s"),
            Target(
                f"durable ingest ÷ validation-only app, {store}",
                ratio(ingest, metric("limits", "validate_req_per_s")),
                0.8,
                True,
                "x",
            ),
            Target(
                f"authenticated ÷ unauthenticated ingest, {store}",
                auth_ratio(store),
                0.9,
                True,
                "x",
            ),
            Target(f"bulk ingest, {store}", bulk, 50_000, True, "/s"),
            Target(
                f"bulk ingest ÷ raw row ceiling, {store}",
                ratio(bulk, metric("limits", ROW_CEILING[store])),
                0.8,
                True,
                "x",
            ),
            Target(f"drain 100k, {store}", drain, 25_000, True, "/s"),
            Target(
                f"drain ÷ Celery, {store}",
                ratio(drain, metric("peer-celery", "delivered_per_s")),
                5,
                True,
                "x",
            ),
            Target(
                f"drain ÷ Huey, {store}",
                ratio(drain, metric("peer-huey", "delivered_per_s")),
                2,
                True,
                "x",
            ),
            Target(
                f"drain ÷ PgQueuer, {store}",
                ratio(drain, metric("peer-pgqueuer", "delivered_per_s")),
                3,
                True,
                "x",
            ),
            Target(
                f"POST→SENT p99 at 833 req/s, {store}",
                metric(f"latency-{store}", "e2e_p99_ms"),
                25,
                False,
                "ms",
            ),
            Target(
                f"CRITICAL p99 behind 100k LOW, {store}",
                metric(f"backlog-{store}", "critical_p99_ms"),
                100,
                False,
                "ms",
            ),
            Target(
                f"one worker, 200 ms provider, {store}",
                metric(f"slow-{store}", "delivered_per_s"),
                2500,
                True,
                "/s",
            ),
            Target(
                f"SMTP into aiosmtpd, {store}",
                metric(f"smtp-{store}", "messages_per_s"),
                1000,
                True,
                "msg/s",
            ),
            Target(
                f"receipts in batches of 1,000, {store}",
                metric(f"receipts-{store}", "events_per_s"),
                10_000,
                True,
                "events/s",
            ),
        ]
    to_mib: Metric = largest("peak_rss_kib")
    targets.append(
        Target(
            "largest peak RSS of any Herald process",
            lambda o: None if (kib := to_mib(o)) is None else kib / 1024,
            150 * 1_000_000 / 2**20,  # 150 MB
            False,
            "MiB",
        )
    )
    return targets


TARGETS = _targets()


# -- output --------------------------------------------------------------------


def figure_rows(outcomes: list[Outcome]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for outcome in outcomes:
        rows.append((outcome.bench.label, "result", outcome.verdict))
        rows.extend((outcome.bench.label, k, v) for k, v in outcome.figures.items())
    return rows


def target_rows(outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    rows = []
    for target in TARGETS:
        value, verdict = target.judge(outcomes)
        rows.append(
            {
                "target": target.what,
                "value": value,
                "shown": target.show(value),
                "goal": target.goal_text,
                "verdict": verdict,
            }
        )
    return rows


def print_tables(outcomes: list[Outcome], targets: list[dict[str, Any]]) -> None:
    rows = figure_rows(outcomes)
    heading = ("benchmark", "figure", "value")
    widths = [max(len(row[i]) for row in [heading, *rows]) for i in (0, 1)]
    print("\n" + "=" * 78)
    print(f"{heading[0]:<{widths[0]}}  {heading[1]:<{widths[1]}}  {heading[2]}")
    previous = None
    for name, label, value in rows:
        if previous is not None and name != previous:
            print()
        shown = name if name != previous else ""
        print(f"{shown:<{widths[0]}}  {label:<{widths[1]}}  {value}")
        previous = name
    print("\n" + "=" * 78)
    width = max(len(t["target"]) for t in targets)
    for t in targets:
        print(f"{t['target']:<{width}}  {t['shown']:>14}  {t['goal']:>14}  {t['verdict']}")


def markdown(
    outcomes: list[Outcome], targets: list[dict[str, Any]], machine: dict[str, str], command: str
) -> str:
    lines = [BEGIN_MARK, "", f"Run of {machine['date']} at revision `{machine['git']}`:", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items() if key not in ("date", "git")]
    lines += ["", f"Command: `{command}`", "", "### Targets", ""]
    lines += ["| target | Herald | goal | |", "|---|---:|---:|---|"]
    lines += [f"| {t['target']} | {t['shown']} | {t['goal']} | {t['verdict']} |" for t in targets]
    lines += ["", "### Every figure", "", "| benchmark | figure | value |", "|---|---|---|"]
    previous = None
    for name, label, value in figure_rows(outcomes):
        shown = name if name != previous else ""
        lines.append(f"| {shown} | {label} | {value.replace('|', '/')} |")
        previous = name
    lines += ["", END_MARK]
    return "\n".join(lines)


def write_docs(section: str) -> None:
    """Replace the generated section of docs/benchmarks.md, keeping the prose around it."""
    text = DOCS.read_text() if DOCS.exists() else f"# Benchmarks\n\n{BEGIN_MARK}\n{END_MARK}\n"
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        text = text.rstrip("\n") + f"\n\n{BEGIN_MARK}\n{END_MARK}\n"
        start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    DOCS.write_text(text[:start] + section + text[end + len(END_MARK) :])
    print(f"wrote the tables into {DOCS.relative_to(ROOT)}")


def write_json(
    outcomes: list[Outcome], targets: list[dict[str, Any]], machine: dict[str, str], command: str
) -> Path:
    data = {
        "machine": machine,
        "command": command,
        "targets": targets,
        "benchmarks": [
            {
                "label": o.bench.label,
                "ok": o.ok,
                "exit": o.code,
                "seconds": round(o.seconds, 1),
                "figures": o.figures,
                "metrics": o.metrics,
            }
            for o in outcomes
        ],
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(data, indent=2) + "\n"
    (RESULTS_DIR / f"run-{stamp}.json").write_text(text)
    latest = RESULTS_DIR / "latest.json"
    latest.write_text(text)
    print(f"wrote {latest.relative_to(ROOT)} (and run-{stamp}.json)")
    return latest


def main() -> int:
    labels = [b.label for b in BENCHMARKS]
    groups = sorted({b.group for b in BENCHMARKS})
    parser = Options(__doc__)  # its own --no-record: the reporting flags are the scripts'
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted({*labels, *groups}),
        help="run only this benchmark or group (repeatable), e.g. drain or drain-sqlite",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to bench/results/<name>.json"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md's tables"
    )
    args = parser.parse_args()
    prepare()
    command = (
        "make bench" if not args.only else " ".join(["python bench/run_all.py", *sys.argv[1:]])
    )
    chosen = [b for b in BENCHMARKS if not args.only or {b.label, b.group} & set(args.only)]
    machine = describe_machine()
    extra = ["--no-record"] if args.no_record else []
    outcomes = []
    started = time.monotonic()
    with temp_dir("herald-bench-all-") as work:
        for bench in chosen:
            outcomes.append(run_one(bench, work / f"{bench.label}.json", extra))
    machine["total time"] = f"{time.monotonic() - started:.0f} s for {len(chosen)} benchmarks"
    found = {o.bench.label: o for o in outcomes}
    add_comparisons(found)
    targets = target_rows(found)
    print_tables(outcomes, targets)
    write_json(outcomes, targets, machine, command)
    if not args.no_docs:
        write_docs(markdown(outcomes, targets, machine, command))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

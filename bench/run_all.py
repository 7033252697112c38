"""Run every benchmark once with its defaults and print one combined table.

`make bench` calls this. Each benchmark runs as a subprocess of its own
(`python bench/<name>.py --summary-json FILE`), one after the other so they
never compete for the machine. Their output is shown as it comes; the table at
the end is built from the summary files they write. A benchmark that overruns
its time limit is sent SIGTERM (it then stops the Herald processes it started)
and, if it still does not exit, SIGKILL. Exit status: 0 when every benchmark
ran and passed its own checks, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import BENCH_DIR, exit_on_sigterm, line_buffered, temp_dir


@dataclass(frozen=True)
class Benchmark:
    name: str
    timeout: float  # seconds, for the whole subprocess
    args: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("ingest", timeout=300),
    Benchmark("bulk", timeout=300),
    Benchmark("drain", timeout=900),
)


@dataclass
class Outcome:
    name: str
    code: int | None
    seconds: float
    figures: dict[str, str] = field(default_factory=dict)
    ok: bool = False


def run_one(bench: Benchmark, summary: Path, extra: list[str]) -> Outcome:
    command = [
        sys.executable,
        str(BENCH_DIR / f"{bench.name}.py"),
        *bench.args,
        *extra,
        "--summary-json",
        str(summary),
    ]
    print(f"\n=== {bench.name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        code: int | None = process.wait(bench.timeout)
    except subprocess.TimeoutExpired:
        print(f"{bench.name}: no result after {bench.timeout:.0f}s; stopping it", flush=True)
        code = None
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
    outcome = Outcome(bench.name, code, time.monotonic() - started)
    if summary.exists():
        data = json.loads(summary.read_text())
        outcome.figures = {str(k): str(v) for k, v in data.get("figures", {}).items()}
        outcome.ok = bool(data.get("ok")) and code == 0
    return outcome


def print_table(outcomes: list[Outcome]) -> None:
    rows: list[tuple[str, str, str]] = []
    for outcome in outcomes:
        if outcome.ok:
            verdict = f"ok ({outcome.seconds:.0f}s)"
        elif outcome.code is None:
            verdict = f"TIMED OUT ({outcome.seconds:.0f}s)"
        else:
            verdict = f"FAILED (exit {outcome.code})"
        rows.append((outcome.name, "result", verdict))
        rows.extend((outcome.name, label, value) for label, value in outcome.figures.items())
    widths = [max(len(row[i]) for row in [("benchmark", "figure", "value"), *rows]) for i in (0, 1)]
    print("\n" + "=" * 72)
    print(f"{'benchmark':<{widths[0]}}  {'figure':<{widths[1]}}  value")
    previous = None
    for name, label, value in rows:
        if previous is not None and name != previous:
            print()
        shown = name if name != previous else ""
        print(f"{shown:<{widths[0]}}  {label:<{widths[1]}}  {value}")
        previous = name


def main() -> int:
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--only", action="append", choices=names, help="run only this benchmark (repeatable)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="do not append to bench/results/*.json"
    )
    args = parser.parse_args()
    line_buffered()
    exit_on_sigterm()
    extra = ["--no-record"] if args.no_record else []
    chosen = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    outcomes = []
    with temp_dir("herald-bench-all-") as work:
        for bench in chosen:
            outcomes.append(run_one(bench, work / f"{bench.name}.json", extra))
    print_table(outcomes)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

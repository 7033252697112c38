"""Reporting and the command line shared by the benchmarks: nothing here measures anything.

An aligned block of figures, one greppable ``RESULT`` line, an entry appended
to ``bench/results/<name>.json`` (git-ignored) and, for ``run_all.py``, an
optional summary file; the options every script words the same way.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from _common import RESULTS_DIR, ROOT, STORES, BenchError, exit_on_sigterm, line_buffered

# -- reporting -----------------------------------------------------------------


def fmt_int(value: int) -> str:
    return f"{value:,}"


def fmt_mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def print_figures(title: str, figures: Mapping[str, str]) -> None:
    """An aligned block: the title, then one ``label  value`` line per figure."""
    width = max((len(label) for label in figures), default=0)
    print(f"\n{title}")
    for label, value in figures.items():
        print(f"  {label:<{width}}  {value}")


def print_result_line(name: str, metrics: Mapping[str, object]) -> None:
    """One greppable line: ``RESULT name key=value ...``."""
    parts = " ".join(f"{key}={_compact(value)}" for key, value in metrics.items())
    print(f"RESULT {name} {parts}")


def _compact(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{_compact(v)}" for k, v in value.items())
    return str(value).replace(" ", "_")


def git_revision() -> str | None:
    """The short revision, ``-dirty`` when tracked files have changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head


def record(
    name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, object],
    ok: bool,
) -> Path:
    """Append one run to ``bench/results/<name>.json`` (a JSON list); returns the path."""
    entry = {
        "benchmark": name,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_revision(),
        "host": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "ok": ok,
        "params": dict(params),
        "metrics": dict(metrics),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    runs: list[Any] = []
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
            if not isinstance(loaded, list):
                raise ValueError("not a list")
            runs = loaded
        except ValueError as exc:
            aside = path.with_suffix(f".broken-{int(time.time())}.json")
            path.rename(aside)
            print(f"warning: {path} was unreadable ({exc}); moved to {aside.name}")
    runs.append(entry)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(runs, indent=2) + "\n")
    partial.replace(path)
    return path


# -- the command line ------------------------------------------------------------


class Options(argparse.ArgumentParser):
    """A benchmark's command line: its docstring's first paragraph, and the options they share.

    Each method adds one option the way every script words it; ``parse`` adds
    the reporting flags last, so ``--help`` lists them after the script's own.
    """

    def __init__(self, doc: str | None) -> None:
        super().__init__(description=doc.split("\n\n")[0] if doc else None)

    def count(self, default: int, what: str = "notifications") -> None:
        self.add_argument(
            "-n", "--count", type=int, default=default, help=f"{what} (default: %(default)s)"
        )

    def store(self) -> None:
        self.add_argument(
            "--store", choices=STORES, default="sqlite", help="the store (default: %(default)s)"
        )

    def timeout(self, default: float, doing: str = "give up") -> None:
        self.add_argument(
            "--timeout",
            type=float,
            default=default,
            help=f"{doing} after this many seconds (default: %(default)s)",
        )

    def no_pin(self, help: str = "do not pin with taskset") -> None:
        self.add_argument("--no-pin", action="store_true", help=help)

    def wrk_load(self, measured: str = "measured seconds") -> None:
        """wrk's threads, connections, measured and warm-up seconds (ingest.py, limits.py)."""
        self.add_argument(
            "-t", "--threads", type=int, default=1, help="wrk threads (default: %(default)s)"
        )
        self.add_argument(
            "-c",
            "--connections",
            type=int,
            default=64,
            help="wrk connections (default: %(default)s)",
        )
        self.add_argument(
            "-d", "--duration", type=int, default=10, help=f"{measured} (default: %(default)s)"
        )
        self.add_argument(
            "--warmup",
            type=int,
            default=3,
            help="warm-up seconds, 0 for none (default: %(default)s)",
        )

    def wrk(self) -> None:
        self.add_argument("--wrk", default="wrk", help="the wrk executable (default: %(default)s)")

    def parse(self) -> argparse.Namespace:
        add_reporting_args(self)
        return self.parse_args()


def add_reporting_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-record",
        action="store_true",
        help="do not append this run to bench/results/<name>.json",
    )
    parser.add_argument(
        "--summary-json",
        type=Path,
        metavar="PATH",
        help="also write this run's figures to PATH as JSON (run_all.py uses it)",
    )


def prepare() -> None:
    """What every benchmark does first: output line by line, SIGTERM stops what it started."""
    line_buffered()
    exit_on_sigterm()


def exit_with(main: Callable[[], int]) -> NoReturn:
    """Exit with ``main()``'s status; a ``BenchError`` is printed and exits 1.

    The error reaches here after every ``with`` and ``finally`` on its way has
    stopped the processes and removed the files the benchmark made.
    """
    try:
        code = main()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


def finish(
    args: argparse.Namespace,
    name: str,
    title: str,
    figures: Mapping[str, str],
    metrics: Mapping[str, object],
    params: Mapping[str, object],
    failures: Sequence[str],
) -> int:
    """Print the figures and the RESULT line, record them where the flags say, say what failed.

    The run is ok when nothing failed; the exit status says so.
    """
    ok = not failures
    print_figures(title, figures)
    print_result_line(name, {"ok": ok, **metrics})
    if not args.no_record:
        path = record(name, params, metrics, ok)
        print(f"recorded in {path.relative_to(ROOT)}")
    if args.summary_json is not None:
        summary = {"benchmark": name, "ok": ok, "figures": dict(figures), "metrics": dict(metrics)}
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 0 if ok else 1

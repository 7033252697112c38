"""What a benchmark run ran on: written next to every table of figures.

Figures mean little without the machine, so ``run_all.py`` records the CPU,
memory, kernel, the Python, SQLite and PostgreSQL versions and the revision.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import platform
import sqlite3
from pathlib import Path

from _report import git_revision
from _stores import ADMIN_URL


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def _postgres_version() -> str:
    async def ask() -> str:
        import asyncpg

        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()

    try:
        return asyncio.run(ask())
    except Exception as exc:  # any failure only means we cannot say
        return f"unreachable ({type(exc).__name__})"


def describe_machine() -> dict[str, str]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "git": git_revision() or "unknown",
        "cpu": f"{_cpu_model()}, {len(os.sched_getaffinity(0))} usable of {os.cpu_count()}",
        "memory": _memory(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": f"{_postgres_version()} (same machine)",
    }

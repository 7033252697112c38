"""A provider's rate limit holds across worker processes that share one store."""

from __future__ import annotations

import pytest

from tests.e2e.test_crash_safety import seed

pytestmark = pytest.mark.slow

RATE = 10  # calls per second; the bucket's burst is one second's worth
TOTAL = 60


async def test_two_workers_share_one_rate_limit(herald, smtp_server) -> None:
    sink = smtp_server.sink
    ids = await seed(herald.db_path, TOTAL)
    env = {"HERALD_RATE_LIMITS": f"smtp={RATE}", "HERALD_LEASE_SECONDS": 30}
    workers = [herald.start("worker", **env), herald.start("worker", **env)]
    await herald.poll(lambda: sink.total >= TOTAL, 30, f"{TOTAL} messages at {RATE}/s",
                      watch=workers)  # fmt: skip
    for worker in workers:
        worker.terminate()
    times = sorted(sink.times)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 2 * RATE, f"{busiest} calls in one second with a limit of {RATE}/s"
    spread = times[-1] - times[0]
    assert spread >= (TOTAL - 2 * RATE) / RATE - 0.5, f"{TOTAL} calls took only {spread:.1f}s"
    assert set(sink.received) == set(ids) and sink.total == TOTAL, "each sent exactly once"
    counts = herald.status_counts()
    assert counts.get("SENT") == TOTAL, counts
    for worker in workers:
        assert await worker.wait_exit(15) == 0, herald.describe()

"""Several `herald worker` processes on one PostgreSQL database share the work safely.

* Four workers drain 20,000 notifications into a recording SMTP server: each
  notification reaches it exactly once, and every worker took a share.
* SIGKILL of one of three workers mid-run: nothing is lost, and the only
  duplicates are notifications the dead worker held when it died (their
  leases expired and the sweeper gave them to the others), so they are
  bounded by its in-flight limit (``HERALD_WORKER_CONCURRENCY``).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.pgherald import seed

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORKER_ENV = {
    "HERALD_WORKER_CONCURRENCY": 64,
    "HERALD_SMTP_POOL_SIZE": 16,
    "HERALD_LEASE_SECONDS": 2,
    "HERALD_SMTP_TIMEOUT": 1,  # one SMTP command must fit in an attempt (1.8 s)
    "HERALD_SWEEP_INTERVAL": 0.5,
    "HERALD_SHUTDOWN_GRACE": 5,
    "HERALD_LOG_LEVEL": "info",
}


def delivered_by(process) -> int:
    """The ``delivered`` count a worker logged when it stopped."""
    for line in reversed(process.log_path.read_text(errors="replace").splitlines()):
        if '"worker_stopped"' in line:
            return int(json.loads(line)["delivered"])
    raise AssertionError(f"{process.name} logged no worker_stopped\n{process.describe()}")


async def test_four_workers_deliver_20000_each_exactly_once(pg_herald, smtp_server) -> None:
    total = 20_000
    sink = smtp_server.sink
    ids = await seed(pg_herald.database_url, total)

    workers = [pg_herald.start("worker", **WORKER_ENV) for _ in range(4)]
    started = time.monotonic()
    await pg_herald.poll(
        lambda: pg_herald.status_counts().get("SENT", 0) == total,
        180,
        f"all {total} notifications SENT by four workers",
        interval=0.5,
        watch=workers,
    )
    elapsed = time.monotonic() - started
    for worker in workers:
        worker.terminate()
    for worker in workers:
        assert await worker.wait_exit(15) == 0, pg_herald.describe()

    assert pg_herald.status_counts() == {"SENT": total}
    received = sink.received
    assert sink.unidentified == 0
    assert set(received) == set(ids), f"lost: {len(set(ids) - set(received))}"
    twice = {i: n for i, n in received.items() if n > 1}
    assert not twice, f"{len(twice)} notifications delivered more than once"
    shares = [delivered_by(w) for w in workers]
    assert sum(shares) == total, shares
    assert all(shares), f"a worker delivered nothing: {shares}"
    [(audit_sent,)] = pg_herald.query("SELECT count(*) FROM audit WHERE status = 'SENT'")
    assert audit_sent == total
    print(f"{total} delivered in {elapsed:.1f}s by four workers, shares {shares}")


async def test_sigkill_of_one_worker_loses_nothing(pg_herald, smtp_server) -> None:
    total, concurrency = 4000, WORKER_ENV["HERALD_WORKER_CONCURRENCY"]
    sink = smtp_server.sink
    sink.latency = 0.005  # sends stay in flight a while, so the kill catches some
    ids = await seed(pg_herald.database_url, total)

    victim, *others = [pg_herald.start("worker", **WORKER_ENV) for _ in range(3)]
    await pg_herald.poll(
        lambda: sink.total >= total // 4,
        60,
        "a quarter of the notifications delivered",
        interval=0.005,
        watch=[victim, *others],
    )
    victim.kill()
    at_kill = sink.total
    assert at_kill < total, "the kill did not land mid-run"

    await pg_herald.poll(
        lambda: pg_herald.status_counts().get("SENT", 0) == total,
        90,
        f"all {total} notifications SENT by the surviving workers",
        interval=0.2,
        watch=others,
    )
    for worker in others:
        worker.terminate()
    for worker in others:
        assert await worker.wait_exit(15) == 0, pg_herald.describe()

    assert pg_herald.status_counts() == {"SENT": total}
    received = sink.received
    assert set(received) == set(ids), f"lost: {len(set(ids) - set(received))}"
    # The dead worker's claims are the rows whose lease expired: the sweeper logged them.
    stalled = {
        r[0]
        for r in pg_herald.query(
            "SELECT DISTINCT notification_id FROM audit WHERE message LIKE 'Stalled:%'"
        )
    }
    duplicates = {i for i, n in received.items() if n > 1}
    print(
        f"killed after {at_kill} deliveries; {len(stalled)} leases swept; "
        f"{len(duplicates)} delivered twice"
    )
    assert stalled, "the dead worker held no claims: the kill proved nothing"
    assert len(stalled) <= concurrency, f"{len(stalled)} claims held by one worker"
    assert duplicates <= stalled, "a duplicate that the dead worker did not hold"
    assert max(received.values()) <= 2

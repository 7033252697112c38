"""`herald up --api-workers 2 --delivery-workers 2`: four processes on one host, one store.

On SQLite (the processes take turns at the file's writer lock) and on
PostgreSQL: every notification accepted by either API process is delivered
exactly once by the two worker processes; both API processes answer (they
accept from one listening socket); a worker that dies is started again; and
SIGTERM to the supervisor stops every child gracefully, exiting 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections import Counter

import httpx
import pytest

from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOTAL = 200


def children(process) -> dict[str, int]:
    """The supervisor's children, by name, from its log (the latest pid of each)."""
    found: dict[str, int] = {}
    for line in process.log_path.read_text(errors="replace").splitlines():
        if '"child_started"' in line:
            entry = json.loads(line)
            found[entry["child"]] = entry["pid"]
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie has exited
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_up_with_several_processes(store, request, smtp_server) -> None:
    herald = request.getfixturevalue("herald" if store == "sqlite" else "pg_herald")
    up = await herald.start_http(
        "up", "--api-workers", "2", "--delivery-workers", "2", HERALD_SHUTDOWN_GRACE=5,
        HERALD_LEASE_SECONDS=2, HERALD_SWEEP_INTERVAL=0.5,  # the killed worker's claims return
        HERALD_SMTP_TIMEOUT=1,  # one SMTP command must fit in an attempt (1.8 s)
    )  # fmt: skip
    try:
        await _exercise(herald, up, smtp_server.sink)
    finally:  # the runner kills the supervisor only; its children are ours to reap
        for pid in children(up).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def _exercise(herald, up, sink) -> None:
    await herald.poll(lambda: len(children(up)) == 4, 15, "four children started", watch=[up])
    served: Counter[str] = Counter()
    ids = set()
    # A connection each, so the kernel hands them to whichever API process accepts first.
    for n in range(TOTAL):
        async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
            reply = await client.post("/api/notifications", json={
                "type": "EMAIL", "recipient": f"u{n}@example.com", "subject": "s",
                "message": "hello"})  # fmt: skip
        assert reply.status_code == 201, reply.text
        served[reply.headers["x-herald-instance"]] += 1
        ids.add(reply.json()["data"]["_id"])
    assert len(served) == 2 and all(name.endswith(("/api-1", "/api-2")) for name in served)

    before = children(up)
    os.kill(before["worker-1"], signal.SIGKILL)
    await herald.poll(lambda: children(up)["worker-1"] != before["worker-1"], 15,
                      "the dead worker restarted", watch=[up])  # fmt: skip
    await herald.poll(lambda: herald.status_counts() == {"SENT": TOTAL}, 60,
                      f"{TOTAL} notifications SENT", watch=[up])  # fmt: skip

    running = children(up)
    up.terminate()
    assert await up.wait_exit(30) == 0, herald.describe()
    assert not [name for name, pid in running.items() if alive(pid)], "children left running"
    received = sink.received
    assert set(received) == ids
    # The killed worker may have held claims: only those can arrive twice.
    assert sum(received.values()) - TOTAL <= 1024
    print(f"API processes served {dict(served)}")

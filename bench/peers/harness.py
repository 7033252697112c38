"""The command line bench/peers.py drives each peer through (run with .venv-peers).

    python harness.py PEER reset
    python harness.py PEER enqueue N [--batch B] [--timeout S]
    python harness.py PEER watch N [--timeout S]
    python harness.py PEER queued
    python harness.py PEER inspect

PEER is ``celery``, ``huey`` or ``pgqueuer``: the module ``PEER_peer`` here,
whose ``PEER`` object implements the ``Peer`` protocol below with the
library's own client API. Every command ends by printing one line
``PEER-RESULT <json>`` for the driver to read; everything else is progress.
Settings come from the environment the driver builds (``PEER_REDIS_URL``,
``PEER_HUEY_FILE``, ``PEER_PG_DSN``, ``PEER_PG_BATCH_SIZE``), so the
consumer, the endpoint and these commands always agree on where the queue is.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

# The peer modules sit beside this file (on the path already); the sample
# notification comes from the benchmarks' own helpers, which need only the
# standard library at import time.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from _common import sample_email

RESULT_PREFIX = "PEER-RESULT "
POLL_INTERVAL = 0.2
PROGRESS_EVERY = 5.0


@dataclass(frozen=True)
class Inspection:
    """What the peer's status records say once its consumer has stopped."""

    recorded: int  # jobs with a final status record
    successes: int  # of those, the ones that succeeded with status SENT
    first: float | None  # the earliest completion time (POSIX seconds)
    last: float | None


class Peer(Protocol):
    def reset(self) -> None:
        """Empty the queue and the status records this benchmark uses."""

    def enqueue(self, notifications: list[dict[str, Any]]) -> None:
        """Enqueue one job per notification, in one batch where the library can."""

    def any_left(self, count: int) -> bool:
        """Cheaply: is any of the ``count`` enqueued jobs not finished yet?"""

    def left(self, count: int) -> int:
        """How many of the ``count`` jobs are not finished (for progress lines)."""

    def queued(self) -> int:
        """Jobs waiting in the queue (with no consumer running: all that were enqueued)."""

    def inspect(self) -> Inspection:
        """Read every status record."""


def emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def enqueue(peer: Peer, count: int, batch: int, timeout: float) -> None:
    """Enqueue up to ``count`` jobs; stop between batches once ``timeout`` has passed."""
    started = time.monotonic()
    done = 0
    while done < count and time.monotonic() - started < timeout:
        size = min(batch, count - done)
        peer.enqueue([sample_email(n) for n in range(done, done + size)])
        done += size
    emit({"enqueued": done, "seconds": time.monotonic() - started})


def watch(peer: Peer, count: int, timeout: float) -> None:
    """Poll until no job is left; the moment that is seen is the end of the wall time."""
    started = time.monotonic()
    next_progress = started + PROGRESS_EVERY
    while peer.any_left(count):
        now = time.monotonic()
        if now - started > timeout:
            emit({"done_at": None, "left": peer.left(count)})
            return
        if now >= next_progress:
            print(f"  {now - started:6.1f}s  {count - peer.left(count):>10,} done", flush=True)
            next_progress += PROGRESS_EVERY
        time.sleep(max(0.0, POLL_INTERVAL - (time.monotonic() - now)))
    emit({"done_at": time.time(), "left": 0})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("peer", choices=("celery", "huey", "pgqueuer"))
    parser.add_argument("command", choices=("reset", "enqueue", "watch", "queued", "inspect"))
    parser.add_argument("count", type=int, nargs="?", default=0)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    peer: Peer = importlib.import_module(f"{args.peer}_peer").PEER
    if args.command == "reset":
        peer.reset()
        emit({"reset": True})
    elif args.command == "enqueue":
        enqueue(peer, args.count, args.batch, args.timeout)
    elif args.command == "watch":
        watch(peer, args.count, args.timeout)
    elif args.command == "queued":
        emit({"queued": peer.queued()})
    else:
        emit(asdict(peer.inspect()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

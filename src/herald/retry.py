"""The retry ladder (DESIGN 7): pure arithmetic that returns the next step.

A notification first gets ``len(backoff)`` quick attempts in its channel's
queue, ``backoff[i]`` seconds before attempt ``i + 1`` (default 0, 1, 2, 4 s).
Each escalation stage then gets one attempt after its delay (default retry-1
after 5 min, retry-2 after 30 min). After that it is dead. The stage is derived
from the attempt count, so a replay that resets the count restarts the ladder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Step:
    """Try again ``delay`` seconds from now, in ``queue`` (stage ``stage``)."""

    delay: float
    stage: int
    queue: str


@dataclass(frozen=True, slots=True)
class Ladder:
    backoff: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)
    stages: tuple[float, ...] = (300.0, 1800.0)
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not self.backoff:
            raise ValueError("the ladder needs at least one attempt")
        if any(d < 0 for d in (*self.backoff, *self.stages)) or self.jitter < 0:
            raise ValueError("ladder delays and jitter must not be negative")

    @property
    def max_attempts(self) -> int:
        return len(self.backoff) + len(self.stages)

    def stage_of(self, attempts: int) -> int:
        """The stage the ``attempts``-th attempt belongs to (0 = the channel queue)."""
        return max(0, attempts - len(self.backoff))

    def next_step(
        self,
        attempts: int,
        channel_queue: str,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> Step | None:
        """Where a notification goes after its ``attempts``-th attempt failed.

        None means the ladder is exhausted: the caller parks it in the DLQ.
        A provider's ``retry_after`` lengthens the wait, never shortens it.
        """
        if attempts < len(self.backoff):
            delay, stage, queue = self.backoff[attempts], 0, channel_queue
        else:
            stage = attempts - len(self.backoff) + 1
            if stage > len(self.stages):
                return None
            delay, queue = self.stages[stage - 1], f"retry-{stage}"
        if retry_after is not None:
            delay = max(delay, retry_after)
        if delay > 0 and self.jitter > 0:
            delay += delay * self.jitter * (rng or random).random()
        return Step(delay=delay, stage=stage, queue=queue)

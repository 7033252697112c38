"""The retry ladder (DESIGN 7): pure arithmetic that returns the next step.

A notification first gets ``len(backoff)`` quick attempts in its channel's
queue, ``backoff[i]`` seconds before attempt ``i + 1`` (default 0, 1, 2, 4 s).
Each escalation stage then gets one attempt after its delay (default retry-1
after 5 min, retry-2 after 30 min). After that it is dead. The stage is derived
from the attempt count, so a replay that resets the count restarts the ladder.

``POLICIES`` names each seed's ladder (``HERALD_RETRY_POLICY``); a ``Policy``
holds the default ladder and any channel's own (``HERALD_<CHANNEL>_RETRY_POLICY``).
A notification may ask for fewer retries than its ladder gives (``maxRetries``):
it then climbs only the first rungs, and is dead after them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .models import Channel


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

    @property
    def retries(self) -> int:
        """Attempts after the first: what a notification's ``maxRetries`` may be at most."""
        return self.max_attempts - 1

    def scaled(self, factor: float) -> Ladder:
        """The same ladder with every delay multiplied by ``factor`` (HERALD_RETRY_SCALE)."""
        return replace(
            self,
            backoff=tuple(d * factor for d in self.backoff),
            stages=tuple(d * factor for d in self.stages),
        )

    def stage_of(self, attempts: int) -> int:
        """The stage the ``attempts``-th attempt belongs to (0 = the channel queue)."""
        return max(0, attempts - len(self.backoff))

    def next_step(
        self,
        attempts: int,
        channel_queue: str,
        retry_after: float | None = None,
        rng: random.Random | None = None,
        max_retries: int | None = None,
    ) -> Step | None:
        """Where a notification goes after its ``attempts``-th attempt failed.

        None means the ladder is exhausted, or the notification's own
        ``max_retries`` is spent: the caller parks it in the DLQ. A provider's
        ``retry_after`` lengthens the wait, never shortens it.
        """
        if max_retries is not None and attempts > max_retries:
            return None
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


#: Each seed's ladder, as its document states it. ``backoff[0]`` is the first
#: attempt (immediate); every later entry is the wait before one retry. Jitter is
#: HERALD_RETRY_JITTER's, whatever the policy (the seeds name none).
POLICIES: dict[str, Ladder] = {
    # Seed 000, "Retry Process": attempts 1-4 at 0 ms, 1 s, 2 s, 4 s; then the Retry-1
    # queue after 5 min (RETRY_1_DELAY=300000), the Retry-2 queue after 30 min
    # (RETRY_2_DELAY=1800000), then the DLQ. Herald's default (DESIGN 7).
    "seed000": Ladder(backoff=(0.0, 1.0, 2.0, 4.0), stages=(300.0, 1800.0)),
    # Seed 002, "Queue Configuration" and "Retry Delays": "attempts: 3 // Retry failed
    # jobs up to 3 times", exponential from 2000 ms: "1st retry: 2 seconds, 2nd retry:
    # 4 seconds, 3rd retry: 8 seconds, After 3rd failure: Job marked as failed".
    "seed002": Ladder(backoff=(0.0, 2.0, 4.0, 8.0), stages=()),
    # Seed 003, "Error Handling & Retry Logic": "Up to 3 attempts with exponential
    # backoff (5s -> 15s -> 45s)", then "moved to DLQ after retries exhausted".
    "seed003": Ladder(backoff=(0.0, 5.0, 15.0, 45.0), stages=()),
    # Seed 004, "Retry Mechanism": attempt 1 immediate, then 5 s, 25 s, 125 s
    # ("maxRetries: Number // Default: 3"); at retry count >= max retries the
    # notification moves to the Dead Letter Queue (its queue ``notifications_dlq``).
    "seed004": Ladder(backoff=(0.0, 5.0, 25.0, 125.0), stages=()),
}
#: The policy built from HERALD_RETRY_BACKOFF (or HERALD_MAX_ATTEMPTS),
#: HERALD_RETRY_1_DELAY_MS and HERALD_RETRY_2_DELAY_MS; their defaults are seed 000's.
CUSTOM = "custom"
POLICY_NAMES = (*POLICIES, CUSTOM)


@dataclass(frozen=True, slots=True)
class Policy:
    """The ladder each channel climbs: ``default``, or the channel's own."""

    default: Ladder = field(default_factory=Ladder)
    channels: Mapping[Channel, Ladder] = field(default_factory=dict)

    def ladder_for(self, channel: Channel) -> Ladder:
        return self.channels.get(channel, self.default)

    @property
    def max_attempts(self) -> int:
        """The most attempts any channel's ladder allows (the lease sweep's bound)."""
        return max(ladder.max_attempts for ladder in (self.default, *self.channels.values()))

    def retries_for(self, channel: Channel, requested: int | None = None) -> int:
        """How many retries a ``channel`` notification that asked for ``requested`` gets:
        its ladder's, or fewer if it asked for fewer (what its JSON's ``maxRetries`` says)."""
        retries = self.ladder_for(channel).retries
        return retries if requested is None else min(requested, retries)

    def check_retries(self, channel: Channel, requested: int) -> None:
        """Refuse (``ValueError``) a ``maxRetries`` the channel's ladder cannot give."""
        retries = self.ladder_for(channel).retries
        if not 0 <= requested <= retries:
            raise ValueError(
                f"must be between 0 and {retries}, the retries of the {channel.value} retry policy"
            )

    def next_step(
        self,
        channel: Channel,
        attempts: int,
        max_retries: int | None = None,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> Step | None:
        """``Ladder.next_step`` on the channel's ladder, from the channel's queue."""
        return self.ladder_for(channel).next_step(
            attempts, channel.queue, retry_after=retry_after, rng=rng, max_retries=max_retries
        )

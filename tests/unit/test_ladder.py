"""The retry ladder: timing of the default and custom ladders, Retry-After, jitter."""

from __future__ import annotations

import random

import pytest

from herald.config import Settings
from herald.retry import Ladder, Step


def steps(ladder: Ladder) -> list[Step | None]:
    return [ladder.next_step(n, "email") for n in range(1, ladder.max_attempts + 1)]


def test_default_ladder_matches_seed_000() -> None:
    ladder = Settings(_env_file=None).ladder()
    assert ladder.jitter == 0.1
    exact = Ladder(ladder.backoff, ladder.stages, jitter=0)
    assert exact.max_attempts == 6
    assert steps(exact) == [
        Step(1.0, 0, "email"),
        Step(2.0, 0, "email"),
        Step(4.0, 0, "email"),
        Step(300.0, 1, "retry-1"),
        Step(1800.0, 2, "retry-2"),
        None,
    ]


def test_custom_ladder_from_seed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RETRY_1_DELAY", "1500")  # milliseconds, as in seed 000
    monkeypatch.setenv("RETRY_2_DELAY", "2500")
    monkeypatch.setenv("HERALD_RETRY_JITTER", "0")
    ladder = Settings(_env_file=None).ladder()
    assert ladder.backoff == (0.0, 1.0, 2.0)
    assert steps(ladder) == [
        Step(1.0, 0, "email"),
        Step(2.0, 0, "email"),
        Step(1.5, 1, "retry-1"),
        Step(2.5, 2, "retry-2"),
        None,
    ]


def test_herald_backoff_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_RETRY_BACKOFF", "0, 0.5, 3")
    ladder = Settings(_env_file=None).ladder()
    assert ladder.backoff == (0.0, 0.5, 3.0)
    assert ladder.stage_of(3) == 0 and ladder.stage_of(4) == 1 and ladder.stage_of(5) == 2


def test_bad_backoff_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_RETRY_BACKOFF", "0,soon")
    with pytest.raises(ValueError, match="HERALD_RETRY_BACKOFF"):
        Settings(_env_file=None)


def test_retry_after_lengthens_never_shortens() -> None:
    ladder = Ladder(jitter=0)
    assert ladder.next_step(1, "email", retry_after=30).delay == 30  # type: ignore[union-attr]
    assert ladder.next_step(4, "email", retry_after=30).delay == 300  # type: ignore[union-attr]


def test_jitter_is_bounded_and_spreads() -> None:
    ladder = Ladder(jitter=0.1)
    rng = random.Random(7)
    delays = {ladder.next_step(3, "email", rng=rng).delay for _ in range(50)}  # type: ignore[union-attr]
    assert all(4.0 <= d <= 4.4 for d in delays)
    assert len(delays) > 40
    assert ladder.next_step(0, "email").delay == 0  # type: ignore[union-attr]


def test_ladder_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        Ladder(backoff=())
    with pytest.raises(ValueError):
        Ladder(stages=(-1.0,))

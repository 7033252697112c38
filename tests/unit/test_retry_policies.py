"""Each seed's retry policy by name, per channel, scaled, and a notification's maxRetries."""

from __future__ import annotations

import random

import pytest

from herald.config import Settings
from herald.models import Channel
from herald.retry import Ladder, Policy, Step


def climb(ladder: Ladder, max_retries: int | None = None) -> list[Step | None]:
    """The step after each failed attempt, until the ladder says the DLQ."""
    found: list[Step | None] = []
    for attempts in range(1, 50):
        step = ladder.next_step(attempts, "sms", max_retries=max_retries)
        found.append(step)
        if step is None:
            return found
    raise AssertionError("the ladder never ends")


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    monkeypatch.setenv("HERALD_RETRY_JITTER", "0")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Seed 000: 0/1/2/4 s in the channel's queue, retry-1 after 5 min, retry-2 after 30.
        ("seed000", [Step(1.0, 0, "sms"), Step(2.0, 0, "sms"), Step(4.0, 0, "sms"),
                     Step(300.0, 1, "retry-1"), Step(1800.0, 2, "retry-2"), None]),
        # Seed 002: three retries, exponential from 2 s.
        ("seed002", [Step(2.0, 0, "sms"), Step(4.0, 0, "sms"), Step(8.0, 0, "sms"), None]),
        # Seed 003: 5 s, 15 s, 45 s.
        ("seed003", [Step(5.0, 0, "sms"), Step(15.0, 0, "sms"), Step(45.0, 0, "sms"), None]),
        # Seed 004: three retries at 5, 25, 125 s, then the DLQ.
        ("seed004", [Step(5.0, 0, "sms"), Step(25.0, 0, "sms"), Step(125.0, 0, "sms"), None]),
    ],
)  # fmt: skip
def test_each_named_policy_climbs_its_seeds_ladder(
    monkeypatch: pytest.MonkeyPatch, name: str, expected: list[Step | None]
) -> None:
    ladder = settings(monkeypatch, HERALD_RETRY_POLICY=name).ladder()
    assert climb(ladder) == expected
    assert ladder.retries == len(expected) - 1
    assert Policy(ladder).retries_for(Channel.SMS) == len(expected) - 1


def test_the_default_is_seed_000_and_the_custom_settings_still_shape_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (
        settings(monkeypatch).ladder()
        == settings(monkeypatch, HERALD_RETRY_POLICY="seed000").ladder()
    )
    monkeypatch.delenv("HERALD_RETRY_POLICY")
    custom = settings(monkeypatch, HERALD_RETRY_BACKOFF="0,3", RETRY_1_DELAY="7000")
    assert climb(custom.ladder()) == [
        Step(3.0, 0, "sms"), Step(7.0, 1, "retry-1"), Step(1800.0, 2, "retry-2"), None
    ]  # fmt: skip


def test_custom_ladder_settings_beside_a_named_policy_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match=r"RETRY_1_DELAY.*HERALD_RETRY_POLICY=seed004"):
        settings(monkeypatch, HERALD_RETRY_POLICY="seed004", RETRY_1_DELAY="1000")
    # ... unless some channel's policy is the custom ladder, which reads them.
    both = settings(monkeypatch, HERALD_PUSH_RETRY_POLICY="custom")
    assert climb(both.ladder(Channel.PUSH))[3] == Step(1.0, 1, "retry-1")


def test_an_unknown_policy_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="HERALD_SMS_RETRY_POLICY"):
        settings(monkeypatch, HERALD_SMS_RETRY_POLICY="seed001")


def test_a_channel_has_its_own_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = settings(
        monkeypatch, HERALD_RETRY_POLICY="seed003", HERALD_SMS_RETRY_POLICY="seed004"
    ).policy()
    sms = policy.next_step(Channel.SMS, 1)
    email = policy.next_step(Channel.EMAIL, 1)
    assert sms == Step(5.0, 0, "sms") and email == Step(5.0, 0, "email")
    assert policy.next_step(Channel.SMS, 2) == Step(25.0, 0, "sms")
    assert policy.next_step(Channel.EMAIL, 2) == Step(15.0, 0, "email")
    assert policy.ladder_for(Channel.PUSH) == policy.default
    assert policy.max_attempts == 4


def test_every_channel_policy_setting_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    for channel in Channel:
        monkeypatch.setenv(f"HERALD_{channel.value}_RETRY_POLICY", "seed002")
        policy = settings(monkeypatch).policy()
        assert policy.ladder_for(channel).backoff == (0.0, 2.0, 4.0, 8.0), channel
        assert policy.max_attempts == 6, "the default ladder stays seed 000's"


def test_scale_shortens_every_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    ladder = settings(
        monkeypatch, HERALD_RETRY_POLICY="seed000", HERALD_RETRY_SCALE="0.01"
    ).ladder()
    assert [s.delay if s else None for s in climb(ladder)] == pytest.approx(
        [0.01, 0.02, 0.04, 3.0, 18.0, None]
    )


def test_jitter_applies_to_named_policies_and_can_be_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_RETRY_POLICY", "seed004")
    jittered = Settings(_env_file=None).ladder()
    assert jittered.jitter == 0.1
    rng = random.Random(3)
    delays = {jittered.next_step(2, "sms", rng=rng).delay for _ in range(30)}  # type: ignore[union-attr]
    assert all(25.0 <= d <= 27.5 for d in delays) and len(delays) > 20
    off = settings(monkeypatch).ladder()
    assert {off.next_step(2, "sms", rng=rng).delay for _ in range(30)} == {25.0}  # type: ignore[union-attr]


def test_max_retries_stops_the_climb_early(monkeypatch: pytest.MonkeyPatch) -> None:
    ladder = settings(monkeypatch, HERALD_RETRY_POLICY="seed000").ladder()
    assert climb(ladder, max_retries=0) == [None]
    assert climb(ladder, max_retries=2) == [Step(1.0, 0, "sms"), Step(2.0, 0, "sms"), None]
    assert climb(ladder, max_retries=4)[-2:] == [Step(300.0, 1, "retry-1"), None]
    assert climb(ladder, max_retries=5) == climb(ladder)


def test_max_retries_is_capped_by_the_channels_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = settings(monkeypatch, HERALD_SMS_RETRY_POLICY="seed004").policy()
    assert policy.retries_for(Channel.SMS) == 3 and policy.retries_for(Channel.EMAIL) == 5
    assert policy.retries_for(Channel.SMS, 1) == 1
    assert policy.retries_for(Channel.SMS, 9) == 3, "shown as what the worker will do"
    policy.check_retries(Channel.SMS, 3)
    policy.check_retries(Channel.EMAIL, 5)
    with pytest.raises(ValueError, match="between 0 and 3"):
        policy.check_retries(Channel.SMS, 4)
    with pytest.raises(ValueError, match="between 0 and 5"):
        policy.check_retries(Channel.EMAIL, 6)

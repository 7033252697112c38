"""The delivery worker on the memory store: breaker trials, lease deadlines, reserved slots
and stale completions. Shutdown is in ``test_worker_shutdown.py``; the rig is
``worker_rig.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog.testing

from herald import metrics
from herald.delivery.breaker import State
from herald.errors import StoreUnavailable
from herald.models import Channel, NewNotification, Priority, Status
from herald.store.receipts import Suppression
from tests.unit.worker_rig import Clock, Rig, eventually


async def test_sends_wait_for_a_half_open_trial_rather_than_coming_back(tmp_path: Path) -> None:
    """Twenty notifications behind a slow half-open trial: the nineteen others wait for its
    verdict inside their attempt. Turned away at once with a zero-second deferral, they
    came straight back and were claimed again and again while the trial lasted (938
    claim/defer cycles in the case that found it), each leaving a "rate limited for
    0.0s" row in the history."""
    rig = Rig(tmp_path, worker_concurrency=32, poll_interval=0.005)
    rig.half_open()
    trial = rig.provider.hold_next(1)
    notes = await rig.create(20)
    async with rig.running():
        await eventually(lambda: len(rig.provider.calls) == 1, what="the trial call")
        # While the trial is out, the worker goes idle on an empty queue; one that
        # deferred the others would be claiming them again meanwhile.
        await eventually(
            lambda: rig.store.empty_claims >= 5 or rig.store.claimed.total() > 20,
            what="an idle claimer, or a claim/defer cycle",
        )
        assert rig.breaker.on_trial
        trial.set()
        await eventually(lambda: rig.all_in(notes, Status.SENT), what="every notification sent")
    assert rig.breaker_state() is State.CLOSED
    assert rig.store.claimed.total() == 20, f"{rig.store.claimed.total()} claims of 20 rows"
    assert len(rig.provider.calls) == 20
    for note in notes:
        history = await rig.history(note)
        assert [e.status for e in history].count(Status.PROCESSING) == 1
        assert not [e.message for e in history if "Not attempted" in e.message]
        assert not any("for 0.0s" in e.message for e in history)


@pytest.mark.parametrize("where", ["bucket", "provider"])
async def test_a_trial_ended_by_a_store_outage_is_given_back(tmp_path: Path, where: str) -> None:
    """The trial's call never went out: the token bucket's store was unreachable, or a
    store-backed provider raised ``StoreUnavailable``. The breaker must not keep a
    trial nobody is making, or every later send would wait for a verdict that never
    comes; the notification is deferred, unspent, and sent once the store is back."""
    rig = Rig(tmp_path, rate=100.0 if where == "bucket" else None, poll_interval=0.005)
    rig.half_open()
    if where == "bucket":
        rig.store.bucket_down = True
    else:
        rig.provider.fail("a@example.com", StoreUnavailable("the mailbox table is unreachable"))
    [note] = await rig.create(1)
    async with rig.running():
        await eventually(lambda: rig.logged(note, "Not attempted"), what="a deferral")
        assert not rig.breaker.on_trial, "the breaker still waits for the trial's verdict"
        assert rig.breaker_state() is State.HALF_OPEN, "nothing reached the provider to judge"
        rig.store.bucket_down = False
        rig.provider.failures.clear()
        rig.clock.advance(1.0)  # the deferral falls due
        await eventually(lambda: rig.all_in([note], Status.SENT), what="the send afterwards")
    assert rig.breaker_state() is State.CLOSED
    assert (await rig.get(note)).attempts == 1, "the deferred attempt was spent"


async def test_an_attempt_is_cut_before_its_lease_ends_and_never_claimed_twice(
    tmp_path: Path,
) -> None:
    """A provider that never answers: the attempt ends at the lease less its margin, as a
    retry recorded while the lease still holds, so the sweeper (every 10 ms here) never
    hands the row out again while the first call might still deliver it."""
    clock = Clock(running=True)  # the lease (this clock) and the cut (the loop) both pass
    rig = Rig(tmp_path, clock, lease_seconds=0.6, lease_margin=0.25, sweep_interval=0.01)
    rig.provider.hold_next(1)  # never answered
    [note] = await rig.create(1)
    async with rig.running():
        await eventually(lambda: rig.all_in([note], Status.RETRYING), what="the cut attempt")
    history = await rig.history(note)
    [claimed] = [e for e in history if e.status is Status.PROCESSING]
    [retrying] = [e for e in history if e.status is Status.RETRYING]
    assert "did not answer within the attempt's 0.35s" in retrying.message
    assert claimed.at + 0.35 <= retrying.at < claimed.at + 0.6, "recorded inside the lease"
    assert rig.provider.cancelled == [note.id], "the provider call was cut"
    assert rig.store.claimed[note.id] == 1
    clock.advance(0.6)  # past the lease: a row still held would be swept now
    assert (await rig.store.sweep(max_attempts=6)).expired == 0
    assert not any(e.message.startswith("Stalled") for e in await rig.history(note))


async def test_reserved_slots_keep_room_for_high_priority(tmp_path: Path) -> None:
    """Four slots, one reserved: three LOW sends that hang hold every ordinary slot, and
    a HIGH notification still goes out at once, in the reserved one."""
    rig = Rig(tmp_path, worker_concurrency=4, reserved_slots=1, poll_interval=0.005)
    stuck = rig.provider.hold("low@example.com")
    lows = await rig.create(6, "low@example.com", Priority.LOW)
    async with rig.running():
        await eventually(lambda: len(rig.provider.calls) >= 3, what="the LOW sends")
        [high] = await rig.create(1, "high@example.com", Priority.HIGH)
        await eventually(lambda: rig.all_in([high], Status.SENT), what="the HIGH send")
        low_calls = [m for m in rig.provider.calls if m.recipient == "low@example.com"]
        assert len(low_calls) == 3, "a LOW notification took the reserved slot"
        assert rig.worker.inflight == 3
        stuck.set()
        await eventually(lambda: rig.all_in(lows, Status.SENT), what="the LOW backlog")


async def test_a_stale_completion_changes_nothing_and_frees_only_its_own_slot(
    tmp_path: Path,
) -> None:
    """The lease passes while a send is still out (the process was paused, say): the row
    is swept and claimed again, by this same worker. The first send's late outcome is
    ignored by the store, and it frees its own slot, not the slot of the claim that now
    holds the row."""
    rig = Rig(tmp_path, worker_concurrency=4, sweep_interval=0.01, poll_interval=0.005)
    first = rig.provider.hold_next(1)
    [note] = await rig.create(1)
    async with rig.running():
        await eventually(lambda: len(rig.provider.calls) == 1, what="the first send")
        second = rig.provider.hold_next(1)
        rig.clock.advance(rig.settings.lease_seconds + 1)
        await eventually(lambda: len(rig.provider.calls) == 2, what="the second claim's send")
        assert rig.store.claimed[note.id] == 2
        assert rig.worker.inflight == 2, "two claims of one row hold two slots"
        first.set()  # the stale send ends: the store ignores its outcome
        await eventually(lambda: rig.worker.inflight == 1, what="the stale outcome recorded")
        row = await rig.get(note)
        assert row.status is Status.PROCESSING and row.provider_message_id is None
        assert not await rig.logged(note, "Successfully sent")
        second.set()
        await eventually(lambda: rig.all_in([note], Status.SENT), what="the second send")
        await eventually(lambda: rig.worker.inflight == 0, what="every slot free")
    row = await rig.get(note)
    assert row.provider_message_id == "pigeon-2", "the live claim's receipt is the one kept"
    history = await rig.history(note)
    assert [e.status for e in history].count(Status.SENT) == 1


async def test_a_suppressed_recipient_is_never_sent_to(tmp_path: Path) -> None:
    """A recipient on the tenant's suppression list: the notification ends SUPPRESSED
    without a provider call, its slot is freed, and a notification that ignores the
    list, or goes to someone else, is sent as usual."""
    rig = Rig(tmp_path, poll_interval=0.005)
    await rig.store.suppress([Suppression("default", "gone@example.com", "", "bounce")])
    [blocked] = await rig.create(1, "Gone@Example.com")
    [other] = await rig.create(1, "here@example.com")
    [forced] = await rig.store.create(
        [NewNotification(Channel.EMAIL, "gone@example.com", "reset", ignore_suppression=True)]
    )
    async with rig.running():
        await eventually(lambda: rig.all_in([other, forced], Status.SENT), what="the sends")
        await eventually(lambda: rig.all_in([blocked], Status.SUPPRESSED), what="suppressed")
        await eventually(lambda: rig.worker.inflight == 0, what="every slot free")
    assert rig.provider.called(blocked.id) == 0
    assert rig.provider.called(forced.id) == 1
    assert await rig.logged(blocked, "on the suppression list (bounce)")


async def test_a_crashing_provider_never_logs_the_recipients_credentials(tmp_path: Path) -> None:
    """A provider bug whose message quotes the recipient URL: the error kept on the row and
    the log line (its traceback too) show the password masked."""
    rig = Rig(tmp_path, poll_interval=0.005)
    url = "https://hook:s3cret-pw@hooks.example/in"
    rig.provider.fail("a@example.com", RuntimeError(f"could not post to {url}"))
    [note] = await rig.create(1)
    with structlog.testing.capture_logs() as logs:
        async with rig.running():
            await eventually(lambda: rig.all_in([note], Status.RETRYING), what="the retry")
    crashed = [e for e in logs if e["event"] == "provider_crashed"]
    assert crashed and "hook:****@hooks.example" in crashed[0]["error"]
    assert "s3cret-pw" not in repr(logs)
    row = await rig.get(note)
    assert row.last_error is not None and "s3cret-pw" not in row.last_error
    assert "hook:****@" in row.last_error


def counted(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_what_the_worker_records_is_counted(tmp_path: Path) -> None:
    """Outcomes count once their batch is committed: two deferred by the open breaker
    (without spending an attempt), one suppressed; three claims."""
    rig = Rig(tmp_path, poll_interval=0.005)
    rig.breaker.failed()
    assert rig.breaker_state() is State.OPEN
    await rig.store.suppress([Suppression("default", "gone@example.com", "", "bounce")])
    before = (
        counted("notifications_deferred_total", type="EMAIL", reason="breaker_open"),
        counted("notifications_suppressed_total", type="EMAIL"),
        counted("herald_claims_total"),
    )
    [blocked] = await rig.create(1, "gone@example.com")
    waiting = await rig.create(2)
    async with rig.running():
        await eventually(lambda: rig.all_in([blocked], Status.SUPPRESSED), what="suppressed")
        await eventually(
            lambda: (
                counted("notifications_deferred_total", type="EMAIL", reason="breaker_open")
                == before[0] + 2
            ),
            what="the two deferrals counted",
        )
        await eventually(lambda: rig.worker.inflight == 0, what="every slot free")
    assert counted("notifications_suppressed_total", type="EMAIL") == before[1] + 1
    assert counted("herald_claims_total") == before[2] + 3
    assert counted("herald_inflight_sends") == 0
    assert rig.provider.calls == []
    for note in waiting:
        assert await rig.logged(note, "circuit open after")

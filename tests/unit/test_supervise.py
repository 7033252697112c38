"""Background loops under supervision: failures restart, liveness tells health."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from herald.supervise import CRASH_LOOP, Liveness, LoopState, Supervisor


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            if condition():
                return
            await asyncio.sleep(0.002)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_loop_is_restarted_and_its_liveness_kept() -> None:
    clock = Clock()
    loops = Supervisor(clock=clock, backoff=0.01)
    runs = 0

    async def body(live: Liveness) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise ValueError("a bug")
        live.ok()
        clock.now += 1
        await asyncio.Event().wait()  # runs until cancelled

    task = loops.spawn("sweeper", body)
    await until(lambda: runs >= 2)
    live = loops.loops["sweeper"]
    assert live.state is LoopState.RUNNING and live.restarts == 1 and live.healthy
    assert live.last_error == "ValueError: a bug" and live.last_error_at == 1000.0
    assert live.last_success_at == 1000.0 and loops.healthy
    assert live.describe().startswith("running (1 restarts; last error: ValueError")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert live.state is LoopState.STOPPED


async def test_a_loop_failing_again_and_again_is_crash_looping_until_it_recovers() -> None:
    loops = Supervisor(backoff=0.001, max_backoff=0.002)
    recovered = asyncio.Event()
    runs = 0

    async def body(live: Liveness) -> None:
        nonlocal runs
        runs += 1
        if not recovered.is_set():
            raise RuntimeError(f"failure {runs}")
        live.ok()
        await asyncio.Event().wait()

    task = loops.spawn("retention", body)
    await until(lambda: runs >= CRASH_LOOP + 1)
    live = loops.loops["retention"]
    assert live.state is LoopState.CRASH_LOOPING and not live.healthy
    assert not loops.healthy and live.as_dict()["state"] == "crash-looping"
    recovered.set()
    await until(lambda: live.state is LoopState.RUNNING)
    assert loops.healthy and live.failures == 0 and live.restarts >= CRASH_LOOP
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_loop_that_returns_is_stopped_not_restarted() -> None:
    loops = Supervisor()
    runs = 0

    async def body(live: Liveness) -> None:
        nonlocal runs
        runs += 1

    await loops.run("claimer", body)
    assert runs == 1 and loops.loops["claimer"].state is LoopState.STOPPED and loops.healthy


async def test_backoff_grows_between_failures_in_a_row() -> None:
    loops = Supervisor(backoff=0.02, max_backoff=1.0)
    starts: list[float] = []

    async def body(live: Liveness) -> None:
        starts.append(asyncio.get_running_loop().time())
        raise OSError("down")

    task = loops.spawn("flusher", body)
    await until(lambda: len(starts) >= 4)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.04 and gaps[2] >= 0.08


async def test_something_that_is_not_an_exception_kills_the_loop_and_says_so() -> None:
    loops = Supervisor()

    async def body(live: Liveness) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await loops.run("listener", body)
    assert loops.loops["listener"].state is LoopState.DEAD and not loops.healthy

"""The delivery worker: claim a batch under a lease, send, record outcomes in batches.

One asyncio task claims, one writes completions, one sweeps expired leases;
each claimed notification is sent in a task of its own, with at most
``worker_concurrency`` in flight. When free slots fall to the reserved count,
only HIGH and CRITICAL are claimed, so they never wait behind a LOW backlog.

Shutdown (``stop()``, wired to SIGTERM/SIGINT by the CLI): claiming stops,
in-flight sends get ``shutdown_grace`` seconds to finish, their outcomes are
written, and anything still unsent is released back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable
from typing import Any

import structlog

from ..config import Settings
from ..errors import PermanentError, StoreUnavailable, TransientError, UnregisteredRecipient
from ..metrics import PROCESSING
from ..models import Claim, Dead, Deferred, Outcome, Priority, Retry, Sent
from ..providers.base import Message
from ..retry import Ladder
from ..store.base import Store
from .chain import Chain
from .ratelimit import Throttled

log = structlog.get_logger("herald.worker")


class Worker:
    def __init__(
        self,
        store: Store,
        chains: dict[str, Chain],
        settings: Settings,
        ladder: Ladder | None = None,
    ) -> None:
        self.store = store
        self.chains = chains
        self.settings = settings
        self.ladder = ladder or settings.ladder()
        self.concurrency = settings.worker_concurrency
        self.reserved = settings.reserved_slots or 0
        self._inflight: dict[str, Claim] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._have_outcomes = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self._rng = random.Random()
        self.delivered = 0

    # -- lifecycle ----------------------------------------------------------

    def stop(self) -> None:
        """Ask the worker to wind down; ``run`` returns when it has."""
        if not self._stopping.is_set():
            log.info("worker_stopping", inflight=len(self._inflight))
        self._stopping.set()

    async def run(self) -> None:
        log.info("worker_started", concurrency=self.concurrency, reserved=self.reserved)
        flusher = asyncio.create_task(self._flush_loop(), name="herald-flush")
        sweeper = asyncio.create_task(self._sweep_loop(), name="herald-sweep")
        try:
            await self._claim_loop()
        finally:
            await self._drain()
            sweeper.cancel()
            self._stopping.set()
            self._have_outcomes.set()
            await asyncio.gather(flusher, sweeper, return_exceptions=True)
            await self._flush(give_up_after=1.0)
            log.info("worker_stopped", delivered=self.delivered)

    async def _drain(self) -> None:
        """Let in-flight sends finish within the grace period, then release the rest."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.settings.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._flush(give_up_after=max(1.0, self.settings.shutdown_grace))
        attempted = {o.claim.id for o in self._outcomes}  # sent, but not recorded
        leftover = [c for c in self._inflight.values() if c.id not in attempted]
        if leftover:
            with contextlib.suppress(StoreUnavailable):
                released = await self.store.release(leftover)
                log.info("claims_released", count=released)

    # -- claiming -----------------------------------------------------------

    async def _claim_loop(self) -> None:
        backoff = self.settings.poll_interval
        while not self._stopping.is_set():
            free = self.concurrency - len(self._inflight)
            if free <= 0:
                self._slot_free.clear()
                await self._wait(self._slot_free.wait())
                continue
            min_priority = Priority.LOW if free > self.reserved else Priority.HIGH
            try:
                claims = await self.store.claim(
                    min(free, self.settings.claim_batch), self.settings.lease_seconds, min_priority
                )
            except StoreUnavailable as exc:
                log.warning("claim_failed", error=str(exc), retry_in=round(backoff, 2))
                await self._wait(asyncio.sleep(backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = self.settings.poll_interval
            if not claims:
                # A store that announces work (PostgreSQL) wakes us; we poll only as a fallback.
                poll = self.settings.poll_interval
                if self.store.notifies_work:
                    poll = max(poll, self.settings.idle_poll_interval)
                idle: list[Awaitable[Any]] = [self.store.wait_for_work(poll)]
                if min_priority is not Priority.LOW:
                    # Only reserved slots are free: a finished send frees an ordinary one.
                    self._slot_free.clear()
                    idle.append(self._slot_free.wait())
                await self._wait(*idle)
                continue
            for claim in claims:
                self._inflight[claim.id] = claim
                task = asyncio.create_task(self._deliver(claim))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if len(claims) < min(free, self.settings.claim_batch):
                # The queue ran dry: give the event loop to the sends before polling again.
                await asyncio.sleep(0)

    async def _wait(self, *awaitables: Awaitable[Any]) -> None:
        """Wait for the first of ``awaitables``, or for stop(), whichever comes first."""
        futures = {asyncio.ensure_future(a) for a in (*awaitables, self._stopping.wait())}
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for future in futures:
            if not future.done():
                future.cancel()

    # -- sending ------------------------------------------------------------

    async def _deliver(self, claim: Claim) -> None:
        started = time.perf_counter()
        message = Message(
            id=claim.id, tenant_id=claim.tenant_id, channel=claim.channel,
            recipient=claim.recipient, body=claim.body, subject=claim.subject,
            html=claim.html, metadata=claim.metadata, attempt=claim.attempts,
        )  # fmt: skip
        callback = self._callback_for(claim)
        outcome: Outcome
        try:
            if claim.unregistered:
                raise UnregisteredRecipient("the recipient was reported gone by a provider earlier")
            chain = self.chains[claim.channel.value]
            receipt = await chain.send(message, max_wait=self.settings.lease_seconds / 2)
        except asyncio.CancelledError:
            return  # shutdown past the grace period: the claim is released
        except Throttled as exc:
            now = time.time()
            outcome = Deferred(claim, str(exc), now + exc.wait, now)
        except PermanentError as exc:
            gone = isinstance(exc, UnregisteredRecipient)
            error = str(exc) or type(exc).__name__
            outcome = Dead(claim, exc.provider, error, True, time.time(), gone, callback)
        except TransientError as exc:
            outcome = self._retry_or_bury(claim, exc.provider, str(exc), exc.retry_after)
        except Exception as exc:  # a provider bug must not lose the notification
            log.exception("provider_crashed", notification_id=claim.id)
            outcome = self._retry_or_bury(claim, None, f"{type(exc).__name__}: {exc}", None)
        else:
            elapsed = (time.perf_counter() - started) * 1000
            outcome = Sent(
                claim, receipt.provider, receipt.message_id, elapsed, time.time(), callback
            )
        PROCESSING.labels(claim.channel.value, type(outcome).__name__.lower()).observe(
            time.perf_counter() - started
        )
        # The slot stays taken until the outcome is committed (see _flush): a claim
        # whose outcome is not yet recorded would be sent again after a crash, so
        # it counts against the in-flight bound like a send in progress.
        self._outcomes.append(outcome)
        self._have_outcomes.set()

    def _retry_or_bury(
        self, claim: Claim, provider: str | None, error: str, retry_after: float | None
    ) -> Outcome:
        now = time.time()
        step = self.ladder.next_step(
            claim.attempts, claim.channel.queue, retry_after=retry_after, rng=self._rng
        )
        if step is None:
            return Dead(claim, provider, error, False, now, callback=self._callback_for(claim))
        return Retry(claim, provider, error, now + step.delay, step.stage, step.queue, now)

    def _callback_for(self, claim: Claim) -> str | None:
        """Where to report how ``claim`` ended; a callback itself reports nowhere."""
        if "callbackFor" in claim.metadata:
            return None
        return claim.callback_url or self.settings.callback_url

    # -- recording ----------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not (self._stopping.is_set() and not self._outcomes and not self._tasks):
            await self._have_outcomes.wait()
            self._have_outcomes.clear()
            await self._flush()

    async def _flush(self, give_up_after: float | None = None) -> None:
        """Commit pending outcomes, retrying while the store is unavailable.

        With ``give_up_after`` (shutdown) it stops trying after that many
        seconds: the rows' leases expire and another worker sends them again.
        """
        backoff = 0.05
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await self.store.complete(batch)
            except Exception as exc:
                # Keep them: the lease protects the rows until the store is back.
                self._outcomes[:0] = batch
                if isinstance(exc, StoreUnavailable):
                    log.warning("complete_failed", error=str(exc), pending=len(self._outcomes))
                else:  # a store bug must not end the recording of every later outcome
                    log.exception("complete_crashed", pending=len(self._outcomes))
                if deadline is not None and time.monotonic() > deadline:
                    log.error("outcomes_unrecorded", count=len(self._outcomes))
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            for outcome in batch:
                self._inflight.pop(outcome.claim.id, None)
            self._slot_free.set()
            self.delivered += sum(1 for o in batch if isinstance(o, Sent))

    async def _sweep_loop(self) -> None:
        while True:
            try:
                swept = await self.store.sweep(self.ladder.max_attempts)
                if swept:
                    log.warning("leases_expired", count=swept)
            except StoreUnavailable as exc:
                log.warning("sweep_failed", error=str(exc))
            await asyncio.sleep(self.settings.sweep_interval)

"""The delivery worker: claim a batch under a lease, send, record outcomes in batches.

One asyncio task claims, one writes completions, one sweeps expired leases,
one listens for the store's announcements of work, each under supervision
(``supervise.py``: a crash is logged and restarted, and health shows it).
Claimed notifications are sent by senders: tasks that each attempt one claim
at a time, as many as there are sends waiting on something,
with at most ``worker_concurrency`` claims in flight. A send that does not
wait (a fast provider) runs in the sender already running, without a task of
its own; when a sender is left waiting, the claims queued behind it each get
a sender (``_spread``). When free slots fall to the reserved count, only HIGH
and CRITICAL are claimed, so they never wait behind a LOW backlog; inside the
send, pacer and pool waits serve them first too.

Claims and the writes that make work due run side by side on PostgreSQL, so a
claim on its way does not see a notification committed after it began. When
the store announces work while a claim that leaves the reserved slots free is
on its way, HIGH and CRITICAL are claimed at once into those slots (``_rush``)
rather than one claim later; their outcomes are written at once too, not
behind the next claim.

Each attempt is ``attempt.Attempts``' (through the chain, cut at its lease's
deadline); the worker arms one deadline timer per claimed batch (``Lease``).
In-flight accounting is by claim (row and token), so a row claimed again
after its lease expired counts twice.

Lanes: a worker may serve some lanes only (HERALD_WORKER_QUEUES, ``herald
worker --channels``); the store's claim filters them. A lane may be capped
(HERALD_<LANE>_CONCURRENCY): a claim takes rows of every lane at once, so the cap
is held at send time, by a semaphore per capped lane, and a lane at its cap is
left out of the next claims, so the worker does not hoard rows it cannot send
(at most one claim's worth waits behind a cap). Claiming lane by lane instead
would cost a round trip per lane for every claim, capped or not; with no cap
set the send path only tests an empty dict.

Shutdown (``stop()``, wired to SIGTERM/SIGINT by the CLI): claiming stops,
in-flight sends get ``shutdown_grace`` seconds to finish, their outcomes are
written, and anything still unsent is released back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from .. import metrics
from ..config import Settings
from ..errors import (
    StoreUnavailable,
)
from ..models import CLAIMED_QUEUES, Claim, Outcome, Priority, Sent
from ..retry import Policy
from ..store.base import Store
from ..supervise import Liveness, Supervisor
from ..unsubscribe import Links
from .attempt import Attempts, Lease
from .chain import Chain

#: When a notification whose attempt could not go out in time may be claimed again.
REQUEUE_AFTER = 1.0

log = structlog.get_logger("herald.worker")


class Worker:
    def __init__(
        self,
        store: Store,
        chains: dict[str, Chain],
        settings: Settings,
        policy: Policy | None = None,
        *,
        clock: Callable[[], float] = time.time,
        loops: Supervisor | None = None,
        links: Links | None = None,
    ) -> None:
        """``clock`` is the wall clock leases are measured by (a fake one in tests);
        ``links`` sign the List-Unsubscribe headers (``unsubscribe.Links.load``)."""
        self.store = store
        self.chains = chains
        self.settings = settings
        self.policy = policy or settings.policy()
        self.concurrency = settings.worker_concurrency
        # At least one slot takes any priority, or LOW would never be sent.
        self.reserved = min(settings.reserved_slots or 0, self.concurrency - 1)
        self.loops = loops or Supervisor(clock=clock)
        self.lanes: tuple[str, ...] | None = tuple(settings.worker_queues) or None
        caps = settings.lane_caps()
        self.caps = {lane: cap for lane, cap in caps.items() if lane in (self.lanes or caps)}
        self._gates = {lane: asyncio.Semaphore(cap) for lane, cap in self.caps.items()}
        self._held = dict.fromkeys(self.caps, 0)  # claims of each capped lane started, not ended
        self.attempts = Attempts(chains, settings, self.policy, clock, links)
        self._clock = clock
        # By claim (id and token: one token covers a claimed batch), so a row claimed
        # again after its own lease expired is two claims, not one.
        self._inflight: dict[tuple[str, str], Claim] = {}
        self._queue: deque[tuple[Claim, Lease]] = deque()  # started, no sender yet
        self._senders: set[asyncio.Task[None]] = set()
        self._idle: list[asyncio.Future[None]] = []  # senders waiting for claims
        self._spreading = False  # a _spread is scheduled
        self._leases: dict[str, Lease] = {}  # by claim token: one per claimed batch
        self._sends = 0  # claims started and not yet attempted to the end
        self._quiet: asyncio.Future[None] | None = None  # resolved when _sends falls to 0
        self._outcomes: list[Outcome] = []
        self._have_outcomes = asyncio.Event()
        self._committing = asyncio.Lock()  # held while a batch of outcomes is written
        self._claiming = False  # a claim is on its way to the store
        self._claimed = asyncio.Event()  # set when one comes back
        self._asked = 0  # slots that claims on their way to the store may fill
        self._floor: Priority | None = None  # the lowest priority the claim on its way takes
        self._work = asyncio.Event()  # the store announced work (``_listen_loop``)
        self._rushing: asyncio.Task[None] | None = None  # the claim of HIGH+ on its way
        self._rush_again = False  # work was announced while it was on its way
        self._urgent = asyncio.Event()  # a HIGH or CRITICAL outcome waits to be written
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        self.delivered = 0
        #: How this process names itself in the store's list of live workers.
        self.name = f"{settings.instance}#{os.getpid()}"

    # -- lifecycle ----------------------------------------------------------

    @property
    def inflight(self) -> int:
        """Claims held: being sent, or sent with the outcome not yet committed."""
        return len(self._inflight)

    def stop(self) -> None:
        """Ask the worker to wind down; ``run`` returns when it has."""
        if not self._stopping.is_set():
            log.info("worker_stopping", inflight=len(self._inflight))
        self._stopping.set()

    async def run(self) -> None:
        log.info("worker_started", concurrency=self.concurrency, reserved=self.reserved,
                 lanes=list(self.lanes or CLAIMED_QUEUES), caps=self.caps)  # fmt: skip
        if self.lanes is not None and not {"retry-1", "retry-2"} <= set(self.lanes):
            log.warning(
                "retry_lanes_not_served", lanes=list(self.lanes),
                why="notifications escalated to retry-1 or retry-2 wait for a worker "
                "that serves those lanes (--queues retry-1,retry-2, or no filter)",
            )  # fmt: skip
        flusher = self.loops.spawn("flusher", self._flush_loop)
        sweeper = self.loops.spawn("sweeper", self._sweep_loop)
        listener = self.loops.spawn("listener", self._listen_loop)
        try:
            await self.loops.run("claimer", self._claim_loop)
        finally:
            listener.cancel()
            if self._rushing is not None:
                await asyncio.gather(self._rushing, return_exceptions=True)
            await self._drain()
            sweeper.cancel()
            self._stopping.set()
            self._have_outcomes.set()
            await asyncio.gather(flusher, sweeper, listener, return_exceptions=True)
            await self._flush(give_up_after=1.0)
            self.attempts.journal.flush()
            metrics.holding(0)
            log.info("worker_stopped", delivered=self.delivered)

    async def _drain(self) -> None:
        """Let in-flight sends finish within the grace period, then release the rest."""
        if self._sends:
            self._quiet = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.shutdown_grace):
                    await self._quiet
            self._quiet = None
        senders = list(self._senders)
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        # What is still queued was never attempted: released below, like the cancelled.
        self._queue.clear()
        self._idle.clear()
        self._sends = 0
        for lease in self._leases.values():
            lease.close()
        self._leases.clear()
        await self._flush(give_up_after=max(1.0, self.settings.shutdown_grace))
        async with self._committing:  # no batch is half-written while we look
            attempted = {_key(o.claim) for o in self._outcomes}  # sent, but not recorded
            leftover = [c for key, c in self._inflight.items() if key not in attempted]
            if leftover:
                with contextlib.suppress(StoreUnavailable):
                    released = await self.store.release(leftover)
                    log.info("claims_released", count=released)

    # -- claiming -----------------------------------------------------------

    async def _claim_loop(self, live: Liveness) -> None:
        backoff = self.settings.poll_interval
        while not self._stopping.is_set():
            live.ok()
            free = self.concurrency - len(self._inflight) - self._asked
            if free <= 0:
                self._slot_free.clear()
                await self._wait(self._slot_free.wait())
                continue
            # Any priority may take the ordinary slots; the reserved ones only HIGH and
            # CRITICAL, so a batch of LOW never fills them.
            if free > self.reserved:
                min_priority, limit = Priority.LOW, free - self.reserved
            else:
                min_priority, limit = Priority.HIGH, free
            limit = min(limit, self.settings.claim_batch)
            lanes = self._open_lanes() if self._gates else self.lanes
            if lanes == ():  # every lane served is at its cap: a send ending frees one
                self._slot_free.clear()
                await self._wait(self._slot_free.wait())
                continue
            self._claiming, self._floor = True, min_priority
            self._asked += limit
            self._work.clear()  # the claim sees whatever was announced before it begins
            try:
                claims = await self.store.claim(
                    limit, self.settings.lease_seconds, min_priority, lanes
                )
            except StoreUnavailable as exc:
                failure: StoreUnavailable | None = exc
            else:
                failure = None
            finally:
                # Before the sends start: the flusher, woken first, hands its outcomes
                # to the store right after the next claim (see _flush_loop).
                self._claiming, self._floor = False, None
                self._asked -= limit
                self._claimed.set()
            if failure is not None:
                log.warning("claim_failed", error=str(failure), retry_in=round(backoff, 2))
                await self._wait(asyncio.sleep(backoff))
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = self.settings.poll_interval
            if not claims:
                # The store's announcements wake us, or the listener's poll (_listen_loop).
                idle: list[Awaitable[Any]] = [self._work.wait()]
                if min_priority is not Priority.LOW:
                    # Only reserved slots are free: a finished send frees an ordinary one.
                    self._slot_free.clear()
                    idle.append(self._slot_free.wait())
                await self._wait(*idle)
                continue
            self._take(claims)
            if len(claims) < limit:
                # The queue ran dry: give the event loop to the sends before polling again.
                await asyncio.sleep(0)

    async def _listen_loop(self, live: Liveness) -> None:
        """Hear the store announce work: it wakes an idle claim loop, or makes a rush.

        The one caller of ``wait_for_work``, from the start: PostgreSQL's
        listener connection opens with the first call, so a worker that starts
        on a backlog hears announcements while it drains it. A wait that ends
        at its timeout is the fallback poll: it wakes the claim loop, no rush.
        """
        poll = self.settings.poll_interval
        if self.store.notifies_work:  # it announces every process's writes; poll seldom
            poll = max(poll, self.settings.idle_poll_interval)
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            began = loop.time()
            await self.store.wait_for_work(poll)
            live.ok()
            self._work.set()
            if loop.time() - began < poll and self.store.notifies_work:
                self._rush()

    def _rush(self) -> None:
        """Claim HIGH and CRITICAL now, if a LOW claim that began before the
        announcement is on its way (it cannot see what was committed after).

        Only where claims run beside the writes (``notifies_work``): SQLite's
        one writer runs a claim after the writes queued before it, so the next
        claim sees them anyway. Measured on bench/backlog.py (PostgreSQL, split
        layout, 100,000 LOW): a CRITICAL waited for the LOW claim on its way
        and then rode the next one, 250 rows, round trips of 14 ms p50 and
        93 ms p99; POST->SENT p99 175 to 246 ms.
        """
        if self._rushing is not None:
            self._rush_again = True
        elif self._floor is Priority.LOW and not self._stopping.is_set():
            self._rushing = asyncio.get_running_loop().create_task(self._claim_urgent())

    async def _claim_urgent(self) -> None:
        """Claim HIGH+ into the slots the LOW claim on its way leaves free."""
        try:
            while self._floor is Priority.LOW and not self._stopping.is_set():
                self._rush_again = False
                free = self.concurrency - len(self._inflight) - self._asked
                limit = min(free, self.settings.claim_batch)
                if limit <= 0:
                    return
                lanes = self._open_lanes() if self._gates else self.lanes
                if lanes == ():
                    return
                self._asked += limit
                try:
                    claims = await self.store.claim(
                        limit, self.settings.lease_seconds, Priority.HIGH, lanes
                    )
                except StoreUnavailable:
                    return  # the claim loop meets the outage too, and backs off
                finally:
                    self._asked -= limit
                    # Slots it asked for and did not fill are free again: a claim loop
                    # that found none while it was on its way is waiting for them.
                    self._slot_free.set()
                self._take(claims)
                if not self._rush_again:
                    return
        finally:
            self._rushing = None

    def _open_lanes(self) -> tuple[str, ...] | None:
        """The lanes to claim from: those served, less the capped ones at their cap."""
        full = [lane for lane, held in self._held.items() if held >= self.caps[lane]]
        if not full:
            return self.lanes
        return tuple(lane for lane in (self.lanes or CLAIMED_QUEUES) if lane not in full)

    def _take(self, claims: list[Claim]) -> None:
        """Start sending what a claim brought, and count it."""
        if not claims:  # (a rush may bring none)
            return
        for claim in claims:
            self.start(claim)
        metrics.claimed(len(claims))
        metrics.holding(len(self._inflight))

    def start(self, claim: Claim) -> None:
        """Send ``claim``; its slot is held until its outcome commits."""
        self._inflight[claim.id, claim.token] = claim
        if self._gates and claim.queue in self._held:
            self._held[claim.queue] += 1
        lease = self._leases.get(claim.token)
        if lease is None:
            lease = self._leases[claim.token] = self._lease_for(claim)
        lease.left += 1
        self._sends += 1
        self._queue.append((claim, lease))
        if not self._spreading:
            self._spreading = True
            self._wake(1)
            asyncio.get_running_loop().call_soon(self._spread)

    def _spread(self) -> None:
        """Give each claim still queued a sender of its own.

        Scheduled right after the sender woken by ``start``: if it left claims
        in the queue, it is waiting on a send, and the claims behind it must
        not wait for that send to end.
        """
        self._spreading = False
        if self._queue:
            self._wake(len(self._queue))

    def _wake(self, senders: int) -> None:
        """Wake up to ``senders`` idle senders, then start new ones within the concurrency."""
        idle = self._idle
        while senders > 0 and idle:
            waiter = idle.pop()
            if not waiter.done():
                waiter.set_result(None)
                senders -= 1
        while senders > 0 and len(self._senders) < self.concurrency:
            sender = asyncio.get_running_loop().create_task(self._send_loop())
            self._senders.add(sender)
            senders -= 1

    async def _send_loop(self) -> None:
        """A sender: attempt queued claims one after the other, then wait for more."""
        sender = asyncio.current_task()
        assert sender is not None
        queue = self._queue
        idle = self._idle
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    claim, lease = queue.popleft()
                    try:
                        await self._deliver(claim, lease, sender)
                    except Exception:  # a bug of ours: the sender goes on with the others
                        log.exception("attempt_crashed", notification_id=claim.id)
                    finally:
                        self._ended(claim, lease)
                waiter = loop.create_future()
                idle.append(waiter)
                await waiter
        finally:
            self._senders.discard(sender)

    def _ended(self, claim: Claim, lease: Lease) -> None:
        """An attempt is over (or was abandoned at shutdown)."""
        if self._gates and claim.queue in self._held:
            self._held[claim.queue] -= 1
            self._slot_free.set()  # the lane may be claimed from again
        lease.left -= 1
        if not lease.left and not lease.expired:
            lease.close()
            self._leases.pop(claim.token, None)
        self._sends -= 1
        if not self._sends and self._quiet is not None and not self._quiet.done():
            self._quiet.set_result(None)

    def _lease_for(self, claim: Claim) -> Lease:
        """A batch's lease, with the timer that cuts its attempts at their deadline."""
        lease = Lease()
        remaining = claim.claimed_at + self.settings.attempt_seconds - self._clock()
        lease.timer = asyncio.get_running_loop().call_later(
            max(0.0, remaining), self._expire, claim.token, lease
        )
        return lease

    def _expire(self, token: str, lease: Lease) -> None:
        """A batch's deadline: cut its attempts still running; those not begun will not."""
        lease.expired = True
        if self._leases.get(token) is lease:
            del self._leases[token]
        for sender in lease.sending:
            lease.cut.add(sender)
            sender.cancel()

    async def _wait(self, *awaitables: Awaitable[Any]) -> None:
        """Wait for the first of ``awaitables``, or for stop(), whichever comes first."""
        futures = {asyncio.ensure_future(a) for a in (*awaitables, self._stopping.wait())}
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        for future in futures:
            if not future.done():
                future.cancel()

    # -- sending ------------------------------------------------------------

    async def _deliver(self, claim: Claim, lease: Lease, sender: asyncio.Task[None]) -> None:
        gate = self._gates.get(claim.queue) if self._gates else None
        if gate is None:
            outcome = await self.attempts.outcome(claim, lease, sender)
        else:  # a capped lane: wait for one of its sends to end (the lease goes on)
            async with gate:
                outcome = await self.attempts.outcome(claim, lease, sender)
        # The slot stays taken until the outcome is committed (see _flush): a claim
        # whose outcome is not yet recorded would be sent again after a crash, so
        # it counts against the in-flight bound like a send in progress.
        self._outcomes.append(outcome)
        if claim.priority >= Priority.HIGH:
            self._urgent.set()
        self._have_outcomes.set()

    # -- recording ----------------------------------------------------------

    async def _flush_loop(self, live: Liveness) -> None:
        while not (self._stopping.is_set() and not self._outcomes and not self._sends):
            if not self._outcomes:  # after a restart, outcomes may be waiting already
                await self._have_outcomes.wait()
            self._have_outcomes.clear()
            if self._claiming and not self._urgent.is_set():
                # A claim is on its way to the store: write these right behind the next
                # one, so that a store that commits writes in groups (SQLite) commits
                # both in one transaction, one fsync. Measured on the drain (100,000
                # notifications): 629 commits with a transaction each, 409 to 442 so.
                # A HIGH or CRITICAL outcome does not wait for the claim.
                self._claimed.clear()
                await self._wait(self._claimed.wait(), self._urgent.wait())
            await self._flush()
            live.ok()

    async def _flush(self, give_up_after: float | None = None) -> None:
        """Commit pending outcomes, retrying while the store is unavailable.

        With ``give_up_after`` (shutdown) it stops trying after that many
        seconds: the rows' leases expire and another worker sends them again.
        """
        backoff = 0.05
        deadline = None if give_up_after is None else time.monotonic() + give_up_after
        while True:
            # One batch at a time: a caller that finds nothing pending has waited for the
            # batch being committed, so at shutdown an outcome is either recorded or
            # pending, never taken for a claim that was not attempted (and released).
            async with self._committing:
                if not self._outcomes:
                    return
                batch, self._outcomes = self._outcomes, []
                self._urgent.clear()
                try:
                    await self.store.complete(batch)
                except Exception as exc:
                    # Keep them: the lease protects the rows until the store is back.
                    self._outcomes[:0] = batch
                    if isinstance(exc, StoreUnavailable):
                        log.warning("complete_failed", error=str(exc), pending=len(self._outcomes))
                    else:  # a store bug must not end the recording of every later outcome
                        log.exception("complete_crashed", pending=len(self._outcomes))
                else:
                    for outcome in batch:
                        self._inflight.pop(_key(outcome.claim), None)
                    self._slot_free.set()
                    self.delivered += sum(1 for o in batch if isinstance(o, Sent))
                    # Stale outcomes (their lease had expired) are counted too: the
                    # attempt happened, and the row is attempted again by its next claim.
                    metrics.recorded(batch)
                    metrics.holding(len(self._inflight))
                    continue
            if deadline is not None and time.monotonic() > deadline:
                log.error("outcomes_unrecorded", count=len(self._outcomes))
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _sweep_loop(self, live: Liveness) -> None:
        """Sweep expired leases, and tell the store this worker is alive (``herald_workers``)."""
        while True:
            try:
                swept = await self.store.sweep(self.policy.max_attempts)
            except StoreUnavailable as exc:  # the store's outage shows in health already
                log.warning("sweep_failed", error=str(exc))
            else:
                live.ok()
                if swept.expired:
                    log.warning("leases_expired", count=swept.expired)
                metrics.buried(swept.buried)
                with contextlib.suppress(StoreUnavailable):  # the next sweep says it again
                    await self.store.worker_seen(self.name)
            await asyncio.sleep(self.settings.sweep_interval)


def _key(claim: Claim) -> tuple[str, str]:
    return claim.id, claim.token

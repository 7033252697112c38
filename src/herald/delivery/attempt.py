"""One attempt at a claimed notification: through its channel's chain, within its lease.

``Attempts.outcome`` turns a claim into what is recorded for it: ``Sent``,
``Retry`` (the ladder's next step), ``Dead`` (the ladder is spent, or the error
is permanent) or ``Deferred`` (nothing could go out in time: no attempt spent).

An attempt never outlives its lease: it is cut at its budget's deadline
(``budget.py``), and becomes a retry, or a deferral if nothing went out,
recorded while the lease still protects the row. The claims of one batch
share a claim time and so a deadline: one timer per batch (``Lease``, armed by
the worker) cuts whichever of its attempts are still running.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Callable

import structlog

from ..budget import Budget
from ..config import Settings
from ..errors import (
    PermanentError,
    StoreUnavailable,
    Throttled,
    TransientError,
    UnregisteredRecipient,
)
from ..metrics import PROCESSING
from ..models import Claim, Dead, Deferred, Outcome, Retry, Sent, Suppressed
from ..providers.base import Message, Receipt
from ..providers.ssrf import mask_credentials
from ..retry import Policy
from ..unsubscribe import Links
from .chain import Chain
from .journal import Journal

#: When a notification whose attempt could not go out in time may be claimed again.
REQUEUE_AFTER = 1.0

log = structlog.get_logger("herald.worker")


class Attempts:
    def __init__(
        self,
        chains: dict[str, Chain],
        settings: Settings,
        policy: Policy,
        clock: Callable[[], float] = time.time,
        links: Links | None = None,
    ) -> None:
        """``links``: unsubscribe links for emails in unsubscribable categories (None: no
        List-Unsubscribe headers)."""
        self.chains = chains
        self.links = links
        self.settings = settings
        self.policy = policy
        self._clock = clock
        self._rng = random.Random()
        self._observers: dict[tuple[str, type[Outcome]], Callable[[float], None]] = {}
        self.journal = Journal()

    async def outcome(self, claim: Claim, lease: Lease, sender: asyncio.Task[None]) -> Outcome:
        """Attempt ``claim`` once; what came of it, ready to be recorded."""
        if claim.suppressed is not None:  # the recipient asked not to be sent to: no call
            self.journal.record(claim, "suppressed", None, 0.0, f"suppressed: {claim.suppressed}")
            return Suppressed(claim, claim.suppressed, self._clock())
        started = time.perf_counter()
        callback = self._callback_for(claim)
        budget = self.budget_for(claim)
        outcome: Outcome
        throttled_by: str | None = None  # the provider that had no capacity, for the journal
        try:
            if claim.unregistered:
                raise UnregisteredRecipient("the recipient was reported gone by a provider earlier")
            receipt = await self._attempt(claim, budget, lease, sender)
        except Cut:
            outcome = self._cut(claim, budget)
        except Throttled as exc:
            now = self._clock()
            outcome = Deferred(claim, str(exc), now + exc.wait, now, exc.cause)
            throttled_by = exc.provider
        except StoreUnavailable as exc:  # the pacer's bucket or a store-backed provider
            now = self._clock()
            reason = f"store unavailable: {exc}"
            outcome = Deferred(claim, reason, now + REQUEUE_AFTER, now, "store_unavailable")
        except PermanentError as exc:
            gone = isinstance(exc, UnregisteredRecipient)
            error = str(exc) or type(exc).__name__
            outcome = Dead(claim, exc.provider, error, True, self._clock(), gone, callback)
        except TransientError as exc:
            outcome = self._retry_or_bury(claim, exc.provider, str(exc), exc.retry_after)
        except Exception as exc:  # a provider bug must not lose the notification
            # Its text may quote the recipient, credentials and all: masked in the log
            # (traceback included) and in the error kept on the row.
            error = mask_credentials(f"{type(exc).__name__}: {exc}")
            trace = mask_credentials("".join(traceback.format_exception(exc)))
            log.error("provider_crashed", notification_id=claim.id, error=error, traceback=trace)
            outcome = self._retry_or_bury(claim, None, error, None)
        else:
            elapsed = (time.perf_counter() - started) * 1000
            outcome = Sent(
                claim, receipt.provider, receipt.message_id, elapsed, self._clock(), callback
            )
        # A cancellation (shutdown past the grace period) ends the sender above: the
        # claim is released.
        seconds = time.perf_counter() - started
        observe = self._observers.get((claim.channel.value, type(outcome)))
        if observe is None:
            observe = self._observer(claim.channel.value, type(outcome))
        observe(seconds)
        if isinstance(outcome, Sent):
            self.journal.record(claim, "sent", outcome.provider, seconds, None)
        elif isinstance(outcome, Deferred):
            self.journal.record(claim, "deferred", throttled_by, seconds, outcome.reason)
        else:
            assert isinstance(outcome, Retry | Dead)
            kind = "retry" if isinstance(outcome, Retry) else "dead"
            self.journal.record(claim, kind, outcome.provider, seconds, outcome.error)
        return outcome

    def _observer(self, channel: str, kind: type[Outcome]) -> Callable[[float], None]:
        """The processing-time histogram's series for a channel and an outcome, kept:
        finding it by its labels took longer than observing it."""
        observe = PROCESSING.labels(channel, kind.__name__.lower()).observe
        self._observers[channel, kind] = observe
        return observe

    def budget_for(self, claim: Claim) -> Budget:
        """The attempt's time: from the claim to its lease's end, less the recording margin."""
        total = self.settings.attempt_seconds
        return Budget(claim.claimed_at + total, total, claim.priority, self._clock)

    async def _attempt(
        self, claim: Claim, budget: Budget, lease: Lease, sender: asyncio.Task[None]
    ) -> Receipt:
        """``chain.send``, cut at the lease's deadline (raising ``Cut``).

        The cut is the batch's timer cancelling ``sender`` while it is in here:
        the way ``asyncio.timeout`` cuts, without a timer set and cancelled
        around every send (profiled on the drain, the timer took about 13% of the
        worker's 47 us per notification, about 6 us).
        """
        if lease.expired:
            raise Cut
        links = self.links
        message = Message(
            id=claim.id, tenant_id=claim.tenant_id, channel=claim.channel,
            recipient=claim.recipient, body=claim.body, subject=claim.subject,
            html=claim.html, metadata=claim.metadata, attempt=claim.attempts,
            # Only claims in an unsubscribable category pay for signing a link.
            headers=links.headers_for(claim) if claim.unsubscribable and links else (),
        )  # fmt: skip
        chain = self.chains[claim.channel.value]
        sending = lease.sending
        sending.add(sender)
        try:
            with budget:
                return await chain.send(message, budget)
        except asyncio.CancelledError:
            if lease.uncut(sender):  # the deadline's cancellation, and nobody else's
                raise Cut from None
            raise
        finally:
            sending.discard(sender)
            if lease.expired:  # cut as the send was ending: take the cancellation back
                lease.uncut(sender)

    def _cut(self, claim: Claim, budget: Budget) -> Outcome:
        """The lease's deadline came first: retry if a request may have gone out, else defer."""
        now = self._clock()
        if not budget.outgoing:
            log.info("attempt_deferred_at_deadline", notification_id=claim.id)
            reason = "no provider had capacity before the lease's deadline"
            return Deferred(claim, reason, now + REQUEUE_AFTER, now, "deadline")
        log.warning("attempt_cut", notification_id=claim.id, provider=budget.calling)
        error = f"the provider did not answer within the attempt's {budget.total:g}s"
        return self._retry_or_bury(claim, budget.calling, error, None)

    def _retry_or_bury(
        self, claim: Claim, provider: str | None, error: str, retry_after: float | None
    ) -> Outcome:
        now = self._clock()
        step = self.policy.next_step(
            claim.channel, claim.attempts, claim.max_retries, retry_after, self._rng
        )
        if step is None:
            return Dead(claim, provider, error, False, now, callback=self._callback_for(claim))
        return Retry(claim, provider, error, now + step.delay, step.stage, step.queue, now)

    def _callback_for(self, claim: Claim) -> str | None:
        """Where to report how ``claim`` ended; a callback itself reports nowhere."""
        if "callbackFor" in claim.metadata:
            return None
        return claim.callback_url or self.settings.callback_url


class Cut(Exception):
    """The attempt reached its budget's deadline."""


class Lease:
    """The claims of one claimed batch: one token, one claim time, so one deadline."""

    __slots__ = ("cut", "expired", "left", "sending", "timer")

    def __init__(self) -> None:
        self.left = 0  # claims of the batch not yet attempted to the end
        self.sending: set[asyncio.Task[None]] = set()  # senders inside one of its attempts
        self.cut: set[asyncio.Task[None]] = set()  # senders its deadline cancelled
        self.expired = False
        self.timer: asyncio.TimerHandle | None = None

    def uncut(self, sender: asyncio.Task[None]) -> bool:
        """Take back the deadline's cancellation of ``sender``: True if none other is left."""
        if sender not in self.cut:
            return False
        self.cut.discard(sender)
        return sender.uncancel() == 0

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

"""When to try a call again, and how long to wait first: pure decisions, no sleeping.

Herald answers ``429`` (a key's budget is spent) and ``503`` (the store cannot
commit, or load is being shed) with ``Retry-After``; nothing was done, so any
call may be sent again after that wait. A call whose answer was lost (a
connection reset, a timeout, a proxy's 502 or 504) may have been done, so it is
sent again only when that is safe: a read, an idempotent change, or a POST
carrying an ``Idempotency-Key``, which Herald answers from its first run.

The transports (``Herald``, ``AsyncHerald``) ask ``Tries`` after each attempt
and sleep the seconds it returns.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

import httpx

from .errors import ConnectionFailed

#: Statuses that mean "nothing was done; try again later".
REFUSED_FOR_NOW = frozenset({429, 503})
#: Statuses from a proxy in front of Herald: the request may or may not have reached it.
LOST_AT_PROXY = frozenset({502, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries at most (the first included); no wait longer than ``max_wait`` s.

    Without ``Retry-After`` the waits are ``backoff``, twice that, and so on, with up
    to 10 % jitter. A ``Retry-After`` beyond ``max_wait`` is not waited for: the
    error is raised at once, carrying ``retry_after``, for the caller to decide.
    """

    attempts: int = 4
    max_wait: float = 30.0
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not (math.isfinite(self.max_wait) and self.max_wait >= 0):
            raise ValueError("max_wait must be a finite number of seconds, at least 0")
        if not (math.isfinite(self.backoff) and self.backoff >= 0):
            raise ValueError("backoff must be a finite number of seconds, at least 0")

    def pause(self, tried: int, retry_after: float | None) -> float | None:
        """Seconds to wait after ``tried`` attempts, or None to stop trying."""
        if tried >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        wait = self.backoff * 2.0 ** (tried - 1)
        return min(self.max_wait, wait * (1 + random.uniform(0, 0.1)))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP date; None if unreadable."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is GMT whatever it says
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Tries:
    """The attempts of one logical call: each outcome in, the wait before the next out.

    ``resend_lost`` says whether a request whose answer was lost may be sent again
    (see the module's docstring); ``accept`` holds the statuses that are the
    call's answer (``health`` reads its 503). A keyed POST retried after a lost answer may
    find its first run still going: Herald answers that ``409`` (not replayed),
    and it is waited out like a ``503``.
    """

    def __init__(
        self, policy: RetryPolicy, *, resend_lost: bool, keyed: bool, accept: frozenset[int]
    ) -> None:
        self.policy = policy
        self.resend_lost = resend_lost
        self.keyed = keyed
        self.accept = accept
        self.tried = 0
        self.lost = False

    def after_answer(self, response: httpx.Response) -> float | None:
        """Seconds to wait before trying again, or None: the answer is final."""
        self.tried += 1
        status = response.status_code
        if status in self.accept:
            return None
        if status in REFUSED_FOR_NOW:
            return self.policy.pause(self.tried, retry_after(response.headers.get("retry-after")))
        if status in LOST_AT_PROXY and self.resend_lost:
            self.lost = True
            return self.policy.pause(self.tried, None)
        replayed = response.headers.get("idempotent-replayed") is not None
        if status == 409 and self.keyed and self.lost and not replayed:
            return self.policy.pause(self.tried, None)  # its first run is still going
        return None

    def after_error(self, error: httpx.TransportError) -> float:
        """Seconds to wait before trying again; raises ``ConnectionFailed`` if it must not."""
        self.tried += 1
        self.lost = self.lost or not _unsent(error)
        pause = self.policy.pause(self.tried, None) if self._may_resend(error) else None
        if pause is None:
            raise ConnectionFailed(f"{type(error).__name__}: {error}") from error
        return pause

    def _may_resend(self, error: httpx.TransportError) -> bool:
        return self.resend_lost or _unsent(error)


def _unsent(error: httpx.TransportError) -> bool:
    """A connection that never opened carried nothing: any call may go again."""
    return isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)

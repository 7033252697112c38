"""Herald's exceptions. The retry ladder decides by type, never by message.

::

    HeraldError
    ├── ConfigError            settings that cannot work; raised at start
    ├── RefusedDestination     the destination guard refused an address: nothing was sent
    ├── Overloaded             the backlog is too deep for this priority now (load shedding)
    ├── ReceiptRefused         an inbound provider receipt failed its check: nothing is applied
    │   └── ReceiptReplayed    a receipt already seen (same token, signature or message)
    ├── BadToken               an unsubscribe token that is malformed, oversized or not ours
    ├── DeliveryError          raised by a provider's ``send``
    │   ├── Throttled          no capacity in time (pacer, breaker, pool): nothing was sent
    │   ├── TransientError     a later attempt may succeed (may carry retry_after)
    │   └── PermanentError     no attempt will succeed (bad address, 5xx reply)
    │       └── UnregisteredRecipient  the device token or endpoint is gone for good
    └── StoreError
        ├── StoreUnavailable   the database cannot be reached or is locked
        ├── Unstorable         a value the database cannot hold (NUL in PostgreSQL text)
        └── NotFound           no such row for this tenant
"""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald raises on purpose."""


class ConfigError(HeraldError):
    pass


class RefusedDestination(HeraldError):
    """The destination is not public and not admitted, or has no address: nothing was sent.

    Raised by the destination guard where a socket would be opened. Its text says
    why, for the log; a provider tells its caller only ``withheld(host)``, so that
    errors do not map the private network for whoever asks.
    """


class Overloaded(HeraldError):
    """Shed: the backlog passed HERALD_SHED_BACKLOG and this work is not urgent enough."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ReceiptRefused(HeraldError):
    """An inbound receipt (a provider's delivery callback) is not to be believed or not
    readable: missing or bad signature, stale timestamp, malformed or oversized body.

    ``reason`` names what is wrong; the endpoint logs it and answers 401 with it (it says
    which check failed, never a secret).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ReceiptReplayed(ReceiptRefused):
    """The receipt checks out but was already taken once: a replay, or the provider's retry."""


class BadToken(HeraldError):
    """An unsubscribe link's token Herald did not sign (or cannot read): nothing is done.

    The text says why, for the log; the page answers 404 without it.
    """


class DeliveryError(HeraldError):
    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


class Throttled(DeliveryError):
    """Nothing went out: the provider had no capacity within the attempt's time.

    Raised by a pacer, an open or busy breaker, or a provider whose pool
    stayed full (SMTP). ``wait`` says how long to hold off; the worker puts
    the notification back without spending an attempt, and its history shows
    the message (``smtp circuit open after 10 consecutive failures; …``), so
    ``reason`` says which of these it was. ``cause`` is one of
    ``models.DEFER_CAUSES``, for the metrics.
    """

    def __init__(
        self, provider: str, wait: float, reason: str = "is rate limited",
        cause: str = "rate_limit",
    ) -> None:  # fmt: skip
        super().__init__(f"{provider} {reason}", provider=provider)
        self.wait = wait
        self.cause = cause


class TransientError(DeliveryError):
    """Retrying may help. ``retry_after`` (seconds) is the provider's own hint."""

    def __init__(
        self, message: str, *, provider: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Retrying cannot help: the notification goes straight to the DLQ."""


class UnregisteredRecipient(PermanentError):
    """The provider says the recipient no longer exists (FCM UNREGISTERED, APNs 410,
    Web Push 404/410, webhook 410): later sends to it are refused without a call."""


class StoreError(HeraldError):
    pass


class StoreUnavailable(StoreError):
    pass


class Unstorable(StoreError):
    """PostgreSQL text and JSON cannot contain the NUL character; the request is refused."""


class NotFound(StoreError):
    pass

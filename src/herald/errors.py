"""Herald's exceptions. The retry ladder decides by type, never by message.

::

    HeraldError
    ├── ConfigError            settings that cannot work; raised at start
    ├── Overloaded             the backlog is too deep for this priority now (load shedding)
    ├── DeliveryError          raised by a provider's ``send``
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


class Overloaded(HeraldError):
    """Shed: the backlog passed HERALD_SHED_BACKLOG and this work is not urgent enough."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryError(HeraldError):
    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        self.provider = provider


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

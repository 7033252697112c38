"""The provider contract: ``send`` returns a receipt or raises a typed error.

A provider speaks one real protocol (SMTP, an HTTP API). It never decides
about retries: it says whether a retry *could* help by raising
``TransientError`` (optionally with the provider's ``retry_after``) or
``PermanentError``, and the ladder decides. Providers are found by name in
``REGISTRY``; ``HERALD_<CHANNEL>_PROVIDERS`` lists names in failover order.

Usage::

    @register("pigeon")
    class Pigeon(Provider):
        name = "pigeon"
        channels = frozenset({Channel.CHAT})

        def __init__(self, settings: Settings, store: Store) -> None:
            self.settings = settings

        async def send(self, message: Message) -> Receipt:
            return Receipt(self.name, f"pigeon-{message.id}")
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..config import Settings
from ..models import Channel
from ..store.base import Store


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered notification, as a provider sees it.

    ``id`` is the notification id: providers that accept an idempotency key
    pass it, so a redelivery after a crash is recognised downstream.
    ``headers``: extra email headers, name and value (``List-Unsubscribe``),
    which providers of other channels ignore.
    """

    id: str
    tenant_id: str
    channel: Channel
    recipient: str
    body: str
    subject: str | None = None
    html: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attempt: int = 1
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Receipt:
    provider: str
    message_id: str


class Provider(abc.ABC):
    name: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]

    @abc.abstractmethod
    async def send(self, message: Message) -> Receipt: ...

    def accepts(self, recipient: str) -> bool:
        """Can this provider deliver to a recipient of this kind?

        Push providers share a channel but not token formats (an FCM token, an
        APNs token, a Web Push subscription): a chain skips a provider that
        cannot take the recipient rather than sending it somewhere useless.
        """
        return True

    def destination(self, recipient: str) -> str | None:
        """The receiver whose health a failure speaks of, when it is not the provider's.

        None (the default) means one breaker for the provider; a webhook
        provider answers the host, so one broken endpoint opens only its own.
        """
        return None

    async def close(self) -> None:  # noqa: B027 - most providers hold nothing to close
        """Release connections; called once at shutdown."""


ProviderFactory = Callable[[Settings, Store], Provider]
REGISTRY: dict[str, ProviderFactory] = {}


def register(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    def add(factory: ProviderFactory) -> ProviderFactory:
        REGISTRY[name] = factory
        return factory

    return add

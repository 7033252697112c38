"""Delivery providers, found by name, arranged in per-channel failover chains.

Importing this package registers every built-in provider. ``ProviderSet``
builds all chains at start, so a misnamed provider fails loudly then, and it
builds each named provider once: a provider that serves several channels
(capture, fault) shares one instance, and with it one connection pool.
"""

from __future__ import annotations

import structlog

from ..config import Settings
from ..errors import ConfigError
from ..models import Channel
from ..store.base import Store
from . import apns, capture, chat, fault, fcm, smtp, twilio, webhook, webpush
from .base import REGISTRY, Message, Provider, Receipt, register

__all__ = [
    "REGISTRY",
    "Message",
    "Provider",
    "ProviderSet",
    "Receipt",
    "apns",
    "build_chain",
    "capture",
    "chat",
    "fault",
    "fcm",
    "register",
    "smtp",
    "twilio",
    "webhook",
    "webpush",
]

log = structlog.get_logger("herald.providers")


def build_chain(
    settings: Settings,
    store: Store,
    channel: Channel,
    built: dict[str, Provider] | None = None,
) -> list[Provider]:
    """Instantiate the channel's providers in failover order.

    Pass the same ``built`` dict for every channel to share one instance per name.
    """
    built = {} if built is None else built
    variable = f"HERALD_{channel.value}_PROVIDERS"
    chain: list[Provider] = []
    for name in settings.providers_for(channel):
        if name not in REGISTRY:
            known = ", ".join(sorted(REGISTRY))
            raise ConfigError(f"{variable}: unknown provider {name!r} (known: {known})")
        provider = built.get(name)
        if provider is None:
            provider = built[name] = REGISTRY[name](settings, store)
        if channel not in provider.channels:
            raise ConfigError(f"{variable}: provider {name!r} does not deliver {channel.value}")
        chain.append(provider)
    return chain


class ProviderSet:
    """Every channel's chain, built once at start and closed once at shutdown."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._built: dict[str, Provider] = {}
        self._chains = {
            channel: build_chain(settings, store, channel, self._built) for channel in Channel
        }

    def chain(self, channel: Channel) -> list[Provider]:
        return self._chains[channel]

    @property
    def built(self) -> dict[str, Provider]:
        """Every provider instance, by name (each is shared by the chains that name it)."""
        return dict(self._built)

    async def close(self) -> None:
        for name, provider in self._built.items():
            try:
                await provider.close()
            except Exception:
                log.warning("provider_close_failed", provider=name, exc_info=True)

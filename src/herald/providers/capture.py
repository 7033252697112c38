"""The dev mailbox: keeps messages in the store instead of sending them.

It is the default when no real provider is configured, so a fresh install
"delivers" everything and the result can be read back through the API.
"""

from __future__ import annotations

import time

from ..config import Settings
from ..errors import StoreError, TransientError
from ..models import Channel, MailboxMessage, new_id
from ..store.base import Store
from .base import Message, Provider, Receipt, register


@register("capture")
class CaptureProvider(Provider):
    name = "capture"
    channels = frozenset(Channel)

    def __init__(self, settings: Settings, store: Store) -> None:
        self._store = store

    async def send(self, message: Message) -> Receipt:
        at = time.time()
        kept = MailboxMessage(
            id=new_id(at),
            notification_id=message.id,
            tenant_id=message.tenant_id,
            channel=message.channel,
            recipient=message.recipient,
            subject=message.subject,
            body=message.body,
            html=message.html,
            at=at,
        )
        try:
            await self._store.capture(kept)
        except StoreError as exc:
            # The ladder decides by DeliveryError type: a busy database is worth a retry.
            raise TransientError(f"cannot keep the message: {exc}", provider=self.name) from exc
        return Receipt(self.name, f"capture-{kept.id}")

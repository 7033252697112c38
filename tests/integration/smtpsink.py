"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives and counts
connections and mail transactions, so a test can tell that Herald sent nothing."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import free_port


class Sink:
    """Keeps every message; counts the mail transactions begun (MAIL FROM)."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.transactions = 0

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.transactions += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(cast(EmailMessage, parsed))
        return "250 OK"


class Server(Controller):
    """A threaded aiosmtpd server that counts the connections it accepts."""

    def __init__(self, sink: Sink) -> None:
        super().__init__(sink, hostname="127.0.0.1", port=free_port())
        self.sink = sink
        self.connections = 0

    def factory(self) -> SMTP:
        self.connections += 1
        return cast(SMTP, super().factory())

    def start(self) -> None:
        super().start()
        self.connections = 0  # the controller's own readiness probe


async def settled(smtp: Server) -> None:
    """Let the sink's thread finish the transaction the provider saw answered."""
    deadline = asyncio.get_running_loop().time() + 5
    while smtp.sink.transactions != len(smtp.sink.messages):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)

"""The SMTP provider against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from herald.budget import Budget
from herald.config import Settings
from herald.errors import ConfigError, PermanentError, Throttled, TransientError
from herald.models import Channel, Priority, new_id
from herald.providers.base import Message, Receipt
from herald.providers.mime import Composer
from herald.providers.smtp import SMTPProvider
from herald.store.base import Store

USER, PASSWORD = "herald", "s3cret"
#: aiosmtpd warns when AUTH is allowed without TLS; the plain-text tests mean it.
plain_auth = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    """An aiosmtpd handler that keeps every message and counts QUITs."""

    def __init__(self) -> None:
        self.received: list[Envelope] = []
        self.quits = 0
        self.mechanisms: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 2.0.0 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.quits += 1
        return "221 Bye"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.mechanisms.append(mechanism)
        good = LoginPassword(USER.encode(), PASSWORD.encode())
        return AuthResult(success=data == good, handled=False)

    def parsed(self, index: int = -1) -> EmailMessage:
        content = self.received[index].original_content
        assert content is not None
        content = content.replace(b"\r\n", b"\n")  # the wire's line ends, not the text's
        return cast(EmailMessage, email.message_from_bytes(content, policy=email.policy.default))


class RefuseOnce(Recorder):
    """Answers ``reply`` once at ``stage`` (MAIL, RCPT or DATA), then accepts."""

    def __init__(self, stage: str, reply: str) -> None:
        super().__init__()
        self.stage, self.reply = stage, reply

    def _refuse(self, stage: str) -> bool:
        if self.stage != stage:
            return False
        self.stage = ""
        return True

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._refuse("MAIL"):
            return self.reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._refuse("RCPT"):
            return self.reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self._refuse("DATA"):
            return self.reply
        return await super().handle_DATA(server, session, envelope)


class HangUpAfterData(Recorder):
    """Closes every connection right after accepting its message."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert server.transport is not None
        server.loop.call_soon(server.transport.close)
        return await super().handle_DATA(server, session, envelope)


class HangUpOnReuse(Recorder):
    """Drops a connection, without a reply, when it starts a second message.

    This is an idle session the server has forgotten: the client only learns
    it is dead when its next MAIL FROM goes unanswered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.used: set[int] = set()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if id(server) in self.used:
            assert server.transport is not None
            server.transport.close()
            return "421 gone"
        self.used.add(id(server))
        envelope.mail_from = address
        return "250 OK"


class Gate(Recorder):
    """Holds every DATA until ``opened`` is set: a server slow to accept mail."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.opened = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.holding.set()
        await asyncio.to_thread(self.opened.wait, 10)
        return await super().handle_DATA(server, session, envelope)


class Server(Controller):
    """A threaded aiosmtpd server that counts the connections it accepts."""

    def __init__(self, handler: Recorder, **kwargs: Any) -> None:
        super().__init__(handler, hostname="127.0.0.1", port=free_port(), **kwargs)
        self.recorder = handler
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session = cast(SMTP, super().factory())
        self.sessions.append(session)
        return session

    def start(self) -> None:
        super().start()
        self.sessions.clear()  # the controller's own readiness probe

    @property
    def connections(self) -> int:
        return len(self.sessions)


ServerFactory = Callable[..., Server]
ProviderFactory = Callable[..., SMTPProvider]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    started: list[Server] = []

    def start(handler: Recorder | None = None, **kwargs: Any) -> Server:
        server = Server(handler or Recorder(), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[ProviderFactory]:
    made: list[SMTPProvider] = []

    def make(port: int, **overrides: Any) -> SMTPProvider:
        options: dict[str, Any] = {
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "smtp_from": "Herald <noreply@example.com>",
            "smtp_user": None,
            "smtp_password": None,
            "smtp_timeout": 5.0,
            "smtp_pool_size": 4,
            **overrides,
        }
        made.append(SMTPProvider(Settings(**options), cast(Store, None)))
        return made[-1]

    yield make
    for smtp in made:
        await smtp.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def mail(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.EMAIL,
        "recipient": "ada@example.com",
        "subject": "Hello",
        "body": "Your code is 1234.",
        **fields,
    }
    return Message(**values)


async def test_message_arrives_with_headers_and_body(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    message = mail(subject="Grüße ✓", body="plain text here")

    receipt = await provider(server.port).send(message)

    assert receipt.provider == "smtp"
    [envelope] = server.recorder.received
    assert envelope.mail_from == "noreply@example.com"
    assert envelope.rcpt_tos == ["ada@example.com"]
    parsed = server.recorder.parsed()
    assert parsed["From"] == "Herald <noreply@example.com>"
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Grüße ✓"
    assert parsed["Message-ID"] == receipt.message_id
    assert receipt.message_id.endswith("@example.com>")
    assert parsed["X-Herald-Notification-Id"] == message.id
    assert parsed["Date"] is not None
    assert not parsed.is_multipart()
    assert parsed.get_content().rstrip("\n") == "plain text here"


async def test_html_alternative(serve: ServerFactory, provider: ProviderFactory) -> None:
    server = serve()

    await provider(server.port).send(mail(body="plain", html="<p>rich</p>"))

    parsed = server.recorder.parsed()
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert cast(EmailMessage, plain).get_content().rstrip("\n") == "plain"
    assert cast(EmailMessage, html).get_content().rstrip("\n") == "<p>rich</p>"


async def test_concurrent_sends_share_a_bounded_pool(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    smtp = provider(server.port, smtp_pool_size=4)

    receipts = await asyncio.gather(*(smtp.send(mail(body=f"n{i}")) for i in range(200)))

    assert len(server.recorder.received) == 200
    assert len({r.message_id for r in receipts}) == 200
    assert 1 <= server.connections <= 4
    await smtp.close()
    assert server.recorder.quits == server.connections


async def test_sequential_sends_reuse_one_connection(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    smtp = provider(server.port)

    for _ in range(5):
        await smtp.send(mail())

    assert len(server.recorder.received) == 5
    assert server.connections == 1


async def test_starttls(
    serve: ServerFactory, provider: ProviderFactory, server_tls: ssl.SSLContext, ca_file: str
) -> None:
    server = serve(tls_context=server_tls, require_starttls=True)

    await provider(server.port, smtp_tls="starttls", smtp_ca_file=ca_file).send(mail())

    [session] = server.sessions
    assert session.session is not None and session.session.ssl is not None
    assert len(server.recorder.received) == 1


async def test_implicit_tls(
    serve: ServerFactory, provider: ProviderFactory, server_tls: ssl.SSLContext, ca_file: str
) -> None:
    server = serve(ssl_context=server_tls)

    await provider(server.port, smtp_tls="tls", smtp_ca_file=ca_file).send(mail())

    assert len(server.recorder.received) == 1


@pytest.mark.parametrize("mode", ["starttls", "tls"])
async def test_untrusted_certificate_is_transient(
    serve: ServerFactory, provider: ProviderFactory, server_tls: ssl.SSLContext, mode: str
) -> None:
    tls = {"tls_context": server_tls} if mode == "starttls" else {"ssl_context": server_tls}
    server = serve(**tls)

    with pytest.raises(TransientError, match="certificate"):
        await provider(server.port, smtp_tls=mode).send(mail())

    assert server.recorder.received == []


async def test_verification_can_be_disabled(
    serve: ServerFactory, provider: ProviderFactory, server_tls: ssl.SSLContext
) -> None:
    server = serve(ssl_context=server_tls)

    await provider(server.port, smtp_tls="tls", smtp_verify_tls=False).send(mail())

    assert len(server.recorder.received) == 1


@plain_auth
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_auth(serve: ServerFactory, provider: ProviderFactory, mechanism: str) -> None:
    recorder = Recorder()
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    server = serve(
        recorder,
        authenticator=recorder.authenticate,
        auth_required=True,
        auth_require_tls=False,
        auth_exclude_mechanism=[other],
    )

    await provider(server.port, smtp_user=USER, smtp_password=PASSWORD).send(mail())

    assert recorder.mechanisms == [mechanism]
    assert len(recorder.received) == 1


async def test_auth_over_starttls(
    serve: ServerFactory, provider: ProviderFactory, server_tls: ssl.SSLContext, ca_file: str
) -> None:
    recorder = Recorder()
    server = serve(
        recorder, tls_context=server_tls, authenticator=recorder.authenticate, auth_required=True
    )
    smtp = provider(
        server.port,
        smtp_tls="starttls",
        smtp_ca_file=ca_file,
        smtp_user=USER,
        smtp_password=PASSWORD,
    )

    await smtp.send(mail())

    assert len(recorder.received) == 1


@plain_auth
async def test_wrong_password_is_transient(serve: ServerFactory, provider: ProviderFactory) -> None:
    recorder = Recorder()
    server = serve(
        recorder, authenticator=recorder.authenticate, auth_required=True, auth_require_tls=False
    )
    smtp = provider(server.port, smtp_user=USER, smtp_password="wrong")

    with pytest.raises(TransientError, match=r"535.*HERALD_SMTP_PASSWORD"):
        await smtp.send(mail())

    assert recorder.received == []


@pytest.mark.parametrize(
    ("stage", "reply", "error"),
    [
        ("RCPT", "550 5.1.1 no such user", PermanentError),
        ("RCPT", "451 4.3.0 try again later", TransientError),
        ("MAIL", "553 5.7.1 sender not allowed", PermanentError),
        ("MAIL", "452 4.3.1 insufficient storage", TransientError),
        ("DATA", "554 5.6.0 content rejected", PermanentError),
        ("DATA", "451 4.7.1 greylisted", TransientError),
    ],
)
async def test_refusals_are_classified_and_the_connection_reused(
    serve: ServerFactory,
    provider: ProviderFactory,
    stage: str,
    reply: str,
    error: type[Exception],
) -> None:
    server = serve(RefuseOnce(stage, reply))
    smtp = provider(server.port)

    with pytest.raises(error) as caught:
        await smtp.send(mail())
    assert reply in str(caught.value)
    assert stage in str(caught.value)

    await smtp.send(mail(recipient="grace@example.com"))

    [envelope] = server.recorder.received
    assert envelope.rcpt_tos == ["grace@example.com"]
    assert server.connections == 1


async def test_nothing_listening_is_transient(provider: ProviderFactory) -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        await provider(free_port()).send(mail())


async def test_silent_server_times_out_as_transient(provider: ProviderFactory) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        smtp = provider(silent.getsockname()[1], smtp_timeout=0.2)

        with pytest.raises(TransientError, match="cannot connect"):
            await smtp.send(mail())


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "Hi\nBcc: victim@example.com"},
        {"recipient": "ada@example.com\r\nBcc: victim@example.com"},
        {"recipient": "ada@example.com\rBcc: victim@example.com"},
    ],
)
async def test_header_injection_is_refused_before_sending(
    serve: ServerFactory, provider: ProviderFactory, fields: dict[str, str]
) -> None:
    server = serve()

    with pytest.raises(PermanentError, match="line break"):
        await provider(server.port).send(mail(**fields))

    assert server.connections == 0
    assert server.recorder.received == []


async def test_connection_closed_between_messages_is_survived(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve(HangUpAfterData())
    smtp = provider(server.port)

    for _ in range(3):
        await smtp.send(mail())

    assert len(server.recorder.received) == 3
    assert server.connections == 3


async def test_dead_idle_connection_is_replaced(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve(HangUpOnReuse())
    smtp = provider(server.port)

    for _ in range(3):
        await smtp.send(mail())

    assert len(server.recorder.received) == 3
    assert server.connections == 3


async def test_close_quits_idle_connections(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    smtp = provider(server.port)
    await asyncio.gather(smtp.send(mail()), smtp.send(mail()))

    await smtp.close()

    assert server.recorder.quits == server.connections == 2
    with pytest.raises(TransientError, match="closed"):
        await smtp.send(mail())


def notification_ids(recorder: Recorder) -> list[str]:
    return [recorder.parsed(i)["X-Herald-Notification-Id"] for i in range(len(recorder.received))]


async def test_a_message_is_composed_only_once_a_session_is_free(
    serve: ServerFactory, provider: ProviderFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate()
    server = serve(gate)
    smtp = provider(server.port, smtp_pool_size=1)
    composed: list[str] = []
    compose = Composer.compose

    def spy(self: Composer, notification_id: str, *args: Any) -> Any:
        composed.append(notification_id)
        return compose(self, notification_id, *args)

    monkeypatch.setattr(Composer, "compose", spy)
    first, second = mail(), mail()
    sends = [asyncio.create_task(smtp.send(first)), asyncio.create_task(smtp.send(second))]
    assert await asyncio.to_thread(gate.holding.wait, 5)

    assert composed == [first.id], "the second waits for the session before it is built"
    gate.opened.set()
    await asyncio.gather(*sends)
    assert composed == [first.id, second.id]
    assert notification_ids(gate) == [first.id, second.id]


async def test_waiting_for_a_session_gives_up_at_half_the_lease(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    gate = Gate()
    server = serve(gate)
    # Outside an attempt (no budget), half the lease; the timeout must fit in one.
    smtp = provider(server.port, smtp_pool_size=1, lease_seconds=0.6, smtp_timeout=0.5)
    first = mail()
    held = asyncio.create_task(smtp.send(first))
    assert await asyncio.to_thread(gate.holding.wait, 5)

    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        await smtp.send(mail())
    waited = time.monotonic() - started

    assert 0.25 <= waited < 1.0, "about half of the 0.6 s lease"
    assert caught.value.provider == "smtp"
    gate.opened.set()
    await held
    later = mail()
    await smtp.send(later)  # the slot it waited for was not lost
    assert notification_ids(gate) == [first.id, later.id]
    assert server.connections == 1


async def test_a_critical_email_is_next_for_a_session_however_many_low_ones_wait(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    gate = Gate()
    server = serve(gate)
    smtp = provider(server.port, smtp_pool_size=1)

    def send(message: Message, priority: Priority) -> asyncio.Task[Receipt]:
        with Budget.lasting(10, priority).applied():  # the task inherits the budget
            return asyncio.create_task(smtp.send(message))

    held = send(mail(), Priority.LOW)
    assert await asyncio.to_thread(gate.holding.wait, 5)
    lows = [mail() for _ in range(5)]
    waiting = [send(m, Priority.LOW) for m in lows]
    await asyncio.sleep(0.05)  # all five wait for the only session
    critical = mail()
    waiting.append(send(critical, Priority.CRITICAL))
    await asyncio.sleep(0.05)
    gate.opened.set()
    await asyncio.gather(held, *waiting)

    order = notification_ids(gate)
    assert order[1] == critical.id, "the CRITICAL email waited behind the LOW ones"
    assert order[2:] == [m.id for m in lows], "LOW in arrival order"


async def test_with_a_budget_the_session_wait_ends_at_its_wait_limit(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    gate = Gate()
    server = serve(gate)
    smtp = provider(server.port, smtp_pool_size=1)  # half a 60 s lease without a budget
    held = asyncio.create_task(smtp.send(mail()))
    assert await asyncio.to_thread(gate.holding.wait, 5)
    started = time.monotonic()
    with Budget.lasting(0.6).applied(), pytest.raises(Throttled):
        await smtp.send(mail())
    assert 0.25 <= time.monotonic() - started < 1.0, "half the budget is for waiting"
    gate.opened.set()
    await held


async def test_non_ascii_text_arrives_intact_and_seven_bit(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    body = "Grüße aus Köln ✓\n.\n..two dots\nfin"
    html = "<p>Ваш заказ отправлен ✓</p>"

    await provider(server.port).send(mail(subject="Grüße ✓ 注文", body=body, html=html))

    [envelope] = server.recorder.received
    assert envelope.original_content is not None and envelope.original_content.isascii()
    parsed = server.recorder.parsed()
    assert parsed["Subject"] == "Grüße ✓ 注文"
    plain = cast(EmailMessage, parsed.get_body(("plain",)))
    rich = cast(EmailMessage, parsed.get_body(("html",)))
    # Base64 carries the text's canonical CRLF line ends inside the encoding.
    assert plain.get_content().replace("\r\n", "\n") == body + "\n"
    assert rich.get_content().replace("\r\n", "\n") == html + "\n"


async def test_recipient_with_a_display_name_goes_through_aiosmtplib(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()

    await provider(server.port).send(mail(recipient="Zoë <zoe@example.com>"))

    [envelope] = server.recorder.received
    assert envelope.rcpt_tos == ["zoe@example.com"]
    assert server.recorder.parsed()["To"] == "Zoë <zoe@example.com>"


async def test_a_refused_address_resets_the_session_for_the_next_message(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    server = serve()
    smtp = provider(server.port)

    with pytest.raises(PermanentError, match="address refused"):
        await smtp.send(mail(recipient="not an@example.com"))
    await smtp.send(mail())

    [envelope] = server.recorder.received
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert server.connections == 1


async def test_an_international_mailbox_needs_smtputf8(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    plain = serve(enable_SMTPUTF8=False)  # the Controller turns it on by default
    with pytest.raises(PermanentError, match="SMTPUTF8"):
        await provider(plain.port).send(mail(recipient="zoë@example.com"))
    assert plain.recorder.received == []

    utf8 = serve()
    await provider(utf8.port).send(mail(recipient="zoë@example.com"))

    [envelope] = utf8.recorder.received
    assert envelope.rcpt_tos == ["zoë@example.com"]
    assert "SMTPUTF8" in envelope.mail_options


async def test_an_international_domain_goes_as_punycode_without_smtputf8(
    serve: ServerFactory, provider: ProviderFactory
) -> None:
    plain = serve(enable_SMTPUTF8=False)
    await provider(plain.port).send(mail(recipient="ada@münchen.de"))

    [envelope] = plain.recorder.received
    assert envelope.rcpt_tos == ["ada@xn--mnchen-3ya.de"]
    assert "SMTPUTF8" not in envelope.mail_options
    assert plain.recorder.parsed()["To"] == "ada@xn--mnchen-3ya.de"


def test_a_sender_that_cannot_be_used_fails_at_start(provider: ProviderFactory) -> None:
    for sender in ("Herald <no reply@example.com>", "@@@", "Herald <herald@>"):
        with pytest.raises(ValueError, match=r"expected an address such as noreply@example\.com"):
            provider(free_port(), smtp_from=sender)  # refused by the settings, before any send


def test_smtp_without_a_host_fails_at_start(provider: ProviderFactory) -> None:
    with pytest.raises(ConfigError, match="names smtp, which needs HERALD_SMTP_HOST"):
        provider(free_port(), smtp_host=None)  # never a silent localhost:587


async def test_a_notification_that_cannot_get_a_session_in_time_goes_back_unspent(
    serve: ServerFactory, herald: Any
) -> None:
    gate = Gate()
    server = serve(gate)
    settings = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_tls": "none",
        "smtp_pool_size": 1,
        "lease_seconds": 2.0,  # a send gives up waiting for the session about 1 s in
        "smtp_timeout": 1.0,
    }
    async with herald(**settings) as h:
        ids = []
        for n in range(2):
            body = {
                "type": "EMAIL",
                "recipient": f"u{n}@example.com",
                "subject": "s",
                "message": "m",
            }
            reply = await h.client.post("/api/notifications", json=body)
            ids.append(reply.json()["data"]["_id"])
            if n == 0:  # the first holds the only session
                assert await asyncio.to_thread(gate.holding.wait, 5)

        deadline = time.monotonic() + 5
        while True:
            detail = (await h.client.get(f"/api/notifications/{ids[1]}")).json()["data"]
            deferred = [log for log in detail["logs"] if log["message"].startswith("Not attempted")]
            if deferred or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        gate.opened.set()
        done = [await h.wait_status(i, "SENT") for i in ids]

    assert deferred, detail["logs"]
    assert [d["notification"]["attempts"] for d in done] == [1, 1], "no attempt was spent"
    assert sorted(notification_ids(gate)) == sorted(ids), "each sent once"

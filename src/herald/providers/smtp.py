"""Email over SMTP, through a small pool of long-lived connections.

Opening an SMTP session costs a TCP (and often TLS) handshake, EHLO and AUTH:
several round trips before the first byte of mail. The pool opens up to
``HERALD_SMTP_POOL_SIZE`` sessions lazily and reuses them, so a busy worker
pays that price once per connection rather than once per message.

A send holds one of the pool's slots from before the message is composed
(mime.py) until the transaction ends, so a worker with a thousand claims in
flight keeps only a pool's worth of messages in memory. Slots go to waiters by
priority (a CRITICAL email is next, however many LOW ones wait), and waiting
is bounded by the attempt's budget (``budget.py``; half the lease without
one): past that the provider raises ``Throttled`` and the notification goes
back to the queue rather than being sent after its lease has run out, and by
another worker too.

Errors are classified for the retry ladder: a 5xx reply to the transaction
means the message itself will never be accepted (``PermanentError``);
everything else (4xx replies, network and TLS failures, a refused login) is
``TransientError``. A failed login is an operator's mistake, not the
recipient's, so it must not send mail to the DLQ before anyone can fix it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from email.utils import parseaddr

import aiosmtplib
import structlog
from aiosmtplib.email import quote_address

from .. import budget
from ..config import Settings
from ..errors import ConfigError, PermanentError, Throttled, TransientError
from ..models import Channel, Priority
from ..store.base import Store
from .base import Message, Provider, Receipt, register
from .mime import Composed, Composer, ascii_domain

log = structlog.get_logger("herald.providers.smtp")

#: The reply aiosmtplib closes the connection on; a server that timed out an
#: idle session may still have it buffered for our next command.
_CLOSING = 421
#: RFC 5321's Mailbox in its common form: a Dot-string local part and a domain name.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PLAIN_MAILBOX = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
#: When a notification that gave up waiting for a session may be claimed again.
_REQUEUE_AFTER = 1.0


class _Stale(Exception):
    """A pooled connection turned out to be dead: try once more on a fresh one.

    Servers drop idle sessions without notice, and the client only finds out
    on its next command, so this is the ordinary way an idle connection ends.
    (If the drop came after the server took DATA but before it replied, the
    retry duplicates the mail, as the retry ladder would.)
    """


@register("smtp")
class SMTPProvider(Provider):
    name = "smtp"
    channels = frozenset({Channel.EMAIL})

    def __init__(self, settings: Settings, store: Store) -> None:
        if not settings.smtp_host:
            # Never a silent localhost:587: a relay nobody named is not a relay to trust.
            raise ConfigError(
                "HERALD_EMAIL_PROVIDERS names smtp, which needs HERALD_SMTP_HOST (the relay)"
            )
        self.settings = settings
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._sender = parseaddr(settings.smtp_from)[1] or settings.smtp_from
        try:
            # The sender never changes: checked and quoted once, not per MAIL FROM.
            self._mail_from = b"FROM:" + quote_address(self._sender).encode("utf-8")
        except ValueError as exc:
            raise ConfigError(f"HERALD_SMTP_FROM: {exc}") from exc
        self._composer = Composer(settings.smtp_from)
        self._tls_context = _tls_context(settings) if settings.smtp_tls != "none" else None
        self._slots = budget.Lanes(settings.smtp_pool_size)
        self._slot_wait = settings.lease_seconds / 2  # for a send made outside an attempt
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False

    async def send(self, message: Message) -> Receipt:
        for field, value in (("recipient", message.recipient), ("subject", message.subject)):
            if value and ("\r" in value or "\n" in value):
                raise PermanentError(
                    f"{field} contains a line break (header injection refused)", provider=self.name
                )
        try:
            recipient = ascii_domain(message.recipient)
        except ValueError as exc:
            raise PermanentError(f"cannot encode the address: {exc}", provider=self.name) from exc
        await self._take_slot()
        try:
            if self._closed:
                raise TransientError("smtp provider is closed", provider=self.name)
            # Composed only now, with a session in hand: a worker holding a thousand
            # claims keeps a pool's worth of messages in memory, not a thousand.
            try:
                composed = self._composer.compose(
                    message.id, recipient, message.subject, message.body, message.html,
                    message.headers,
                )  # fmt: skip
            except ValueError as exc:
                raise PermanentError(f"cannot build the email: {exc}", provider=self.name) from exc
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_connected:
                    continue
                try:
                    await self._transact(conn, composed, recipient, reused=True)
                except _Stale:
                    log.info("smtp_connection_stale", host=self._host, port=self._port)
                    continue
                return Receipt(self.name, composed.message_id)
            conn = await self._connect()
            await self._transact(conn, composed, recipient, reused=False)
            return Receipt(self.name, composed.message_id)
        finally:
            self._slots.release()

    async def _take_slot(self) -> None:
        """Wait for one of the pool's sessions, but not past the attempt's wait limit.

        A worker claims far more notifications than the pool has sessions, and
        a slow server can keep them queued here for minutes. One still waiting
        when its lease runs out is handed to another worker by the sweeper and
        sent by both; so, like the pacer, give up at the budget's wait limit
        and raise ``Throttled``: the chain tries the next provider, and failing
        that the worker puts the notification back without spending an attempt.
        """
        attempt = budget.current()
        wait = self._slot_wait if attempt is None else attempt.wait_limit()
        priority = Priority.MEDIUM if attempt is None else attempt.priority
        try:
            async with asyncio.timeout(wait):
                await self._slots.acquire(priority)
        except TimeoutError:
            log.info("smtp_pool_busy", host=self._host, port=self._port, waited=round(wait, 3))
            raise Throttled(
                self.name, _REQUEUE_AFTER, "had no free session", "provider_busy"
            ) from None

    async def close(self) -> None:
        """QUIT idle sessions; sessions still sending QUIT when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(conn) for conn in idle))
        log.info("smtp_closed", host=self._host, port=self._port, connections=len(idle))

    async def _connect(self) -> aiosmtplib.SMTP:
        mode = self.settings.smtp_tls
        conn = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            username=self.settings.smtp_user or None,
            password=self.settings.smtp_password,
            timeout=self.settings.smtp_timeout,
            use_tls=mode == "tls",
            start_tls=mode == "starttls",
            tls_context=self._tls_context,
        )
        where = f"{self._host}:{self._port}"
        try:
            await conn.connect()
            await _greet(conn)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise TransientError(
                f"SMTP login to {where} refused: {exc.code} {exc.message} "
                "(check HERALD_SMTP_USER and HERALD_SMTP_PASSWORD)",
                provider=self.name,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise TransientError(
                f"SMTP server {where} refused the session: {exc.code} {exc.message}",
                provider=self.name,
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"cannot connect to SMTP server {where} ({mode}): {_describe(exc)}",
                provider=self.name,
            ) from exc
        log.info("smtp_connected", host=self._host, port=self._port, tls=mode)
        return conn

    async def _transact(
        self, conn: aiosmtplib.SMTP, composed: Composed, recipient: str, *, reused: bool
    ) -> None:
        """Run one mail transaction and give the connection back, or drop it.

        A refused command is followed by RSET (``_mail``), so a connection that
        is still up after a reply error is clean and goes back to the pool.
        """
        keep = False
        try:
            await self._mail(conn, composed, recipient)
            keep = True
        except aiosmtplib.SMTPResponseException as exc:
            if reused and exc.code == _CLOSING and not conn.is_connected:
                raise _Stale from exc
            keep = True
            raise _reply_error(self.name, _stage(exc), exc.code, exc.message) from exc
        except aiosmtplib.SMTPServerDisconnected as exc:
            if reused:
                raise _Stale from exc
            raise TransientError(
                f"SMTP connection lost: {_describe(exc)}", provider=self.name
            ) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            keep = True
            raise PermanentError(
                f"SMTP server cannot take this message: {exc}", provider=self.name
            ) from exc
        except ValueError as exc:
            keep = True
            raise PermanentError(f"address refused: {exc}", provider=self.name) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP send failed: {_describe(exc)}", provider=self.name) from exc
        finally:
            await self._checkin(conn, keep)

    async def _mail(self, conn: aiosmtplib.SMTP, composed: Composed, recipient: str) -> None:
        """MAIL, RCPT and DATA, then RSET if the server refused one of them.

        What aiosmtplib's ``sendmail`` does, less its per-message overhead: it
        parses each address twice and normalises the whole message once more
        just to measure it, where the sender is quoted once (``__init__``) and
        the composed message is already in wire form. The session has said
        EHLO (``_greet``), so its extensions are known before MAIL.
        """
        options = [b"SIZE=%d" % len(composed.content)] if conn.supports_extension("size") else []
        if composed.utf8:
            if not conn.supports_extension("smtputf8"):
                raise aiosmtplib.SMTPNotSupported("the server does not offer SMTPUTF8")
            options.append(b"SMTPUTF8")
        try:
            reply = await conn.execute_command(b"MAIL", self._mail_from, *options)
            if reply.code != aiosmtplib.SMTPStatus.completed:
                raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, self._sender)
            await _rcpt(conn, recipient, composed.utf8)
            await conn.data(composed.content)
        except (aiosmtplib.SMTPResponseException, ValueError):
            with contextlib.suppress(ConnectionError, aiosmtplib.SMTPResponseException):
                await conn.rset()
            raise

    async def _checkin(self, conn: aiosmtplib.SMTP, keep: bool) -> None:
        if not (keep and conn.is_connected):
            reason = "closed by server" if keep else "failed"
            conn.close()
            log.info("smtp_connection_dropped", host=self._host, port=self._port, reason=reason)
        elif self._closed:
            await self._quit(conn)
        else:
            self._idle.append(conn)

    async def _quit(self, conn: aiosmtplib.SMTP) -> None:
        try:
            await conn.quit(timeout=min(self.settings.smtp_timeout, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            conn.close()


async def _rcpt(conn: aiosmtplib.SMTP, recipient: str, utf8: bool) -> None:
    """RCPT TO; a plain mailbox goes as it is, anything else through aiosmtplib's checks.

    aiosmtplib parses every address with the standard library before quoting
    it (about 7% of a busy worker's CPU, bench/smtp.py); an address that is
    already a bare RFC 5321 mailbox needs only the angle brackets.
    """
    if _PLAIN_MAILBOX.fullmatch(recipient) is None:
        await conn.rcpt(recipient, encoding="utf-8" if utf8 else "ascii")
        return
    reply = await conn.execute_command(b"RCPT", b"TO:<" + recipient.encode("ascii") + b">")
    if reply.code not in (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


async def _greet(conn: aiosmtplib.SMTP) -> None:
    """EHLO (or HELO, if refused) now, so extensions are known before the first MAIL."""
    if not conn.is_ehlo_or_helo_needed:
        return
    try:
        await conn.ehlo()
    except aiosmtplib.SMTPHeloError:
        await conn.helo()


def _tls_context(settings: Settings) -> ssl.SSLContext:
    """Build the context once: loading the system CA store is not free.

    ``HERALD_SMTP_CA_FILE`` adds to the system store (a private relay's CA)
    rather than replacing it.
    """
    context = ssl.create_default_context()
    if settings.smtp_ca_file:
        try:
            context.load_verify_locations(cafile=settings.smtp_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"HERALD_SMTP_CA_FILE: cannot load {settings.smtp_ca_file}: {exc}"
            ) from exc
    if not settings.smtp_verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply_error(
    provider: str, stage: str, code: int, text: str
) -> TransientError | PermanentError:
    message = f"SMTP {stage} refused: {code} {text}"
    if 500 <= code < 600:
        return PermanentError(message, provider=provider)
    return TransientError(message, provider=provider)


def _stage(exc: aiosmtplib.SMTPResponseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "MAIL FROM"
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return "RCPT TO"
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "DATA"
    return "command"


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@register("smtp_backup")
class BackupSMTPProvider(SMTPProvider):
    """A second SMTP relay for failover (``HERALD_EMAIL_PROVIDERS=smtp,smtp_backup``).

    Configured by ``HERALD_SMTP_BACKUP_*``; what is not set there is taken
    from the primary's settings (sender, TLS files, pool size, timeout).
    """

    name = "smtp_backup"

    def __init__(self, settings: Settings, store: Store) -> None:
        backup = {
            "smtp_host": settings.smtp_backup_host,
            "smtp_port": settings.smtp_backup_port,
            "smtp_user": settings.smtp_backup_user,
            "smtp_password": settings.smtp_backup_password,
            "smtp_tls": settings.smtp_backup_tls,
        }
        if not settings.smtp_backup_host:
            raise ConfigError("smtp_backup needs HERALD_SMTP_BACKUP_HOST")
        update = {k: v for k, v in backup.items() if v is not None}
        super().__init__(settings.model_copy(update=update), store)

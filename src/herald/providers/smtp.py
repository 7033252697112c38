"""Email over SMTP, through a small pool of long-lived connections.

Opening an SMTP session costs a TCP (and often TLS) handshake, EHLO and AUTH:
several round trips before the first byte of mail. The pool opens up to
``HERALD_SMTP_POOL_SIZE`` sessions lazily and reuses them, so a busy worker
pays that price once per connection rather than once per message.

Errors are classified for the retry ladder: a 5xx reply to the transaction
means the message itself will never be accepted (``PermanentError``);
everything else (4xx replies, network and TLS failures, a refused login) is
``TransientError``. A failed login is an operator's mistake, not the
recipient's, so it must not send mail to the DLQ before anyone can fix it.
"""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, make_msgid, parseaddr

import aiosmtplib
import structlog

from ..config import Settings
from ..errors import ConfigError, PermanentError, TransientError
from ..models import Channel
from ..store.base import Store
from .base import Message, Provider, Receipt, register

log = structlog.get_logger("herald.providers.smtp")

#: The reply aiosmtplib closes the connection on; a server that timed out an
#: idle session may still have it buffered for our next command.
_CLOSING = 421


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
        self.settings = settings
        self._host = settings.smtp_host or "localhost"
        self._port = settings.smtp_port
        self._sender = parseaddr(settings.smtp_from)[1] or settings.smtp_from
        self._domain = self._sender.rpartition("@")[2] or "localhost"
        self._tls_context = _tls_context(settings) if settings.smtp_tls != "none" else None
        self._slots = asyncio.Semaphore(settings.smtp_pool_size)
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False

    async def send(self, message: Message) -> Receipt:
        for field, value in (("recipient", message.recipient), ("subject", message.subject)):
            if value and ("\r" in value or "\n" in value):
                raise PermanentError(
                    f"{field} contains a line break (header injection refused)", provider=self.name
                )
        try:
            mime = self._compose(message)
        except ValueError as exc:
            raise PermanentError(f"cannot build the email: {exc}", provider=self.name) from exc
        message_id = mime["Message-ID"]
        async with self._slots:
            if self._closed:
                raise TransientError("smtp provider is closed", provider=self.name)
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_connected:
                    continue
                try:
                    await self._transact(conn, mime, message.recipient, reused=True)
                except _Stale:
                    log.info("smtp_connection_stale", host=self._host, port=self._port)
                    continue
                return Receipt(self.name, message_id)
            conn = await self._connect()
            await self._transact(conn, mime, message.recipient, reused=False)
        return Receipt(self.name, message_id)

    async def close(self) -> None:
        """QUIT idle sessions; sessions still sending QUIT when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(conn) for conn in idle))
        log.info("smtp_closed", host=self._host, port=self._port, connections=len(idle))

    def _compose(self, message: Message) -> EmailMessage:
        mime = EmailMessage(policy=SMTP_POLICY)
        mime["From"] = self.settings.smtp_from
        mime["To"] = message.recipient
        if message.subject is not None:
            mime["Subject"] = message.subject
        mime["Date"] = format_datetime(datetime.now(UTC))
        mime["Message-ID"] = make_msgid(domain=self._domain)
        mime["X-Herald-Notification-Id"] = message.id
        mime.set_content(message.body)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
        return mime

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
        self, conn: aiosmtplib.SMTP, mime: EmailMessage, recipient: str, *, reused: bool
    ) -> None:
        """Run one mail transaction and give the connection back, or drop it.

        aiosmtplib sends RSET after a refused command, so a connection that is
        still up after a reply error is clean and goes back to the pool.
        """
        keep = False
        try:
            await conn.send_message(mime, sender=self._sender, recipients=[recipient])
            keep = True
        except aiosmtplib.SMTPRecipientsRefused as exc:
            keep = True
            refused = exc.recipients[0]
            raise _reply_error(self.name, "RCPT TO", refused.code, refused.message) from exc
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

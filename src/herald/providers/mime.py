"""An email notification as the bytes an SMTP server takes after DATA.

The standard library's ``EmailMessage`` parses every header it is given
through its header registry and re-renders the whole tree when flattened:
several milliseconds of CPU for an ordinary notification, three quarters of
what held one worker to under 300 messages a second (bench/smtp.py).
Herald's emails are always the same shape (a fixed sender, one recipient, a
subject, a text body and perhaps an HTML alternative), so ``Composer`` writes
that shape directly: the From header is rendered once, by the standard
library, and each message costs a few joins and, for non-ASCII text, one
C-level encoding; tens of microseconds.

The result is 7-bit clean whatever the text, so it never depends on the
server offering 8BITMIME: a part that is ASCII with lines of legal length
goes as ``7bit``; any other part as quoted-printable, or base64 when that is
shorter (mostly non-Latin scripts). A subject that is not short, printable
ASCII is RFC 2047-encoded. Only a non-ASCII *address* (an internationalised
mailbox) cannot be made 7-bit: such a message is marked ``utf8`` and the
transaction must ask for SMTPUTF8.

Extra headers (``List-Unsubscribe``) are written by ``_extra``: a name the
composer writes itself is refused, a value holding CR, LF or NUL is refused
(no header injection), ASCII is folded at spaces to 78 columns where it can
be, and other text is RFC 2047-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, formataddr, make_msgid, parseaddr

import idna

CRLF = b"\r\n"
#: RFC 5322 2.1.1: a line is at most 998 octets before its CRLF, and should be 78.
MAX_LINE = 998
FOLD_AT = 78
_SUBJECT = b"Subject: "
_MIME_VERSION = b"MIME-Version: 1.0\r\n"
#: RFC 5322 3.6.8: a field name is printable ASCII without the colon.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
#: Headers the composer writes itself: an extra one of these names is refused.
_OWN = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "content-type", "content-transfer-encoding", "x-herald-notification-id",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Composed:
    """A message ready for DATA; ``utf8`` says the transaction needs SMTPUTF8."""

    message_id: str
    content: bytes
    utf8: bool


class Composer:
    """Writes Herald's emails from one sender; build it once per provider."""

    def __init__(self, sender: str) -> None:
        address = parseaddr(sender)[1] or sender
        self.sender_utf8 = not address.isascii()
        self._domain = address.rpartition("@")[2] or "localhost"
        policy = SMTPUTF8 if self.sender_utf8 else SMTP
        self._from = policy.fold_binary("From", policy.header_store_parse("From", sender)[1])
        self._date_second = -1
        self._date = b""

    def compose(
        self, notification_id: str, recipient: str, subject: str | None, body: str,
        html: str | None, headers: Sequence[tuple[str, str]] = (),
    ) -> Composed:  # fmt: skip
        """Build the message; a ``ValueError`` means the text cannot be encoded, or an
        extra header (``headers``) is not one that can be written safely.

        The caller has refused line breaks in the recipient and subject: a
        header written here is taken as it is.
        """
        to, recipient_utf8 = _address(recipient)
        message_id = make_msgid(domain=self._domain)
        head = [
            self._from,
            b"To: " + to + CRLF,
            b"" if subject is None else _subject(subject),
            self._date_header(),
            b"Message-ID: " + message_id.encode("utf-8") + CRLF,
            b"X-Herald-Notification-Id: " + notification_id.encode("ascii") + CRLF,
            *(_extra(name, value) for name, value in headers),
            _MIME_VERSION,
        ]
        if html is None:
            content = b"".join([*head, *_part("plain", body)])
        else:
            # Random and unguessable, so no text can contain it by chance or on purpose.
            boundary = b"=_herald_" + secrets.token_hex(16).encode("ascii")
            # The CRLF before a delimiter belongs to the delimiter (RFC 2046 5.1.1),
            # so each part's own last line end needs one more after it.
            content = b"".join(
                [
                    *head,
                    b'Content-Type: multipart/alternative; boundary="' + boundary + b'"' + CRLF,
                    CRLF,
                    b"--" + boundary + CRLF,
                    *_part("plain", body),
                    CRLF + b"--" + boundary + CRLF,
                    *_part("html", html),
                    CRLF + b"--" + boundary + b"--" + CRLF,
                ]
            )
        return Composed(message_id, content, self.sender_utf8 or recipient_utf8)

    def _date_header(self) -> bytes:
        """The Date header, formatted once a second rather than once a message."""
        second = int(time.time())
        if second != self._date_second:
            stamp = format_datetime(datetime.fromtimestamp(second, UTC))
            self._date, self._date_second = b"Date: " + stamp.encode("ascii") + CRLF, second
        return self._date


def ascii_domain(recipient: str) -> str:
    """The address with an internationalised domain in its IDNA (punycode) form.

    ``user@münchen.de`` goes as ``user@xn--mnchen-3ya.de``, which every relay
    takes; only a non-ASCII local part still needs the relay's SMTPUTF8.
    """
    if recipient.isascii():
        return recipient
    local, at, domain = recipient.rpartition("@")
    if not at or domain.isascii():
        return recipient
    return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"


def _address(recipient: str) -> tuple[bytes, bool]:
    """The To header's value, and whether it needs SMTPUTF8 (a non-ASCII mailbox)."""
    if recipient.isascii():
        return recipient.encode("ascii"), False
    name, address = parseaddr(recipient)
    if address and address.isascii():  # only the display name is non-ASCII: RFC 2047
        return formataddr((name, address), charset="utf-8").encode("ascii"), False
    return recipient.encode("utf-8"), True


def _subject(subject: str) -> bytes:
    """Short printable ASCII as it is; anything else as RFC 2047 encoded words.

    Text that merely looks like an encoded word (``=?``) is encoded too, or a
    reader would decode it; so is a long subject, since encoded words fold.
    """
    if (
        len(subject) + len(_SUBJECT) <= FOLD_AT
        and subject.isascii()
        and subject.isprintable()
        and "=?" not in subject
    ):
        return _SUBJECT + subject.encode("ascii") + CRLF
    encoded = Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")
    return _SUBJECT + encoded.encode("ascii") + CRLF


def _extra(name: str, value: str) -> bytes:
    """One extra header, folded; ``ValueError`` for a name or value that is not safe to write."""
    if _FIELD_NAME.fullmatch(name) is None or name.lower() in _OWN:
        raise ValueError(f"header name {name[:40]!r} cannot be added")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name} contains a line break or NUL (header injection refused)")
    head = name.encode("ascii") + b": "
    if not (value.isascii() and value.isprintable()):
        encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        return head + encoded.encode("ascii") + CRLF
    # Fold before a space (RFC 5322 3.2.2): unfolding removes only the CRLF, so the
    # value reads back as written. A word longer than a line stays whole.
    words = value.split(" ")
    lines = [head + words[0].encode("ascii")]
    for word in words[1:]:
        piece = b" " + word.encode("ascii")
        if word and len(lines[-1]) + len(piece) > FOLD_AT and lines[-1].strip(b" ") != head.strip():
            lines.append(piece)
        else:
            lines[-1] += piece
    if max(map(len, lines)) > MAX_LINE:
        raise ValueError(f"header {name} has a word too long for a line")
    return CRLF.join(lines) + CRLF


def _part(subtype: str, text: str) -> list[bytes]:
    """The Content-Type and -Transfer-Encoding headers, blank line and body of one text part."""
    data = text.encode("utf-8")
    lines = data.splitlines()
    # RFC 2045 2.7: 7bit data is ASCII in short lines, without NUL.
    if data.isascii() and b"\0" not in data and max(map(len, lines), default=0) <= MAX_LINE:
        encoding, body = b"7bit", CRLF.join(lines) + CRLF
    else:
        # Quoted-printable keeps Latin text readable; base64 is shorter for most other scripts.
        quoted = binascii.b2a_qp(b"\n".join(lines), istext=True).replace(b"\n", CRLF) + CRLF
        packed = base64.encodebytes(CRLF.join(lines) + CRLF).replace(b"\n", CRLF)
        encoding, body = (
            (b"quoted-printable", quoted) if len(quoted) <= len(packed) else (b"base64", packed)
        )
    return [
        b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"' + CRLF,
        b"Content-Transfer-Encoding: " + encoding + CRLF,
        CRLF,
        body,
    ]

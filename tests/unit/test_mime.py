"""The composed email bytes parse back, with the standard library, to what was meant."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import cast

import pytest

from herald.providers.mime import MAX_LINE, Composer

SENDER = "Herald <noreply@example.com>"


def compose(
    subject: str | None = "Hello",
    body: str = "Your code is 1234.",
    html: str | None = None,
    recipient: str = "ada@example.com",
    sender: str = SENDER,
) -> tuple[bytes, EmailMessage]:
    composed = Composer(sender).compose("n-1", recipient, subject, body, html)
    parsed = email.message_from_bytes(composed.content, policy=email.policy.SMTP)
    return composed.content, parsed


def text_of(part: EmailMessage | None) -> str:
    assert part is not None
    return cast(str, part.get_content()).replace("\r\n", "\n")


def test_headers_and_a_plain_body() -> None:
    content, parsed = compose()

    assert parsed["From"] == SENDER
    assert parsed["To"] == "ada@example.com"
    assert parsed["Subject"] == "Hello"
    assert parsed["Date"].datetime is not None
    assert parsed["Message-ID"].endswith("@example.com>")
    assert parsed["X-Herald-Notification-Id"] == "n-1"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert text_of(parsed) == "Your code is 1234.\n"
    assert parsed.defects == []
    assert content.endswith(b"\r\n") and b"\n" not in content.replace(b"\r\n", b"")


def test_every_message_has_its_own_message_id() -> None:
    composer = Composer(SENDER)
    ids = {composer.compose("n", "a@example.com", "s", "b", None).message_id for _ in range(100)}
    assert len(ids) == 100


def test_html_alternative() -> None:
    _, parsed = compose(body="plain", html="<p>rich</p>")

    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert text_of(cast(EmailMessage, parsed.get_body(("plain",)))) == "plain\n"
    assert text_of(cast(EmailMessage, parsed.get_body(("html",)))) == "<p>rich</p>\n"
    assert parsed.defects == []


@pytest.mark.parametrize(
    "subject",
    [
        "Grüße ✓",
        "注文が発送されました",
        "=?utf-8?q?looks_encoded?=",
        "Tab\there",
        "a long subject " * 12,
        "",
    ],
)
def test_subjects_come_back_as_written(subject: str) -> None:
    content, parsed = compose(subject=subject)

    assert parsed["Subject"] == subject
    assert content.isascii()
    head = content.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78


def test_no_subject_no_header() -> None:
    _, parsed = compose(subject=None)
    assert "Subject" not in parsed


@pytest.mark.parametrize(
    ("body", "encoding"),
    [
        ("plain ASCII\nsecond line", "7bit"),
        ("Ihre Bestellung ist unterwegs. Grüße aus Köln!\n", "quoted-printable"),
        ("Ваш заказ отправлен. Спасибо за покупку!\n", "base64"),
        ("x" * (MAX_LINE + 1), "quoted-printable"),
        ("a NUL \x00 is not 7bit", "quoted-printable"),
        ("trailing spaces stay   \n.\n.leading dot\nend", "7bit"),
    ],
)
def test_bodies_are_seven_bit_and_come_back_as_written(body: str, encoding: str) -> None:
    content, parsed = compose(body=body, html=f"<p>{body}</p>")

    assert content.isascii()
    assert max(len(line) for line in content.split(b"\r\n")) <= MAX_LINE
    plain = cast(EmailMessage, parsed.get_body(("plain",)))
    html = cast(EmailMessage, parsed.get_body(("html",)))
    assert plain["Content-Transfer-Encoding"] == encoding
    assert text_of(plain) == body.rstrip("\n") + "\n"
    assert text_of(html) == f"<p>{body}</p>".rstrip("\n") + "\n"


def test_line_ends_are_crlf_whatever_the_text_used() -> None:
    content, parsed = compose(body="one\rtwo\r\nthree\nfour")

    assert b"one\r\ntwo\r\nthree\r\nfour\r\n" in content
    assert text_of(parsed) == "one\ntwo\nthree\nfour\n"


def test_non_ascii_display_names_are_encoded() -> None:
    content, parsed = compose(
        recipient="Zoë Ådne <zoe@example.com>", sender="Hérald <n@example.com>"
    )

    assert content.isascii()
    assert parsed["To"].addresses[0].display_name == "Zoë Ådne"
    assert parsed["To"].addresses[0].addr_spec == "zoe@example.com"
    assert parsed["From"].addresses[0].display_name == "Hérald"


def test_a_non_ascii_mailbox_needs_smtputf8() -> None:
    ascii_only = Composer(SENDER).compose("n", "ada@example.com", "s", "b", None)
    assert not ascii_only.utf8

    composed = Composer(SENDER).compose("n", "adä@exämple.com", "s", "b", None)
    assert composed.utf8
    parsed = email.message_from_bytes(composed.content, policy=email.policy.SMTPUTF8)
    assert parsed["To"] == "adä@exämple.com"

    assert Composer("herald@exämple.com").compose("n", "a@example.com", "s", "b", None).utf8


def test_text_that_cannot_be_encoded_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Composer(SENDER).compose("n", "a@example.com", "s", "lone surrogate \ud800", None)


def with_headers(*headers: tuple[str, str], html: str | None = None) -> tuple[bytes, EmailMessage]:
    composed = Composer(SENDER).compose("n-1", "ada@example.com", "Hello", "Body", html, headers)
    return composed.content, email.message_from_bytes(composed.content, policy=email.policy.SMTP)


LONG_LINK = "<https://herald.example.com/u/" + "A" * 120 + ">"


@pytest.mark.parametrize(
    "value",
    [
        "<https://herald.example.com/u/abc>",
        f"{LONG_LINK}, <mailto:leave@example.com?subject=unsubscribe>",
        " ".join(["word"] * 60),
        "two  spaces and a trailing one ",
        "Grüße ✓ " * 12,
    ],
)
def test_extra_headers_come_back_as_written_in_folded_lines(value: str) -> None:
    content, parsed = with_headers(("List-Unsubscribe", value), ("X-Other", "1"), html="<p>x</p>")

    assert str(parsed["List-Unsubscribe"]) == value
    assert parsed["X-Other"] == "1"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.defects == []
    assert content.isascii()
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    block = head[head.index("List-Unsubscribe:") :].split("\r\nX-Other:")[0]
    lines = block.split("\r\n")
    # Folded wherever a space allows: only an unbreakable word may pass 78 columns.
    words = [line.removeprefix("List-Unsubscribe: ").strip() for line in lines]
    assert all(
        len(line) <= 78 or " " not in word for line, word in zip(lines, words, strict=True)
    ), lines
    assert max(map(len, lines)) <= MAX_LINE


def test_a_folded_header_breaks_only_at_its_spaces() -> None:
    content, _ = with_headers(("List-Unsubscribe", " ".join(["word"] * 60)))
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    block = head[head.index("List-Unsubscribe:") :].split("\r\nMIME-Version")[0]
    assert block.count("\r\n ") >= 3  # folded, each continuation starting with its space
    assert block.replace("\r\n", "") == "List-Unsubscribe: " + " ".join(["word"] * 60)


@pytest.mark.parametrize(
    "value",
    ["<https://x>\r\nBcc: victim@example.com", "a\nb", "a\rb", "nul\0"],
)
def test_line_breaks_in_an_extra_header_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="injection"):
        with_headers(("List-Unsubscribe", value))


@pytest.mark.parametrize(
    "name", ["From", "to", "Subject", "Content-Type", "Bad Name", "Bad:Name", "", "Ünï"]
)
def test_names_the_composer_writes_or_cannot_write_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cannot be added"):
        with_headers((name, "x"))


def test_a_word_too_long_for_any_line_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        with_headers(("List-Unsubscribe", "<" + "a" * MAX_LINE + ">"))

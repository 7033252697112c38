"""Unsubscribe tokens: they round-trip, and anything Herald did not sign as it is is refused."""

from __future__ import annotations

import base64
import dataclasses
import time
from email.message import EmailMessage
from typing import cast

import pytest

from herald.errors import BadToken
from herald.models import Channel, Claim, Priority
from herald.unsubscribe import MAX_TOKEN, Links, Subscription

SUB = Subscription("acme", "ada@example.com", "newsletter")
LINKS = Links("s3cret-server-value", "https://herald.example.com")


def claim(**changes: object) -> Claim:
    made = Claim("n1", "acme", Channel.EMAIL, "ada@example.com", "Hi", "Hello", None, {},
                 Priority.MEDIUM, 1, "t", time.time(), category="newsletter",
                 unsubscribable=True)  # fmt: skip
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


def flipped(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "subscription",
    [
        SUB,
        Subscription("t-2.x", "Jörg@bücher.example", "a"),
        Subscription("t", "x" * 64 + "@" + "d" * 180 + ".example", "c" * 64),
    ],
)
def test_a_token_reads_back_as_what_it_names(subscription: Subscription) -> None:
    token = LINKS.token(subscription)
    assert token.isascii() and "=" not in token and len(token) <= MAX_TOKEN
    assert LINKS.read(token) == subscription


def test_every_changed_byte_is_refused() -> None:
    token = LINKS.token(SUB)
    size = len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for index in range(size):
        with pytest.raises(BadToken):
            LINKS.read(flipped(token, index))


def test_another_servers_secret_is_refused() -> None:
    other = Links("another-secret", "https://herald.example.com")
    with pytest.raises(BadToken, match="signature"):
        LINKS.read(other.token(SUB))


@pytest.mark.parametrize(
    "token",
    ["", "A", "!!!!", "a b", "x" * 43, LINKS.token(SUB) + "A", LINKS.token(SUB)[:-2], "é" * 10],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadToken):
        LINKS.read(token)


def test_oversized_tokens_are_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object) -> bytes:
        raise AssertionError("decoded an oversized token")

    monkeypatch.setattr(base64, "urlsafe_b64decode", never)
    with pytest.raises(BadToken, match="oversized"):
        LINKS.read("A" * (MAX_TOKEN + 1))


def test_a_token_of_an_unknown_version_is_refused() -> None:
    token = LINKS.token(SUB)
    with pytest.raises(BadToken, match="version"):
        LINKS.read(flipped(token, 0))


def test_headers_for_an_unsubscribable_email() -> None:
    headers = dict(LINKS.headers_for(claim()))
    value = headers["List-Unsubscribe"]
    assert value.startswith("<https://herald.example.com/u/") and value.endswith(">")
    assert LINKS.read(value[1:-1].rpartition("/")[2]) == SUB
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    mailto = Links("s", "https://h.example.com", "leave@example.com").headers_for(claim())
    assert dict(mailto)["List-Unsubscribe"].endswith(
        ">, <mailto:leave@example.com?subject=unsubscribe>"
    )


@pytest.mark.parametrize(
    "changes",
    [{"unsubscribable": False}, {"category": None}, {"channel": Channel.SMS}],
)
def test_no_headers_otherwise(changes: dict[str, object]) -> None:
    assert LINKS.headers_for(claim(**changes)) == ()


def test_no_headers_without_a_public_url() -> None:
    assert Links("s", None).headers_for(claim()) == ()


def test_headers_parse_back_from_a_composed_email() -> None:
    import email
    import email.policy

    from herald.providers.mime import Composer

    headers = Links("s", "https://h.example.com", "leave@example.com").headers_for(claim())
    content = Composer("a@example.com").compose("n", "ada@example.com", "S", "B", None, headers)
    parsed = cast(EmailMessage, email.message_from_bytes(content.content,
                                                         policy=email.policy.SMTP))  # fmt: skip
    assert str(parsed["List-Unsubscribe"]) == dict(headers)["List-Unsubscribe"]
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"

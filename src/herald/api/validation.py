"""Recipient checks per channel. Each returns the normalised recipient or raises ValueError."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from ..models import Channel

_TOKEN = re.compile(r"^[A-Za-z0-9_\-:.+/=]{8,4096}$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]{1,31}://\S+$", re.IGNORECASE)


#: Plain ASCII addresses (dot-atom local part, LDH labels, alphabetic TLD): a
#: strict subset of what email-validator accepts, checked in a fraction of its
#: time; anything else (quoted parts, IDN, odd lengths) goes to email-validator.
_PLAIN_EMAIL = re.compile(
    r"^(?=.{6,254}$)(?=[^@]{1,64}@)"
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)
_SPECIAL_USE_SUFFIXES = tuple(f".{d}" for d in SPECIAL_USE_DOMAIN_NAMES)


def email(value: str) -> str:
    plain = _PLAIN_EMAIL.match(value)
    if plain is not None:
        domain = plain.group(1).lower()
        special = domain in _SPECIAL_USE or domain.endswith(_SPECIAL_USE_SUFFIXES)
        if not special and "xn--" not in domain:  # punycode is shown as Unicode
            local = value[: plain.start(1) - 1]
            return f"{local}@{domain}"
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"must be a valid email address ({exc})") from None


def phone(value: str) -> str:
    hint = "must be a phone number in E.164 form, such as +14155550123"
    if not value.startswith("+"):
        raise ValueError(hint)
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(hint) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{hint}; {value!r} is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def device_token(value: str) -> str:
    """An FCM or APNs device token, or a Web Push subscription (its JSON)."""
    if value.lstrip().startswith("{"):
        from ..providers.webpush import Subscription  # the provider owns the format

        Subscription.parse(value)
        return value
    if not _TOKEN.match(value):
        raise ValueError(
            "must be a device token: 8 to 4096 characters of letters, digits and _-:.+/="
        )
    return value


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain white space")
    return value


#: Apprise's generic HTTP senders open connections of their own, past the SSRF
#: guard that webhooks go through; generic HTTP belongs on the WEBHOOK channel.
_GENERIC_HTTP = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


def chat_url(value: str) -> str:
    if not _SCHEME.match(value):
        raise ValueError("must be a chat service URL such as slack://TOKEN_A/TOKEN_B/TOKEN_C")
    if value.partition("://")[0].lower() in _GENERIC_HTTP:
        raise ValueError("generic HTTP URLs (json://, xml://, form://) go on the WEBHOOK channel")
    return value


RECIPIENT = {
    Channel.EMAIL: email,
    Channel.SMS: phone,
    Channel.PUSH: device_token,
    Channel.WEBHOOK: http_url,
    Channel.CHAT: chat_url,
}

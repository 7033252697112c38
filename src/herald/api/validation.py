"""Recipient checks per channel. Each returns the normalised recipient or raises ValueError."""

from __future__ import annotations

import math
import re
import time
import unicodedata
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from ..config import Settings
from ..models import Channel
from ..providers import chat
from ..suppressions import CATEGORY_NAME

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
        valid = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"must be a valid email address ({exc})") from None
    if not allow_mixed_script:
        _one_script_per_label(valid.domain)
    return str(valid.normalized)


#: HERALD_ALLOW_MIXED_SCRIPT (``api.app`` sets it from the settings).
allow_mixed_script = False
#: Scripts whose letters look alike: a domain label mixing them is a classic
#: homograph (a "paypal" whose first "a" is Cyrillic). Other mixes are ordinary
#: (Japanese labels mix Han, Hiragana and Katakana).
_CONFUSABLE = frozenset({"LATIN", "CYRILLIC", "GREEK"})


def _one_script_per_label(domain: str) -> None:
    for label in domain.split("."):
        if label.isascii():
            continue
        scripts = {unicodedata.name(ch, "?").split(" ")[0] for ch in label if ch.isalpha()}
        mixed = scripts & _CONFUSABLE
        if len(mixed) > 1:
            names = " and ".join(sorted(m.title() for m in mixed))
            raise ValueError(
                f"has a domain label mixing {names} letters ({label!r}), a look-alike of another "
                "domain; refused unless HERALD_ALLOW_MIXED_SCRIPT=true"
            )


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


#: Generic HTTP belongs on the WEBHOOK channel (signed, and its replies understood).
_GENERIC_HTTP = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})
#: HERALD_CHAT_SCHEMES (``api.app`` sets it from the settings).
chat_schemes: frozenset[str] = frozenset(Settings.model_fields["chat_schemes"].get_default(
    call_default_factory=True))  # fmt: skip


def chat_url(value: str) -> str:
    """An Apprise URL of a service the destination guard covers and the operator accepts.

    The words never repeat the URL: it carries the service's credentials.
    """
    if not _SCHEME.match(value):
        raise ValueError("must be a chat service URL such as slack://TOKEN_A/TOKEN_B/TOKEN_C")
    scheme = chat.scheme_of(value)
    if scheme in chat_schemes and scheme in chat.GUARDED:
        return value
    if scheme in _GENERIC_HTTP:
        raise ValueError("generic HTTP URLs (json://, xml://, form://) go on the WEBHOOK channel")
    if scheme not in chat.GUARDED:
        raise ValueError(
            f"{scheme}:// is refused: Herald cannot guard where it connects (only chat services "
            "over HTTP(S) are accepted, not UDP, SMTP or other protocols)"
        )
    accepted = ", ".join(f"{s}://" for s in sorted(chat_schemes))
    raise ValueError(
        f"{scheme}:// is not an accepted chat service ({accepted}; HERALD_CHAT_SCHEMES)"
    )


_CATEGORY = re.compile(CATEGORY_NAME)


def category(value: str) -> str:
    """A notification's category as it is, or ValueError: a slug (``suppressions.CATEGORY_NAME``),
    never '' (which on the suppression list means every category)."""
    if _CATEGORY.fullmatch(value) is None:
        raise ValueError(
            "must be a short slug: 1 to 64 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


RECIPIENT = {
    Channel.EMAIL: email,
    Channel.SMS: phone,
    Channel.PUSH: device_token,
    Channel.WEBHOOK: http_url,
    Channel.CHAT: chat_url,
}


#: The earliest time a notification may be scheduled for, and how far ahead at most
#: (``HERALD_MAX_SCHEDULE_DAYS``; ``api.app`` sets it from the settings).
EARLIEST = datetime.fromisoformat("2000-01-01T00:00:00+00:00").timestamp()
schedule_days = 365


def schedule(value: datetime) -> datetime:
    """A delivery time Herald can store and present: 2000 or later, at most a year ahead."""
    try:
        at = value.timestamp()
    except (OverflowError, ValueError, OSError):
        at = math.inf if value.year > 2000 else -math.inf
    if at < EARLIEST:
        raise ValueError("must be in the year 2000 or later")
    if at > time.time() + schedule_days * 86_400:
        raise ValueError(f"must be at most {schedule_days} days ahead (HERALD_MAX_SCHEDULE_DAYS)")
    return value


def finite_json(value: Any, path: str = "") -> Any:
    """Refuse NaN and Infinity (which JSON cannot carry, though parsers accept them)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must hold only finite numbers; {path or 'a value'} is {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            finite_json(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            finite_json(item, f"{path}.{i}" if path else str(i))
    return value

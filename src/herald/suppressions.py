"""What an operator may put on the suppression list: the bounds, once for every door.

The store keeps whatever it is given (``store/receipts.py``); the API, the
dashboard's form and ``herald suppressions import`` check each entry here
first, so all three refuse the same things in the same words. Each check
returns the value as it will be stored or raises ``ValueError`` saying what is
wrong; ``entry`` runs them all and names the field in ``BadEntry``.

Usage::

    try:
        item = entry("acme", " Ann@Example.com ", category="newsletter")
    except BadEntry as exc:
        print(exc.field, exc)  # recipient must not be empty
    await store.suppress([item])
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from .models import suppression_key
from .store.receipts import REASONS, Suppression

#: Longest recipient: an email address is at most 254, a webhook URL or push token may be more.
MAX_RECIPIENT = 512
#: Longest free-text note on an entry, and on a category.
MAX_DETAIL = 500
#: A category is a short slug, as a notification names it (``newsletter``, ``billing.v2``).
CATEGORY_NAME = r"[a-z0-9][a-z0-9_.-]{0,63}"
_CATEGORY = re.compile(CATEGORY_NAME)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
V = TypeVar("V")
R = TypeVar("R")


class BadEntry(ValueError):
    """An entry refused, naming the field that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_recipient(value: str) -> str:
    """The recipient as the list spells it (``models.suppression_key``)."""
    if len(value) > MAX_RECIPIENT:
        raise ValueError(f"must be at most {MAX_RECIPIENT} characters")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    key = suppression_key(value)
    if not key:
        raise ValueError("must not be empty")
    return key


def check_category(value: str | None) -> str:
    """A category's name, or '' (every category) for None or an empty value."""
    if not value:
        return ""
    if not _CATEGORY.fullmatch(value):
        raise ValueError(
            "must be 1-64 lower-case letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def check_reason(value: str | None) -> str:
    """One of ``REASONS``; None or empty is ``manual``."""
    if not value:
        return "manual"
    if value not in REASONS:
        raise ValueError(f"must be one of {', '.join(REASONS)}")
    return value


def check_detail(value: str | None) -> str | None:
    """A note of at most ``MAX_DETAIL`` characters (lines allowed); empty is None."""
    if not value:
        return None
    if len(value) > MAX_DETAIL:
        raise ValueError(f"must be at most {MAX_DETAIL} characters")
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("must not contain control characters")
    return value


def entry(
    tenant_id: str, recipient: str, category: str | None = None, reason: str | None = None,
    detail: str | None = None,
) -> Suppression:  # fmt: skip
    """A checked entry for ``store.suppress``; ``BadEntry`` names the first field refused."""
    return Suppression(
        tenant_id,
        _named("recipient", check_recipient, recipient),
        _named("category", check_category, category),
        _named("reason", check_reason, reason),
        _named("detail", check_detail, detail),
    )


def _named(field: str, check: Callable[[V], R], value: V) -> R:
    try:
        return check(value)
    except ValueError as exc:
        raise BadEntry(field, str(exc)) from None

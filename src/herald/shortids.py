"""Notification ids on the command line: shown short and taken short, as git does.

An id is 32 hex digits. A table shows the shortest beginning of each that no
other notification of the tenant shares, and never fewer than ``SHOWN``
digits; every command taking an id takes such a beginning (at least ``TAKEN``
digits) or the whole id. A beginning several ids share is a usage error that
says how many share it (exit status 2); one that no id has is not found (1).
"""

from __future__ import annotations

import string
from collections.abc import Sequence

import click

from .store.ports import Notifications

SHOWN = 8
TAKEN = 4
#: Candidates looked up for an ambiguous beginning; past these it says "more than".
CANDIDATES = 10


async def shorten(store: Notifications, tenant: str, ids: Sequence[str]) -> dict[str, str]:
    """Each id's shortest unique beginning in ``tenant`` (at least ``SHOWN`` digits)."""
    shown: dict[str, str] = {}
    for full in ids:
        length = min(SHOWN, len(full))
        while length < len(full):
            others = [i for i in await store.ids_starting(tenant, full[:length], 2) if i != full]
            if not others:
                break
            # Every beginning up to what the two share is shared: skip past it at once.
            length = max(length + 1, _shared(full, others[0]) + 1)
        shown[full] = full[:length]
    return shown


def _shared(one: str, other: str) -> int:
    """How many characters the two begin with alike."""
    pairs = enumerate(zip(one, other, strict=False))
    return next((i for i, (a, b) in pairs if a != b), min(len(one), len(other)))


async def resolve(store: Notifications, tenant: str, given: str, hint: str = "ID") -> str:
    """The one id of ``tenant`` that ``given`` begins, or a click error naming ``hint``."""
    prefix = given.strip().lower()
    if len(prefix) < TAKEN or set(prefix) - set(string.hexdigits.lower()):
        raise click.BadParameter(
            f"{given!r} is not an id or the beginning of one ({TAKEN} to 32 hex digits)",
            param_hint=hint,
        )
    found = await store.ids_starting(tenant, prefix, CANDIDATES + 1)
    if not found:
        raise click.ClickException(f"no notification {given!r} in tenant {tenant!r}")
    if len(found) > 1 and prefix not in found:
        many = f"more than {CANDIDATES}" if len(found) > CANDIDATES else str(len(found))
        examples = ", ".join((await shorten(store, tenant, found[:3])).values())
        raise click.BadParameter(
            f"{given!r} begins {many} notification ids ({examples}); give more of it",
            param_hint=hint,
        )
    return prefix if prefix in found else found[0]

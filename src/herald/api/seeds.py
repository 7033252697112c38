"""The seeds' event routes as thin aliases over ``POST /api/events`` (seeds 000 and 001).

Each body becomes the ``data`` of a built-in event type (which an operator may
redefine); the answer is the stored record, flat as the seeds' documents
were, with its notifications (``aliases.py``). Signups, which have more
routes, are in ``signups.py``.
"""

from __future__ import annotations

from fastapi import APIRouter

from .aliases import SeedAlias
from .seedschemas import FriendRequestIn, LoginIn, PurchaseIn, ResetPasswordIn

router = APIRouter(prefix="/api", tags=["seed routes"])

ALIASES = (
    SeedAlias(
        "/logins", "login", LoginIn, "Login recorded; security alert queued",
        "Record a login; a security alert goes to the user (event type `login`)",
    ),
    SeedAlias(
        "/reset-passwords", "reset-password", ResetPasswordIn, "Password reset email queued",
        "Send a password reset code or link (event type `reset-password`)",
    ),
    SeedAlias(
        "/purchases", "purchase", PurchaseIn, "Purchase recorded; receipt queued",
        "Record a purchase; the receipt goes to the buyer (event type `purchase`)",
    ),
    SeedAlias(
        "/friend-requests", "friend-request", FriendRequestIn,
        "Friend request recorded; email queued",
        "Record a friend request; the person asked is told (event type `friend-request`)",
    ),
)  # fmt: skip
for seed_alias in ALIASES:
    seed_alias.declare(router)

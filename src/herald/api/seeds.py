"""The seeds' event routes as thin aliases over ``POST /api/events`` (seeds 000 and 001).

Each body becomes the ``data`` of a built-in event type (which an operator may
redefine); the answer is the stored record, flat as the seeds' documents
were, with its notifications. Signups, which have more routes, are in
``signups.py``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..access import Scope
from . import eventviews as views
from .authz import requires
from .events import submit
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope
from .seedschemas import FriendRequestIn, LoginIn, PurchaseIn, ResetPasswordIn, SeedBody, SeedRecord
from .templates import ok

router = APIRouter(prefix="/api", tags=["seed routes"])
ANSWERS = documented(422, 503)


async def alias(request: Request, event_type: str, body: SeedBody, message: str) -> JSONBody:
    """Submit ``body`` as an ``event_type`` event; the seeds' 201 answer."""
    data = body.model_dump(exclude_none=True, exclude={"locale"})
    try:
        event, notes = await submit(request, event_type, data, locale=body.locale)
    except REFUSED as exc:
        return refusal(exc)
    return ok(views.seed_record(event, notes), message, status=201)


@router.post(
    "/logins",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[SeedRecord],
    responses=ANSWERS,
    summary="Record a login; a security alert goes to the user (event type `login`)",
)
async def create_login(body: LoginIn, request: Request) -> JSONBody:
    return await alias(request, "login", body, "Login recorded; security alert queued")


@router.post(
    "/reset-passwords",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[SeedRecord],
    responses=ANSWERS,
    summary="Send a password reset code or link (event type `reset-password`)",
)
async def create_reset_password(body: ResetPasswordIn, request: Request) -> JSONBody:
    return await alias(request, "reset-password", body, "Password reset email queued")


@router.post(
    "/purchases",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[SeedRecord],
    responses=ANSWERS,
    summary="Record a purchase; the receipt goes to the buyer (event type `purchase`)",
)
async def create_purchase(body: PurchaseIn, request: Request) -> JSONBody:
    return await alias(request, "purchase", body, "Purchase recorded; receipt queued")


@router.post(
    "/friend-requests",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[SeedRecord],
    responses=ANSWERS,
    summary="Record a friend request; the person asked is told (event type `friend-request`)",
)
async def create_friend_request(body: FriendRequestIn, request: Request) -> JSONBody:
    return await alias(request, "friend-request", body, "Friend request recorded; email queued")

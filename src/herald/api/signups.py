"""``/api/signups`` (seeds 000 and 001): signups are ``signup`` events.

A signup is stored as an event whose first notification is the welcome email;
its status, attempts, message id and delivery history are that notification's
(``welcomeEmail``). The welcome email carries a one-time verification token;
only its SHA-256 is stored, and ``POST /api/signups/verify/{token}`` spends it
(with an application's key; the link itself opens a page with a button that
spends it for the address's owner: ``verification.py``).
A password, if given, is kept only as a salted scrypt hash and never shown.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Request
from starlette.exceptions import HTTPException

from ..access import Scope
from ..events import EventFilter, EventPage, EventRecord
from ..fanout import token_hash
from ..models import Status
from . import eventviews as views
from . import present
from .aliases import SeedAlias
from .authz import requires, tenant_of
from .envelope import ok
from .events import pagination
from .json import JSONBody
from .paging import PageLimit, PageNumber
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope
from .seedschemas import SignupIn, SignupList, SignupOut, SignupStatistics, SignupStatus

SIGNUP = "signup"
#: How long a verification link works. Long enough for a weekend away.
VERIFY_TTL = 7 * 24 * 3600.0

log = structlog.get_logger("herald.api.signups")
router = APIRouter(prefix="/api/signups", tags=["seed routes"])


async def _listed(request: Request, found: EventPage) -> dict[str, Any]:
    notes = await request.app.state.engine.store.event_notifications(
        tenant_of(request), [e.id for e in found.items]
    )
    return {
        "signups": [views.signup(e, notes[e.id]) for e in found.items],
        "pagination": pagination(found.total, found.page, found.limit),
    }


SeedAlias(
    "", SIGNUP, SignupIn, "Signup created; welcome email queued",
    "Create a signup; a welcome email with a verification link goes out",
    answer=SignupOut, view=views.signup,
).declare(router)  # fmt: skip


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SignupList],
    responses=documented(422, 503),
    summary="Signups, newest first, with their welcome email's status",
)
async def list_signups(request: Request, page: PageNumber = 1, limit: PageLimit = 20) -> JSONBody:
    found = await request.app.state.engine.store.find_events(
        tenant_of(request), EventFilter(type=SIGNUP), page, limit
    )
    return ok(await _listed(request, found))


@router.get(
    "/statistics",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SignupStatistics],
    responses=documented(503),
    summary="Signup totals, verified count and welcome email statuses",
)
async def signup_statistics(request: Request) -> JSONBody:
    stats = await request.app.state.engine.store.event_stats(
        tenant_of(request), SIGNUP, time.time() - 86_400
    )
    emails = dict.fromkeys(views.SEED_STATUS.values(), 0)
    for status, count in stats.primary_by_status.items():
        emails[views.SEED_STATUS[Status(status)]] += count
    rate = round(100.0 * stats.verified / stats.total, 2) if stats.total else 0.0
    return ok({
        "totalSignups": stats.total,
        "verifiedSignups": stats.verified,
        "unverifiedSignups": stats.total - stats.verified,
        "verificationRate": rate,
        "signupsLast24h": stats.recent,
        "welcomeEmails": {"total": sum(emails.values()), **emails},
    })  # fmt: skip


@router.get(
    "/welcome-emails/failed",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SignupList],
    responses=documented(422, 503),
    summary="Signups whose welcome email failed for good (in the DLQ)",
)
async def failed_welcome_emails(
    request: Request, page: PageNumber = 1, limit: PageLimit = 20
) -> JSONBody:
    where = EventFilter(type=SIGNUP, primary_status=Status.FAILED)
    found = await request.app.state.engine.store.find_events(tenant_of(request), where, page, limit)
    return ok(await _listed(request, found))


async def _signup(request: Request, signup_id: str) -> EventRecord | None:
    """By signup id, or else by the seeds' ``userId`` (the newest signup of that user)."""
    store = request.app.state.engine.store
    found: EventRecord | None = await store.get_event(tenant_of(request), signup_id)
    if found is not None and found.type == SIGNUP:
        return found
    by_user = await store.find_events(
        tenant_of(request), EventFilter(type=SIGNUP, user_id=signup_id), 1, 1
    )
    return by_user.items[0] if by_user.items else None


@router.get(
    "/{signup_id}/welcome-email-status",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SignupStatus],
    responses=documented(404, 503),
    summary="The welcome email's status, attempts, message id and delivery history",
)
async def welcome_email_status(signup_id: str, request: Request) -> JSONBody:
    store = request.app.state.engine.store
    signup = await _signup(request, signup_id)
    if signup is None:
        raise HTTPException(404, f"Signup {signup_id!r} not found")
    notes = (await store.event_notifications(tenant_of(request), [signup.id]))[signup.id]
    first = notes[0] if notes else None
    history = await store.audit(tenant_of(request), first.id) if first else []
    shown = views.signup(signup, notes)
    welcome = {**shown["welcomeEmail"], "deliveryHistory": [present.log_entry(e) for e in history]}
    return ok({"signupId": signup.id, "userId": shown["userId"], "email": shown["email"],
               "emailVerified": shown["emailVerified"], "welcomeEmail": welcome})  # fmt: skip


@router.post(
    "/verify/{token}",
    dependencies=[requires(Scope.SEND)],
    response_model=Envelope[SignupOut],
    responses=documented(404, 409, 410, 422, 503),
    summary="Verify a signup's email with the one-time token from its welcome email",
)
async def verify_signup(
    token: Annotated[str, Path(min_length=1, max_length=512)], request: Request
) -> JSONBody:
    store = request.app.state.engine.store
    try:
        event = await store.verify_event(
            tenant_of(request), token_hash(token), time.time() - VERIFY_TTL
        )
    except REFUSED as exc:
        return refusal(exc)
    log.info("signup_verified", event_id=event.id)
    notes = (await store.event_notifications(tenant_of(request), [event.id]))[event.id]
    return ok(views.signup(event, notes), "Email verified")

"""Provider delivery receipts: public endpoints, each trusted by its provider's own scheme.

``POST /api/receipts/{twilio,sendgrid,ses,postmark,mailgun}`` take what each
provider posts after it accepted a message (delivered, bounced, complained)
and apply it with ``store.apply_receipts``. No API key: the verifiers in
``herald/receipts/`` check the provider's signature (or, for Postmark, the
Basic credentials in its webhook URL). A request goes through these steps:

1. The provider must be configured (its secret set), else 404, exactly what a
   route that does not exist answers: nothing unconfigured is exposed.
2. Its client address spends a budget of its own (HERALD_RECEIPTS_RATE_LIMIT),
   not the guard's anonymous one (30 a minute, meant for callers guessing
   keys): providers post in bursts from a few addresses, and a receipt refused
   for want of budget is one the provider must retry. The budget still bounds
   what unsigned floods cost (a signature check, maybe a certificate fetch).
3. The body is read up to the verifier's bound (413 past it), never further.
4. The verifier checks it against the URL the provider signed: HERALD_PUBLIC_URL
   with the path and query when it is set (Herald behind a proxy), else the
   URL as received. It claims its replay keys in a ``Claims``: the process's
   ``SeenSet`` first, so a replay reaching the same process is refused cheaply.
5. The events and those keys go to the store in one transaction: a key any
   process took before makes it ``ReceiptReplayed`` and nothing is applied; a
   store that cannot commit keeps no key, and the answer is 503 with
   Retry-After so that the provider retries.

Refused, replayed, malformed: 401 naming why, logged as ``receipt_refused``
(never the body). Ids no notification holds are acknowledged (200) and
counted, since a retry could not change that. SES's subscription confirmation
is a GET of its ``SubscribeURL``, on the allow-listed host (``snsclient.py``).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import structlog
from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from .. import metrics
from ..access import parse_rate
from ..config import Settings
from ..errors import StoreUnavailable
from ..metrics import RECEIPTS
from ..receipts import (
    Inbound,
    ReceiptEvent,
    ReceiptRefused,
    ReceiptReplayed,
    Seen,
    SeenSet,
    mailgun,
    postmark,
    sendgrid,
    ses,
    sns,
    twilio,
)
from ..receipts.sns import CertificateCache, SubscriptionConfirmation
from .envelope import ok
from .errors import error_response, too_large_body
from .json import JSONBody
from .snsclient import SnsClient, SnsUnreachable

log = structlog.get_logger("herald.receipts")

router = APIRouter(prefix="/api/receipts", tags=["receipts"])

Found = list[ReceiptEvent] | SubscriptionConfirmation


class Check(Protocol):
    """A verifier bound to its provider's secret."""

    def __call__(self, request: Inbound, *, now: float, seen: Seen) -> Awaitable[Found]: ...


@dataclass(frozen=True, slots=True)
class Door:
    check: Check
    max_body: int


class Claims:
    """The ``Seen`` a verifier is given: the process's ``SeenSet`` first, and the keys
    claimed kept (with when they lapse) for the store, which holds them for every
    process. ``release`` forgets them locally when the request was not applied."""

    def __init__(self, local: SeenSet) -> None:
        self.local = local
        self.keys: list[tuple[str, float]] = []

    def claim(self, key: str, now: float, ttl: float) -> bool:
        if not self.local.claim(key, now, ttl):
            return False
        self.keys.append((key, now + ttl))
        return True

    def release(self) -> None:
        for key, _ in self.keys:
            self.local.release(key)


class Doors:
    """What the receipt routes keep between requests: each configured provider's
    verifier, the process's replay memory, SNS certificates, the budget."""

    def __init__(self, settings: Settings) -> None:
        self.public_url = settings.public_url
        self.callback_url = settings.callback_url  # where a moved status is reported
        self.rate = parse_rate(settings.receipts_rate_limit)
        self.seen = SeenSet()
        self.sns = SnsClient(settings.sns_cert_hosts, settings.sns_ca_file)
        self.by_provider: dict[str, Door] = {}
        if settings.twilio_auth_token:
            verify = partial(twilio.verify, auth_token=settings.twilio_auth_token)
            self.by_provider["twilio"] = Door(_now(verify), twilio.MAX_BODY)
        if settings.sendgrid_webhook_public_key:
            key = sendgrid.public_key(settings.sendgrid_webhook_public_key)
            verify = partial(sendgrid.verify, public_key=key)
            self.by_provider["sendgrid"] = Door(_now(verify), sendgrid.MAX_BODY)
        if settings.postmark_webhook_user and settings.postmark_webhook_password:
            password = settings.postmark_webhook_password.get_secret_value()
            verify = partial(
                postmark.verify, username=settings.postmark_webhook_user, password=password
            )
            self.by_provider["postmark"] = Door(_now(verify), postmark.MAX_BODY)
        if settings.mailgun_signing_key:
            signing_key = settings.mailgun_signing_key.get_secret_value()
            verify = partial(mailgun.verify, signing_key=signing_key)
            self.by_provider["mailgun"] = Door(_now(verify), mailgun.MAX_BODY)
        if settings.ses_receipts:
            # The allow-list takes patterns; the operator's hosts are meant exactly.
            hosts = [re.escape(h) for h in settings.sns_cert_hosts] or sns.AMAZON_HOSTS
            check = partial(ses.verify, topics=frozenset(settings.ses_topic_arns),
                            fetch=self.sns.certificate, certificates=CertificateCache(),
                            hosts=hosts)  # fmt: skip
            self.by_provider["ses"] = Door(check, sns.MAX_BODY)


def _now(verify: Callable[..., list[ReceiptEvent]]) -> Check:
    """A synchronous verifier as a ``Check``."""

    async def check(request: Inbound, *, now: float, seen: Seen) -> Found:
        return verify(request, now=now, seen=seen)

    return check


def doors_of(request: Request) -> Doors:
    """The app's ``Doors``, built from its settings on first use."""
    state = request.app.state
    doors: Doors | None = getattr(state, "receipt_doors", None)
    if doors is None:
        doors = state.receipt_doors = Doors(state.engine.settings)
    return doors


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Refused: bad signature or credentials, stale, replayed, malformed."},
    404: {"description": "This provider's receipts are not configured."},
    413: {"description": "The body is larger than this provider sends."},
    429: {"description": "Too many receipts from this address; retry after Retry-After."},
    503: {"description": "Not applied (store or SNS unreachable); retry after Retry-After."},
}


#: Each provider's route, ``POST /api/receipts/<provider>``, and its summary.
SUMMARIES = {
    "twilio": "Twilio SMS status callback",
    "sendgrid": "SendGrid signed Event Webhook",
    "ses": "Amazon SES notifications through SNS",
    "postmark": "Postmark webhook (HTTP Basic)",
    "mailgun": "Mailgun signed webhook",
}


def _route(provider: str) -> Callable[[Request], Awaitable[JSONBody]]:
    async def receipt(request: Request) -> JSONBody:
        return await receive(request, provider)

    return receipt


for _provider, _summary in SUMMARIES.items():
    router.add_api_route(
        f"/{_provider}", _route(_provider), methods=["POST"], responses=RESPONSES,
        summary=_summary, name=f"{_provider}_receipt",
    )  # fmt: skip


async def receive(request: Request, provider: str) -> JSONBody:
    doors = doors_of(request)
    door = doors.by_provider.get(provider)
    if door is None:
        raise HTTPException(404)  # as for a route that does not exist
    address = request.client.host if request.client else "unknown"
    wait = await request.app.state.budgets.spend(f"receipts:{address}", doors.rate)
    if wait:
        seconds = str(max(1, math.ceil(wait)))
        message = f"Too many receipts from this address; retry in {seconds} s."
        return error_response(429, message, headers={"Retry-After": seconds})
    body = await _read(request, door.max_body)
    if body is None:
        return JSONBody(too_large_body(door.max_body), status_code=413)

    claims = Claims(doors.seen)
    try:
        url = _signed_url(request, doors.public_url)
        found = await door.check(Inbound(url, request.headers, body), now=time.time(), seen=claims)
        if isinstance(found, SubscriptionConfirmation):
            await doors.sns.confirm(found.subscribe_url)
        events = found if isinstance(found, list) else []
        applied = await request.app.state.engine.store.apply_receipts(
            events, seen=claims.keys, callback_url=doors.callback_url
        )
    except ReceiptReplayed as exc:  # the keys stay claimed: they are taken
        return _refused(provider, "replayed", exc)
    except ReceiptRefused as exc:
        claims.release()
        return _refused(provider, "refused", exc)
    except (StoreUnavailable, SnsUnreachable) as exc:
        claims.release()
        RECEIPTS.labels(provider, "unavailable").inc()
        log.warning("receipts_not_applied", provider=provider, error=str(exc))
        return error_response(
            503, "The receipt could not be applied now; retry shortly.",
            headers={"Retry-After": "1"},
        )  # fmt: skip
    except BaseException:
        claims.release()
        raise

    if isinstance(found, SubscriptionConfirmation):
        RECEIPTS.labels(provider, "confirmed").inc()
        log.info("sns_subscription_confirmed", topic=found.topic_arn)
        return ok({"confirmed": found.topic_arn}, "Subscription confirmed")
    metrics.receipts_applied(applied.moves, applied.callbacks)
    matched = applied.events - applied.unknown
    if matched:
        RECEIPTS.labels(provider, "matched").inc(matched)
    if applied.unknown:
        RECEIPTS.labels(provider, "unknown").inc(applied.unknown)
        log.info("receipts_unknown", provider=provider, events=applied.unknown)
    log.debug("receipts_applied", provider=provider, events=applied.events,
              changed=applied.changed, suppressed=applied.suppressed)  # fmt: skip
    data = {"events": applied.events, "matched": matched, "unknown": applied.unknown,
            "changed": applied.changed, "suppressed": applied.suppressed}  # fmt: skip
    return ok(data, f"{applied.events} events received")


def _refused(provider: str, outcome: str, exc: ReceiptRefused) -> JSONBody:
    RECEIPTS.labels(provider, outcome).inc()
    log.warning("receipt_refused", provider=provider, reason=exc.reason)
    return error_response(401, f"Receipt refused: {exc.reason}")


def _signed_url(request: Request, public_url: str | None) -> str:
    """The URL the provider was given, so the one it signed: the public one when set."""
    if not public_url:
        return str(request.url)
    query = request.url.query
    return public_url + request.url.path + (f"?{query}" if query else "")


async def _read(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (nothing more is read)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)

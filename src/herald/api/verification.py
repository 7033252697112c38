"""The page a welcome email's verification link opens, and the button that spends the token.

``verifyUrl`` (``fanout.VERIFY_PATH``) is ``/api/signups/verify/{token}``. Mail
scanners and link previews fetch every link in a message, so a ``GET`` there
only shows a page with a confirm button: it looks nothing up, spends nothing
and tells nothing (not even whether the token is known). The button posts
the token, in a hidden field, to ``POST /api/signups/verify``, which spends
it as ``POST /api/signups/verify/{token}`` does for an application's key:
once; a second time, an unknown token or one older than
``signups.VERIFY_TTL`` is refused, in words, on a page of the same kind.

Both are public (``authz``): the one-time token, which only the owner of the
address received, is the credential, and the tenant is the one whose event
holds it (``verification_tenant``). No cookie or key is read, so a page
elsewhere that made a browser post here could do nothing its author could
not do with the token alone: there is no ambient credential to forge a
request with. The form's urlencoded body passes the guard's JSON rule
(``authz.FORM_ROUTES``), bounded by ``MAX_BODY``.
"""

from __future__ import annotations

import time
from html import escape
from urllib.parse import parse_qsl

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..errors import StoreUnavailable
from ..events import TokenExpired, TokenUnknown, TokenUsed, VerificationFailed
from ..fanout import VERIFY_PATH, token_hash
from . import signups
from .linkpages import page

log = structlog.get_logger("herald.api.signups")

router = APIRouter(include_in_schema=False)
#: Where the page's button posts (``VERIFY_PATH`` without its trailing slash).
CONFIRM_PATH = VERIFY_PATH.rstrip("/")
#: The form sends ``token=…``: a token is 43 characters, at most 512 are read.
MAX_TOKEN = 512
MAX_BODY = 4096

_REFUSED: dict[type[VerificationFailed], tuple[int, str, str]] = {
    TokenUsed: (409, "Already confirmed", "This link has been used: the address is confirmed."),
    TokenExpired: (410, "Link expired", "This link has expired. Please sign up again."),
    TokenUnknown: (404, "Not found", "This link is not valid."),
}


@router.get(VERIFY_PATH + "{token}")
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    if not 0 < len(token) <= MAX_TOKEN:
        return _refused(TokenUnknown)
    action = escape(request.scope.get("root_path", "") + CONFIRM_PATH)
    text = (
        "<p>Confirm that this email address is yours.</p>"
        f'<form method="post" action="{action}">'
        f'<input type="hidden" name="token" value="{escape(token)}">'
        '<button type="submit">Confirm my email address</button></form>'
    )
    return page(200, "Confirm your email address", text)


@router.post(CONFIRM_PATH)
async def confirm(request: Request) -> HTMLResponse:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return page(413, "Too large", "<p>The request body is too large.</p>")
    try:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=4))
    except ValueError:
        return page(400, "Bad request", "<p>This is not the confirmation form.</p>")
    token = form.get("token", "")
    if not 0 < len(token) <= MAX_TOKEN:
        return page(400, "Bad request", "<p>The form carried no token.</p>")
    store = request.app.state.engine.store
    digest = token_hash(token)
    try:
        tenant = await store.verification_tenant(digest)
        if tenant is None:
            return _refused(TokenUnknown)
        event = await store.verify_event(tenant, digest, time.time() - signups.VERIFY_TTL)
    except VerificationFailed as exc:
        return _refused(type(exc))
    except StoreUnavailable as exc:
        log.warning("store_unavailable", path=CONFIRM_PATH, error=str(exc))
        answer = page(503, "Try again", "<p>Please try again in a moment.</p>")
        answer.headers["Retry-After"] = "5"
        return answer
    log.info("signup_verified", event_id=event.id, tenant=tenant, door="page")
    return page(200, "Email confirmed", "<p>Thank you: your email address is confirmed.</p>")


def _refused(kind: type[VerificationFailed]) -> HTMLResponse:
    status, title, text = _REFUSED.get(kind, _REFUSED[TokenUnknown])
    return page(status, title, f"<p>{text}</p>")

"""``/u/{token}``: the page an unsubscribe link opens, and the one-click POST (RFC 8058).

Public by design (``authz.PUBLIC_TEMPLATES``): the signed token is the
credential. ``GET`` only shows what the link would do, since mail scanners
fetch links; ``POST`` does it at once and is idempotent. Mailbox providers
(Gmail, Yahoo) POST ``List-Unsubscribe=One-Click`` as a form, with no Origin,
cookie or key; the page's own button posts the same. The guard's JSON-only
rule covers ``/api/`` alone, so the form post passes it, and still gets the
Host check, the body limits and the security headers. A token that is not
ours is a bare 404: which check failed is logged, not told.
"""

from __future__ import annotations

from html import escape

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..errors import BadToken, StoreUnavailable
from ..store.receipts import Suppression
from ..unsubscribe import Subscription
from .linkpages import page

log = structlog.get_logger("herald.api")

router = APIRouter(include_in_schema=False)
#: A one-click body is 26 bytes; the page's form sends the same.
MAX_BODY = 4096


@router.api_route("/u/{token}", methods=["GET", "HEAD"])
async def confirm(token: str, request: Request) -> HTMLResponse:
    found = _read(request, token)
    if found is None:
        return _not_found()
    text = (
        f"<p>Stop emails in the category <strong>{escape(found.category)}</strong> "
        f"to <strong>{escape(masked(found.recipient))}</strong>?</p>"
        # No action: the form posts back to this very URL, whatever prefix serves it.
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return page(200, "Unsubscribe", text)


@router.post("/u/{token}")
async def unsubscribe(token: str, request: Request) -> HTMLResponse:
    found = _read(request, token)
    if found is None:
        return _not_found()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return page(413, "Too large", "<p>The request body is too large.</p>")
    entry = Suppression(found.tenant_id, found.recipient, found.category, "unsubscribe")
    try:
        added = await request.app.state.engine.store.suppress([entry])
    except StoreUnavailable as exc:
        log.warning("store_unavailable", path="/u/", error=str(exc))
        answer = page(503, "Try again", "<p>Please try again in a moment.</p>")
        answer.headers["Retry-After"] = "5"
        return answer
    log.info("unsubscribed", tenant=found.tenant_id, category=found.category, new=bool(added))
    text = (
        f"<p>{escape(masked(found.recipient))} will get no more emails in the category "
        f"<strong>{escape(found.category)}</strong>.</p>"
    )
    return page(200, "Unsubscribed", text)


def masked(recipient: str) -> str:
    """``a***@example.com``: enough to recognise one's own address, not to learn another's."""
    local, at, domain = recipient.rpartition("@")
    if not at:
        return recipient[:1] + "***"
    return f"{local[:1]}***@{domain}"


def _read(request: Request, token: str) -> Subscription | None:
    try:
        found: Subscription = request.app.state.engine.links.read(token)
    except BadToken as exc:
        log.info("unsubscribe_refused", reason=str(exc))
        return None
    return found


def _not_found() -> HTMLResponse:
    return page(404, "Not found", "<p>This link is not valid.</p>")

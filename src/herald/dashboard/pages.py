"""Rendering dashboard pages, and the route class that keeps every answer a page.

The API's exception handlers answer in JSON, which is right for clients and
wrong for an operator's browser. ``PageRoute`` catches what a page handler may
raise (an unknown id, a bad filter, a refused form, a store that cannot answer)
and renders the error page with the same status instead, so a dashboard URL
never answers with a JSON body or a 500 for those.

Every page knows who is looking (``caller_context``): the header names them and
offers a logout, forms carry their session's CSRF token, and buttons for what
their role may not do are left out. Posted forms are read here too, bounded.

Every page leaves with headers that shut out what the templates' autoescaping
already should: scripts only from our own static folder, no framing of the
dashboard by another site (a framed page could be clicked into acting, past
the same-origin check of ``csrf.py``), and no caching of operator data.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jinja2
import structlog
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from ..access import Principal, Scope
from ..api.present import CONCEALED
from ..errors import StoreUnavailable, Unstorable
from ..models import canonical_queue

log = structlog.get_logger("herald.dashboard")

HERE = Path(__file__).parent
PREFIX = "/dashboard"
LOGIN = PREFIX + "/login"

#: Styles may be inline because a captured email's HTML, previewed in a
#: sandboxed ``srcdoc`` frame, inherits this policy and is mostly inline styles.
#: Scripts may not: the frame's sandbox forbids them, and the dashboard's own
#: few lines live in ``static/``. They may connect to this origin only (the live
#: view's event stream, and a page fetching itself anew).
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

#: What an action did, shown once on the page it redirects to (``?notice=``).
NOTICES = {
    "paused": "Queue {queue} paused: nothing is claimed from it until it is resumed.",
    "resumed": "Queue {queue} resumed.",
    "cancelled": "Notification cancelled.",
    "not-cancelled": "Not cancelled: it is being delivered right now, or already final.",
    "replayed": "{count} dead letter{s} replayed with a fresh retry ladder.",
    "deleted": "Dead letter deleted with its history.",
    "suppressed": "Added to the suppression list: nothing more is sent to that recipient.",
    "already-suppressed": "Already on the suppression list; the entry is kept as it was.",
    "unsuppressed": "Removed from the suppression list.",
    "created": "Notification created: this page follows it as it is delivered.",
    "existing": "A notification with this idempotency key exists already: here it is.",
}
NOTICE_PARAMS = ("notice", "count", "queue")


def _when(iso: str | None) -> str:
    """``present``'s ISO times, read as ``2025-01-31 09:30:00``: the footer says UTC once."""
    return "—" if iso is None else iso[:19].replace("T", " ")


environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a misspelt field fails the tests, not silently blanks
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.filters["when"] = _when
environment.globals.update(prefix=PREFIX, concealed=CONCEALED)


def here(request: Request) -> str:
    """The current page's URL without a one-off notice: where forms come back to."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in NOTICE_PARAMS]
    return request.url.path + (f"?{urlencode(query)}" if query else "")


def _notice(request: Request) -> str | None:
    q = request.query_params
    code = q.get("notice", "")
    text = NOTICES.get(code)
    if text is None:
        return None
    count = q.get("count", "")
    if not (count.isascii() and count.isdigit()):
        count = "Some"
    elif code == "replayed" and not count.strip("0"):
        return "Nothing replayed: no such dead letter is left (replayed or deleted already?)."
    return text.format(count=count, s="" if count == "1" else "s",
                       queue=canonical_queue(q.get("queue", "")) or "")  # fmt: skip


def safe_next(target: str, default: str) -> str:
    """``target`` when it is a page of this dashboard, else ``default``: no open redirects.

    Only a plain path under ``PREFIX`` passes: no scheme or host (``//evil``), no
    backslash, space or control character (browsers drop or fold some of them and
    may then read another host), no ``..`` segment, and not the login page itself.
    """
    try:
        parts = urlsplit(target)
    except ValueError:
        return default
    path = parts.path
    ours = path == PREFIX or path.startswith(PREFIX + "/")
    odd = any(c == "\\" or ord(c) < 0x21 or ord(c) == 0x7F for c in target)
    if (parts.scheme or parts.netloc or odd or not ours or len(target) > 2000
            or ".." in path.split("/") or path.startswith(LOGIN)):  # fmt: skip
        return default
    return target


#: A dashboard form's body at most: the login form's longest password, percent-encoded,
#: fits with room to spare; every other form is a few hundred bytes.
FORM_LIMIT = 32 * 1024
FORM_FIELDS = 20


async def read_form(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """A posted urlencoded form, read no further than ``limit`` bytes (else 413)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, "This form is larger than any dashboard form can be.")
    try:
        fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True,
                           max_num_fields=FORM_FIELDS)  # fmt: skip
    except ValueError:
        raise HTTPException(400, "This form has more fields than any dashboard form.") from None
    return dict(fields)


def caller_context(request: Request) -> dict[str, Any]:
    """Who is looking, for the templates: their name, what they may do, the form token.

    ``can`` drives which buttons a page shows; the routes' scopes are what
    refuses, so a hidden button is a courtesy, not the check.
    """
    state = request.scope.get("state", {})
    caller: Principal | None = state.get("principal")
    return {
        "user": caller.actor if caller is not None else None,
        "can": frozenset(s.value for s in Scope if caller is not None and caller.allows(s)),
        "csrf": state.get("csrf", ""),
    }


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    engine = getattr(request.app.state, "engine", None)
    live = getattr(request.app.state, "live", None)
    html = environment.get_template(template).render(
        here=here(request),
        notice=_notice(request),
        instance=engine.settings.instance if engine is not None else "",
        stream=live.position if live is not None else "",  # where the live view starts
        **{**caller_context(request), **context},
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def error_page(request: Request, status_code: int, title: str, detail: str) -> HTMLResponse:
    return render(request, "error.html", status_code, section=None, refresh=False,
                  code=status_code, title=title, detail=detail)  # fmt: skip


TITLES = {400: "Bad request", 403: "Refused", 404: "Not found", 409: "Conflict",
          413: "Too large"}  # fmt: skip


class PageRoute(APIRoute):
    """An APIRoute whose failures are rendered as the dashboard's error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except StoreUnavailable as exc:
                log.warning("store_unavailable", path=request.url.path, error=str(exc))
                answer = error_page(request, 503, "Store unavailable",
                                    "The database cannot answer right now; "
                                    "this page will work again when it does.")  # fmt: skip
                answer.headers["Retry-After"] = "1"
                return answer
            except HTTPException as exc:
                title = TITLES.get(exc.status_code, "Error")
                return error_page(request, exc.status_code, title, str(exc.detail))
            except Unstorable:
                why = "The request holds a character the store cannot keep (NUL)."
                return error_page(request, 400, TITLES[400], why)
            except RequestValidationError:
                return error_page(request, 400, TITLES[400], "The request is malformed.")

        return page

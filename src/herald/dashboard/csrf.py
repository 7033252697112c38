"""Cross-site request forgery: which of the dashboard's form posts are honoured.

Any page on the web can make an operator's browser submit a form to Herald,
and the browser attaches the session cookie to it (``SameSite=Lax`` does not
help between two ports of one host, which are the same site). Two checks,
each enough on its own, refuse such a post:

1. **Origin.** A browser cannot lie about where a form came from. A POST is
   accepted only when its ``Origin`` header (which current browsers send with
   every form POST) names this same host; a client that sends no ``Origin``
   must send a ``Referer`` from this host instead. Neither, ``Origin: null``
   (a sandboxed or privacy-stripped source), or another host: 403.
2. **Token.** A caller signed in by session cookie must also send the
   session's CSRF token (every form carries it in a hidden ``csrf`` field),
   which another site cannot read. A caller that presented an API key has no
   ambient credential a forged request could borrow, so it needs no token.

The login form has no session yet; ``login.py`` gives it a token of its own.

Both hold across restarts and across several API processes behind one
address. They rely on pages not being framed by another site
(``frame-ancestors 'none'`` in ``pages.py``, or a framed dashboard could be
clicked into acting), and on a reverse proxy passing the browser's ``Host``
through (nginx: ``proxy_set_header Host $host;``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from fastapi import Request
from starlette.exceptions import HTTPException

from .pages import FORM_LIMIT, read_form

DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def _authority(netloc: str, scheme: str) -> str:
    return netloc.lower().removesuffix(DEFAULT_PORTS[scheme])


def same_origin(request: Request) -> bool:
    """Whether the browser says this request comes from a page of this host."""
    host = request.headers.get("host")
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    if not host or not source:
        return False
    try:
        parts = urlsplit(source)
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc:
        return False
    return _authority(parts.netloc, parts.scheme) == _authority(host, parts.scheme)


def check(request: Request) -> None:
    if not same_origin(request):
        raise HTTPException(
            403,
            "This form did not come from this dashboard (its Origin or Referer names "
            "another site, or neither was sent), so it was not acted on.",
        )


#: The hidden form field that carries the session's token.
FIELD = "csrf"


def check_token(request: Request, form: Mapping[str, str]) -> None:
    """Refuse a session's post without its CSRF token; API-key callers need none."""
    expected = request.scope.get("state", {}).get("csrf")
    if expected is None:
        return
    sent = form.get(FIELD, "")
    if not hmac.compare_digest(sent.encode(), str(expected).encode()):
        raise HTTPException(
            403,
            "This form carried no valid token for your session (it may come from another "
            "site, or from before you last signed in), so it was not acted on. Reload the "
            "page and try again.",
        )


async def posted(request: Request, limit: int = FORM_LIMIT) -> dict[str, str]:
    """A form post's fields (at most ``limit`` bytes), once both checks have passed (else 403)."""
    check(request)
    form = await read_form(request, limit)
    check_token(request, form)
    return form

"""Cross-site request forgery: the dashboard's forms act, and it has no login.

Any page on the web can make an operator's browser submit a form to Herald;
it cannot make the browser lie about where the form came from. So a POST is
accepted only when its ``Origin`` header (which current browsers send with
every form POST) names this same host; a client that sends no ``Origin`` must
send a ``Referer`` from this host instead. Neither, ``Origin: null`` (a
sandboxed or privacy-stripped source), or another host: 403.

Stateless, so it holds across restarts and across several API processes behind
one address, which a per-process token would not. Two things it relies on:
pages cannot be framed by another site (``frame-ancestors 'none'`` in
``pages.py``, or a framed dashboard could be clicked into acting), and a
reverse proxy passes the browser's ``Host`` through (nginx:
``proxy_set_header Host $host;``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request
from starlette.exceptions import HTTPException

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

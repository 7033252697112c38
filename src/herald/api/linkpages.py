"""The small HTML pages that links in messages open: unsubscribe (``/u/{token}``) and
email verification (``/api/signups/verify/{token}``).

Plain pages that a mail client's browser opens with no session: no script, no
resource from anywhere, forms only back to Herald, never framed, never cached
or indexed, and no ``Referer`` leaving them (their URL holds a token).
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

#: No scripts, no external resources, forms only back to this host.
POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Robots-Tag": "noindex",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
    "color:#222}button{font:inherit;padding:.5rem 1.2rem;cursor:pointer}"
)


def page(status: int, title: str, text: str) -> HTMLResponse:
    """A page titled ``title`` (plain text) around ``text`` (HTML, escaped by the caller)."""
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{title}</h1>{text}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)

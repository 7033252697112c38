"""The headers every answer carries, whichever door gives it: security, and the instance.

``Guard`` decides per request which of them an answer gets (``tail``): the
security headers, the instance's name and, when CORS is on and the answer
did not pass through Starlette's CORS middleware, ``Vary: Origin``. An app
behind the guard either answers through ``secured(send, tail)``, which adds
what the app did not set itself, or, as the ingest fast path does, appends
``tail`` to the headers it builds and sends them unwrapped: one coroutine
and one set of header names fewer per answer.
"""

from __future__ import annotations

from starlette.types import Message, Send

Header = tuple[bytes, bytes]

SECURITY_HEADERS: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
)
VARY_ORIGIN: Header = (b"vary", b"Origin")


def tail(identity: Header, vary_origin: bool) -> tuple[Header, ...]:
    """What ``Guard`` adds to an answer: the security headers, ``identity``, maybe Vary."""
    return (*SECURITY_HEADERS, identity, *((VARY_ORIGIN,) if vary_origin else ()))


def secured(send: Send, added: tuple[Header, ...]) -> Send:
    """``send`` adding ``added`` to the answer's head, each unless the app set it (Vary always)."""

    async def send_secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [h for h in added if h[0] not in present or h is VARY_ORIGIN]
            message["headers"] = headers
        await send(message)

    return send_secured

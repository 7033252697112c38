"""``HEAD`` answers as ``GET`` does, without the body (RFC 9110 9.3.2).

FastAPI's routes serve exactly the methods they name, so a ``HEAD`` on a
``GET`` route was a 405 (a load balancer's or a link checker's probe). The
guard, in front of every route, hands a ``HEAD`` on as a ``GET`` through
``as_get`` (so a public ``GET`` is a public ``HEAD``) and the answer loses
its body, keeping its status and headers, ``Content-Length`` included. The
server still sees a ``HEAD``, as uvicorn needs to frame the answer.
"""

from __future__ import annotations

from starlette.types import Message, Scope, Send


def as_get(scope: Scope, send: Send) -> tuple[Scope, Send]:
    """The ``HEAD`` request ``scope`` as a ``GET``, and a ``send`` that drops the body."""

    async def headless(message: Message) -> None:
        if message["type"] == "http.response.body":
            if message.get("more_body", False):
                return
            message = {"type": "http.response.body", "body": b"", "more_body": False}
        await send(message)

    return {**scope, "method": "GET"}, headless

"""The seeds' routes that are doors to Herald's own: one event type, one body, one answer each.

Seeds 000 and 001 named their routes after what happened (``POST /api/logins``,
``POST /api/signups``…). Herald keeps them as aliases of ``POST /api/events``:
the body becomes the ``data`` of a built-in event type (which an operator may
redefine), and the answer is the seeds' 201, the stored record shaped as
their documents were. ``SeedAlias.declare`` adds one such route to a router,
with its scope, so that a new alias is a row of a table and not a new route.

No ``from __future__ import annotations`` here: the route ``declare`` builds
annotates its body with the alias's own model, which FastAPI must see as a
class, not as the name of a variable local to ``declare``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ..access import Scope
from ..events import EventRecord
from ..models import Notification
from . import eventviews as views
from .authz import requires
from .envelope import ok
from .events import submit
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope
from .seedschemas import SeedBody, SeedRecord

#: How the seeds showed a stored event and its notifications.
View = Callable[[EventRecord, list[Notification]], dict[str, Any]]


async def submit_as(
    request: Request,
    event_type: str,
    body: SeedBody,
    message: str,
    view: View = views.seed_record,
) -> JSONBody:
    """Submit ``body`` as an ``event_type`` event; the seeds' 201 answer, or the refusal."""
    data = body.model_dump(exclude_none=True, exclude={"locale"})
    try:
        event, notes = await submit(request, event_type, data, locale=body.locale)
    except REFUSED as exc:
        return refusal(exc)
    return ok(view(event, notes), message, status=201)


@dataclass(frozen=True)
class SeedAlias:
    """``POST path`` with a ``body`` in, an ``event_type`` event stored, ``message`` out."""

    path: str
    event_type: str
    body: type[SeedBody]
    message: str
    summary: str
    answer: type[BaseModel] = SeedRecord
    view: View = views.seed_record

    @property
    def name(self) -> str:
        """The route's name, and so its OpenAPI operation id: ``create_login``."""
        return "create_" + self.event_type.replace("-", "_")

    def declare(self, router: APIRouter) -> None:
        alias = self

        async def create(body: alias.body, request: Request) -> JSONBody:  # type: ignore[name-defined]
            return await submit_as(request, alias.event_type, body, alias.message, alias.view)

        router.add_api_route(
            self.path,
            create,
            methods=["POST"],
            name=self.name,
            dependencies=[requires(Scope.SEND)],
            status_code=201,
            response_model=Envelope[self.answer],  # type: ignore[name-defined]
            responses=documented(422, 503),
            summary=self.summary,
        )

"""The dead letter queue: inspect, replay with a fresh ladder, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from ..access import Scope
from ..models import Channel
from ..store.base import DlqFilter
from .authz import actor_of, requires, tenant_of
from .json import JSONBody
from .paging import PageLimit, PageNumber, notification_page
from .schemas import Envelope, ErrorBody, NotificationList

router = APIRouter(prefix="/api/dlq", tags=["dlq"])
ERRORS: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}, 503: {"model": ErrorBody}}


class DlqFilterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Channel | None = None
    error: str | None = Field(None, min_length=1, max_length=500)
    since: datetime | None = None
    until: datetime | None = None

    def to_filter(self) -> DlqFilter:
        return DlqFilter(
            channel=self.type,
            error=self.error,
            since=self.since.timestamp() if self.since else None,
            until=self.until.timestamp() if self.until else None,
        )


class ReplayIn(BaseModel):
    """Replay by ``ids``, or every dead letter matching ``filter`` (up to ``limit``)."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, min_length=1, max_length=10_000
    )
    filter: DlqFilterIn | None = None
    limit: int = Field(10_000, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one_way(self) -> ReplayIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


class ReplayOut(BaseModel):
    replayed: int
    ids: list[str]


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[NotificationList],
    responses=ERRORS,
    summary="Dead letters, newest failure first: filter by type, error text and time",
)
async def list_dead(
    request: Request,
    type: Channel | None = None,
    error: Annotated[str | None, Query(min_length=1, max_length=500)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: PageNumber = 1,
    limit: PageLimit = 20,
) -> JSONBody:
    where = DlqFilterIn(type=type, error=error, since=since, until=until).to_filter()
    found = await request.app.state.engine.store.dlq(tenant_of(request), where, page, limit)
    return notification_page(request, found)


@router.post(
    "/replay",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[ReplayOut],
    responses=ERRORS,
    summary="Back to QUEUED with a fresh retry ladder; the audit row names who did it",
)
async def replay(body: ReplayIn, request: Request) -> JSONBody:
    actor = actor_of(request)  # never a header the client chose
    where = body.filter.to_filter() if body.filter else None
    done = await request.app.state.engine.store.replay(
        tenant_of(request), body.ids, where, actor, body.limit
    )
    data = {"replayed": len(done), "ids": done}
    return JSONBody({"success": True, "data": data, "message": f"{len(done)} replayed"})


@router.delete(
    "/{notification_id}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[None],
    responses={404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    summary="Delete a dead letter and its history",
)
async def delete_dead(notification_id: str, request: Request) -> JSONBody:
    if not await request.app.state.engine.store.delete_dead(tenant_of(request), notification_id):
        raise HTTPException(404, f"No dead letter {notification_id!r}")
    return JSONBody({"success": True, "data": None, "message": "Dead letter deleted"})

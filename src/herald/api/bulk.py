"""``POST /api/notifications/bulk`` (seed 002): up to 1,000 notifications in one request.

The whole body is validated in one pass; items with errors are reported by
index and reason while the valid ones are stored together in one commit. With
``?atomic=true`` a single invalid item refuses the whole request.

A body whose items are all plain and valid (the common case) is read by
``intake`` in about a third of the model's time; any other goes to
``NotificationIn``, which stores what it accepts and words every refusal.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import from_json

from .. import metrics
from ..access import Scope
from ..models import Priority
from ..store.base import Created
from . import accesslog, intake
from .authz import require_for, requires, tenant_of
from .errors import validation_body
from .ingest import to_new
from .json import JSONBody
from .schemas import Envelope, ErrorBody, FieldError, NotificationIn

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
MAX_ITEMS = intake.MAX_ITEMS


class BulkIn(BaseModel):
    notifications: list[NotificationIn] = Field(min_length=1, max_length=MAX_ITEMS)


class BulkItem(BaseModel):
    index: int
    status: str  # "accepted" or "rejected"
    id: str | None = None
    jobId: str | None = None  # the id again, as seed 002 named it
    notificationStatus: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class BulkResult(BaseModel):
    accepted: int
    rejected: int
    atomic: bool
    results: list[BulkItem]


#: The body is read raw (to accept the valid items of a partly invalid list), so
#: its schema is given to OpenAPI by hand; NotificationIn is a component already.
BULK_SCHEMA = {
    "type": "object",
    "required": ["notifications"],
    "additionalProperties": False,
    "properties": {
        "notifications": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_ITEMS,
            "items": {"$ref": "#/components/schemas/NotificationIn"},
        }
    },
}


def _split_errors(errors: list[Any]) -> tuple[dict[int, list[dict[str, str]]], list[Any]]:
    """Item errors by index, and errors about the request as a whole."""
    by_index: dict[int, list[dict[str, str]]] = defaultdict(list)
    whole = []
    for error in errors:
        loc = error["loc"]
        if len(loc) >= 2 and loc[0] == "notifications" and isinstance(loc[1], int):
            field = ".".join(str(p) for p in loc[2:]) or "item"
            by_index[loc[1]].append(
                {"field": field, "message": error["msg"].removeprefix("Value error, ")}
            )
        else:
            whole.append(error)
    return by_index, whole


@router.post(
    "/bulk",
    dependencies=[requires(Scope.SEND)],
    status_code=201,
    response_model=Envelope[BulkResult],
    responses={
        400: {"model": ErrorBody},
        413: {"model": ErrorBody},
        422: {"model": ErrorBody, "description": "Nothing was stored; each item says why."},
        503: {"model": ErrorBody},
    },
    summary="Create up to 1,000 notifications; a result per item",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BULK_SCHEMA}}}
    },
)
async def create_bulk(
    request: Request, atomic: Annotated[bool, Query(description="All or nothing.")] = False
) -> JSONBody:
    raw = await request.body()
    tenant = tenant_of(request)
    request_id = accesslog.of(request)
    try:
        now = time.time()
        items = [
            intake.checked(body, tenant, now, request_id=request_id) for body in intake.bulk(raw)
        ]
    except intake.Unplain:  # a refusal, or a value only the model reads: the model decides
        return await _modelled(request, raw, tenant, atomic)
    if any(item.ignore_suppression for item in items):
        require_for(request, Scope.MANAGE, "ignoreSuppression")
    engine = request.app.state.engine
    engine.admission.check([item.priority for item in items])
    created = await engine.store.create_many(items)
    metrics.created_many(item.channel for item in items)
    # orjson writes a Status as its value, without the enum's ``value`` property
    results = [{"index": index, "status": "accepted", "id": note_id, "jobId": note_id,
                "notificationStatus": status, "errors": []}
               for index, (note_id, status) in enumerate(created)]  # fmt: skip
    data = {"accepted": len(results), "rejected": 0, "atomic": atomic, "results": results}
    message = f"{len(results)} accepted, 0 rejected"
    return JSONBody({"success": True, "data": data, "message": message}, status_code=201)


async def _modelled(request: Request, raw: bytes, tenant: str, atomic: bool) -> JSONBody:
    """The body read by ``NotificationIn``: the valid items stored, the others refused by index."""
    try:
        items = BulkIn.model_validate_json(raw).notifications
        valid: dict[int, NotificationIn] = dict(enumerate(items))
        rejected: dict[int, list[dict[str, str]]] = {}
    except ValidationError as exc:
        rejected, whole = _split_errors(exc.errors())
        if whole or not rejected:
            status, body = validation_body(whole or exc.errors())
            return JSONBody(body, status_code=status)
        valid = _valid_items(raw, rejected)
    engine = request.app.state.engine
    for index, item in list(valid.items()):  # maxRetries: within the channel's policy
        if (refused := item.retries_error(engine.policy)) is not None:
            rejected[index] = [refused]
            del valid[index]
    if rejected and (atomic or not valid):
        results = _results({}, rejected, atomic)
        message = "Nothing was stored: " + (
            "the request is atomic and some items are invalid"
            if atomic
            else "every item is invalid"
        )
        return JSONBody({"success": False, "message": message, "errors": [], "data": results},
                        status_code=422)  # fmt: skip
    if any(b.ignoreSuppression for b in valid.values()):
        require_for(request, Scope.MANAGE, "ignoreSuppression")
    engine.admission.check([Priority[b.priority] for b in valid.values()])
    request_id = accesslog.of(request)
    created = await engine.store.create_many(
        [to_new(b, tenant, request_id=request_id) for b in valid.values()]
    )
    metrics.created_many(b.type for b in valid.values())
    accepted = dict(zip(valid, created, strict=True))
    data = _results(accepted, rejected, atomic)
    message = f"{len(accepted)} accepted, {len(rejected)} rejected"
    return JSONBody({"success": True, "data": data, "message": message}, status_code=201)


def _valid_items(raw: bytes, rejected: dict[int, Any]) -> dict[int, NotificationIn]:
    """Re-validate the items that had no errors (the slow path, only with bad items)."""
    items = from_json(raw)["notifications"]
    return {
        i: NotificationIn.model_validate(item) for i, item in enumerate(items) if i not in rejected
    }


def _results(
    accepted: dict[int, Created], rejected: dict[int, list[dict[str, str]]], atomic: bool
) -> dict[str, Any]:
    if rejected:
        indexes: Iterable[int] = sorted((*accepted, *rejected))
    else:
        indexes = accepted  # in order already: the common case skips the sort and the merge
    results: list[dict[str, Any]] = []
    for index in indexes:
        if index in accepted:
            note_id, status = accepted[index]
            results.append({"index": index, "status": "accepted", "id": note_id,
                            "jobId": note_id, "notificationStatus": status.value,
                            "errors": []})  # fmt: skip
        else:
            results.append({"index": index, "status": "rejected", "id": None, "jobId": None,
                            "notificationStatus": None, "errors": rejected[index]})  # fmt: skip
    return {"accepted": len(accepted), "rejected": len(rejected), "atomic": atomic,
            "results": results}  # fmt: skip

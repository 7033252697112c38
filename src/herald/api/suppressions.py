"""``/api/suppressions`` and ``/api/categories``: who a tenant does not send to, and its kinds of
message.

Receipts add bounces, complaints and unsubscribes by themselves; these routes
let an operator read the list, add to it (one entry, or ``items`` of up to
``MAX_ITEMS``) and take entries off it. An entry's ``category`` is null for
every category. A notification to a listed recipient ends SUPPRESSED without
a provider call. Categories say which kinds of message a recipient may
unsubscribe from (those carry List-Unsubscribe). The tenant is always the
credential's: another tenant's entries are never listed and cannot be removed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NoReturn

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException

from .. import suppressions as rules
from ..access import Scope
from ..store.receipts import Category, Suppression
from . import present
from .authz import record, requires, tenant_of
from .envelope import ok
from .events import pagination
from .json import JSONBody
from .paging import PageLimit, PageNumber
from .refusals import documented
from .schemas import Envelope, Pagination

router = APIRouter(prefix="/api/suppressions", tags=["suppressions"])
categories = APIRouter(prefix="/api/categories", tags=["suppressions"])

#: Entries one request may add.
MAX_ITEMS = 1_000
Reason = Literal["bounce", "complaint", "unsubscribe", "manual"]
#: A category's name in a path.
CategoryName = Annotated[str, Path(pattern=f"^{rules.CATEGORY_NAME}$")]


class _Entry(BaseModel):
    """The fields an entry has besides its recipient, and the checks of all of them."""

    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(
        None, max_length=64, description="Only this category; absent, null or '': every one."
    )
    reason: Reason = "manual"
    detail: str | None = Field(None, max_length=rules.MAX_DETAIL)

    _category = field_validator("category")(rules.check_category)
    _detail = field_validator("detail")(rules.check_detail)

    @field_validator("recipient", check_fields=False)
    @classmethod
    def _recipient(cls, value: str | None) -> str | None:
        return None if value is None else rules.check_recipient(value)

    def entry(self, tenant_id: str, recipient: str) -> Suppression:
        return Suppression(tenant_id, recipient, self.category or "", self.reason, self.detail)


class SuppressionIn(_Entry):
    """One entry; the recipient is stored trimmed, its ASCII letters lower-cased."""

    recipient: str = Field(min_length=1, max_length=rules.MAX_RECIPIENT)


class SuppressionsIn(_Entry):
    """One entry (the fields of ``SuppressionIn``), or up to ``MAX_ITEMS`` of them in ``items``."""

    recipient: str | None = Field(None, min_length=1, max_length=rules.MAX_RECIPIENT)
    items: list[SuppressionIn] | None = Field(None, min_length=1, max_length=MAX_ITEMS)

    def entries(self, tenant_id: str) -> list[Suppression]:
        if self.items is None:
            if self.recipient is None:
                _refuse("body", "recipient", "Field required (or give items)")
            return [self.entry(tenant_id, self.recipient)]
        given = self.model_fields_set - {"items"}
        if given:
            _refuse("body", sorted(given)[0], "give it in each of items, not beside them")
        return [item.entry(tenant_id, item.recipient) for item in self.items]


def _refuse(where: str, field: str, message: str) -> NoReturn:
    """A 422 naming ``field``, as every refused field of a model is named."""
    error = {"loc": (where, field), "msg": message, "type": "value_error"}
    raise RequestValidationError([error])


class SuppressionOut(BaseModel):
    recipient: str
    category: str | None
    reason: Reason
    detail: str | None
    notificationId: str | None
    createdAt: str | None


class SuppressionList(BaseModel):
    suppressions: list[SuppressionOut]
    pagination: Pagination


class Added(BaseModel):
    added: int = Field(description="Entries new to the list.")
    received: int = Field(description="Entries in the request; listed ones are kept as they were.")


class Removed(BaseModel):
    removed: int


class CategoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unsubscribable: bool = Field(description="Recipients may unsubscribe from it.")
    description: str | None = Field(None, max_length=rules.MAX_DETAIL)

    _description = field_validator("description")(rules.check_detail)


class CategoryOut(BaseModel):
    name: str
    unsubscribable: bool
    description: str | None
    createdAt: str | None
    updatedAt: str | None


class CategoryList(BaseModel):
    categories: list[CategoryOut]


def shown(s: Suppression) -> dict[str, Any]:
    return {"recipient": s.recipient, "category": s.category or None, "reason": s.reason,
            "detail": s.detail, "notificationId": s.notification_id,
            "createdAt": present.iso(s.created_at)}  # fmt: skip


def shown_category(c: Category) -> dict[str, Any]:
    return {"name": c.name, "unsubscribable": c.unsubscribable, "description": c.description,
            "createdAt": present.iso(c.created_at),
            "updatedAt": present.iso(c.updated_at)}  # fmt: skip


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[SuppressionList],
    responses=documented(422, 503),
    summary="The suppression list, newest first: filter by recipient and reason",
)
async def list_suppressions(
    request: Request,
    recipient: Annotated[str | None, Query(min_length=1, max_length=rules.MAX_RECIPIENT)] = None,
    reason: Reason | None = None,
    page: PageNumber = 1,
    limit: PageLimit = 20,
) -> JSONBody:
    found, total = await request.app.state.engine.store.suppressions(
        tenant_of(request), recipient, reason, page, limit
    )
    return ok({"suppressions": [shown(s) for s in found],
               "pagination": pagination(total, page, limit)})  # fmt: skip


@router.post(
    "",
    dependencies=[requires(Scope.MANAGE)],
    status_code=201,
    response_model=Envelope[Added],
    responses=documented(422, 503),
    summary="Add a recipient (or `items`); its notifications end SUPPRESSED from now on",
)
async def add_suppressions(body: SuppressionsIn, request: Request) -> JSONBody:
    entries = body.entries(tenant_of(request))
    added = await request.app.state.engine.store.suppress(entries)
    record(request, "suppressions_added", added=added, received=len(entries))
    kept = len(entries) - added
    message = f"{added} added" + (f"; {kept} already listed, kept as they were" if kept else "")
    return ok({"added": added, "received": len(entries)}, message, status=201)


@router.delete(
    "/{recipient:path}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[Removed],
    responses=documented(404, 422, 503),
    summary="Take a recipient off the list (every entry, or only `category`'s)",
)
async def remove_suppression(
    recipient: Annotated[str, Path(min_length=1, max_length=rules.MAX_RECIPIENT)],
    request: Request,
    category: Annotated[
        str | None,
        Query(max_length=64, description="Only this category's entry; '' the every-category one."),
    ] = None,
) -> JSONBody:
    if category:
        try:
            rules.check_category(category)
        except ValueError as exc:
            _refuse("query", "category", str(exc))
    removed = await request.app.state.engine.store.unsuppress(
        tenant_of(request), recipient, category
    )
    if not removed:
        raise HTTPException(404, f"{recipient!r} is not on the suppression list")
    record(request, "suppressions_removed", recipient=recipient, category=category,
           removed=removed)  # fmt: skip
    return ok({"removed": removed}, f"{removed} entr{'y' if removed == 1 else 'ies'} removed")


@categories.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[CategoryList],
    responses=documented(503),
    summary="The tenant's categories of message, by name",
)
async def list_categories(request: Request) -> JSONBody:
    found = await request.app.state.engine.store.categories(tenant_of(request))
    return ok({"categories": [shown_category(c) for c in found]})


@categories.put(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[CategoryOut],
    responses=documented(422, 503),
    summary="Create or change a category (whether recipients may unsubscribe from it)",
)
async def put_category(name: CategoryName, body: CategoryIn, request: Request) -> JSONBody:
    wanted = Category(tenant_of(request), name, body.unsubscribable, body.description)
    saved = await request.app.state.engine.store.save_category(wanted)
    record(request, "category_saved", category=name, unsubscribable=body.unsubscribable)
    return ok(shown_category(saved), f"Category {name!r} saved")


@categories.delete(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[None],
    responses=documented(404, 422, 503),
    summary="Delete a category (its notifications and suppressions stay as they are)",
)
async def delete_category(name: CategoryName, request: Request) -> JSONBody:
    if not await request.app.state.engine.store.delete_category(tenant_of(request), name):
        raise HTTPException(404, f"No category {name!r}")
    record(request, "category_deleted", category=name)
    return ok(None, f"Category {name!r} deleted")

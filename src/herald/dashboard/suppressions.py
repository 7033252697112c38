"""The suppression list page: read it, add a recipient, take one off.

Everyone who may read sees the list; an operator or admin (the ``manage``
scope, as for the API's ``POST /api/suppressions``) gets the add form and a
remove button per entry. The forms go through ``csrf.posted`` and redirect
back, as every dashboard form does, and an entry is checked by the same rules
(``herald.suppressions``) as the API's and the CSV import's.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.exceptions import HTTPException

from .. import suppressions as rules
from ..access import Scope
from ..api.authz import record, requires, tenant_of
from ..api.suppressions import shown
from ..models import Page
from ..store.receipts import REASONS
from .pages import PREFIX, PageRoute, render
from .routes import PAGE_SIZE, back, page_number, pager, posted_form

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)
HOME = f"{PREFIX}/suppressions"


@router.get("/suppressions", dependencies=[requires(Scope.READ)])
async def suppressions(request: Request) -> Any:
    q = request.query_params
    wanted = q.get("recipient", "").strip()
    reason = q.get("reason", "")
    if len(wanted) > rules.MAX_RECIPIENT:
        raise HTTPException(400, f"A recipient is at most {rules.MAX_RECIPIENT} characters.")
    if reason and reason not in REASONS:
        raise HTTPException(400, f"Unknown reason {reason!r}; one of {', '.join(REASONS)}.")
    page = page_number(q)
    found, total = await request.app.state.engine.store.suppressions(
        tenant_of(request), wanted or None, reason or None, page, PAGE_SIZE
    )
    return render(
        request, "suppressions.html", section="suppressions", refresh=False,
        entries=[shown(s) for s in found],
        pager=pager(request, Page([], total, page, PAGE_SIZE)),
        chosen={"recipient": wanted, "reason": reason}, reasons=REASONS,
        limits={"recipient": rules.MAX_RECIPIENT, "detail": rules.MAX_DETAIL},
    )  # fmt: skip


@router.post("/suppressions/add", dependencies=[requires(Scope.MANAGE)])
async def add(request: Request) -> RedirectResponse:
    form = await posted_form(request)
    try:
        entry = rules.entry(tenant_of(request), form.get("recipient", ""), form.get("category"),
                            form.get("reason"), form.get("detail"))  # fmt: skip
    except rules.BadEntry as exc:
        raise HTTPException(400, f"Not added: the {exc.field} {exc}.") from None
    added = await request.app.state.engine.store.suppress([entry])
    record(request, "suppressions_added", added=added, received=1)
    return back(form, HOME, notice="suppressed" if added else "already-suppressed")


@router.post("/suppressions/remove", dependencies=[requires(Scope.MANAGE)])
async def remove(request: Request) -> RedirectResponse:
    form = await posted_form(request)
    recipient, category = form.get("recipient", ""), form.get("category", "")
    removed = await request.app.state.engine.store.unsuppress(
        tenant_of(request), recipient, category
    )
    if not removed:
        raise HTTPException(404, f"{recipient!r} is not on the suppression list.")
    record(request, "suppressions_removed", recipient=recipient, category=category,
           removed=removed)  # fmt: skip
    return back(form, HOME, notice="unsuppressed")

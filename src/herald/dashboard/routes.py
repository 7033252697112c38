"""The operator dashboard: server-rendered pages over the store, and forms that act.

Pages read the store as the JSON API does and present rows through
``api.present``, so times read the same and a sensitive message is redacted
here exactly as there. Forms POST, act as the API's operations do, and redirect
back (POST-redirect-GET), so a reload never repeats an action; ``csrf.py``
decides which POSTs are honoured, and each route's scope who may make them
(viewer: read; operator: also replay, cancel, delete; admin: also pause and
resume, since queues are global). ``login.py``'s routes join these. None of it
is in the OpenAPI document.
"""

from __future__ import annotations

import enum
import json
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException

from ..access import Scope
from ..api import present
from ..api.authz import actor_of, requires, tenant_of
from ..models import CLAIMABLE, NOT_LANES, Channel, Page, Priority, Status, lanes_of
from ..store.base import DlqFilter, ListFilter
from . import csrf, login
from .pages import HERE, NOTICE_PARAMS, PREFIX, PageRoute, render, safe_next

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)
router.include_router(login.router)
static = StaticFiles(directory=HERE / "static")

PAGE_SIZE = 25
RECENT = 20
MAILBOX_SIZE = 50
E = TypeVar("E", bound=enum.Enum)


async def home() -> RedirectResponse:
    """``/``: a person opening Herald's address wants the dashboard."""
    return RedirectResponse(PREFIX, status_code=302)


def _engine(request: Request) -> Any:
    return request.app.state.engine


def _choice(kind: type[E], q: QueryParams | dict[str, str], field: str) -> E | None:
    """A filter from a query or form field, by member name; empty means any."""
    raw = q.get(field, "")
    if not raw:
        return None
    try:
        return kind[raw.upper()]
    except KeyError:
        known = ", ".join(m.name for m in kind)
        raise HTTPException(400, f"Unknown {field} {raw!r}; one of {known}.") from None


def page_number(q: QueryParams) -> int:
    raw = q.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 7 and 1 <= int(raw) <= 1_000_000):
        raise HTTPException(400, f"Page {raw!r} is not a page number.")
    return int(raw)


def pager(request: Request, found: Page) -> dict[str, Any]:
    info = present.pagination(found)

    def link(number: int) -> str | None:
        if not 1 <= number <= max(1, info["totalPages"]):
            return None
        query = [(k, v) for k, v in request.query_params.multi_items()
                 if k != "page" and k not in NOTICE_PARAMS]  # fmt: skip
        return request.url.path + "?" + urlencode([*query, ("page", str(number))])

    return {**info, "previous": link(found.page - 1), "next": link(found.page + 1)}


async def posted_form(request: Request) -> dict[str, str]:
    """The posted fields, after the same-origin and token checks; forms here are tiny."""
    return await csrf.posted(request)


def back(form: dict[str, str], default: str, **notice: str | int) -> RedirectResponse:
    """Redirect to the form's ``next`` page (only ever a dashboard page), with a notice."""
    parts = urlsplit(safe_next(form.get("next", ""), default))
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in NOTICE_PARAMS]
    query += [(k, str(v)) for k, v in notice.items()]
    return RedirectResponse(f"{parts.path}?{urlencode(query)}", status_code=303)


def _detail_url(notification_id: str) -> str:
    return f"{PREFIX}/notifications/{quote(notification_id, safe='')}"


# -- overview and queues ---------------------------------------------------


@router.get("", dependencies=[requires(Scope.READ)])
async def overview(request: Request) -> Any:
    engine = _engine(request)
    store = engine.store
    stats = await store.stats(tenant_of(request))
    queues = await store.queues(tenant_of(request))
    recent = await store.find(tenant_of(request), ListFilter(), 1, RECENT)
    breakers = await engine.breakers()
    charts = await request.app.state.charts.for_tenant(tenant_of(request), queues)
    return render(
        request, "overview.html", section="overview", refresh=True, charts=charts,
        statuses=[s.value for s in Status],
        stats=present.stats(stats),
        queues=[{"name": q.name, **present.queue(q)} for q in queues],
        recent=[present.notification(n, engine.policy) for n in recent.items],
        providers=sorted(engine.providers.built) if engine.providers is not None else [],
        breakers=[
            {"provider": b.provider.partition(":")[0], "destination": b.provider.partition(":")[2],
             "instance": b.instance, "state": b.state, "failures": b.failures,
             "changedAt": present.iso(b.changed_at)}
            for b in sorted(breakers, key=lambda b: (b.provider, b.instance))
        ],
    )  # fmt: skip


async def _set_paused(request: Request, name: str, paused: bool) -> RedirectResponse:
    form = await posted_form(request)
    if name.lower() in NOT_LANES:
        raise HTTPException(422, NOT_LANES[name.lower()])
    lanes = lanes_of(name)
    if not lanes:
        raise HTTPException(404, f"There is no queue {name!r}.")
    for lane in lanes:
        await _engine(request).store.set_paused(lane, paused)
    queue = lanes[0] if len(lanes) == 1 else name.lower()
    return back(form, PREFIX, notice="paused" if paused else "resumed", queue=queue)


@router.post("/queues/{name}/pause", dependencies=[requires(Scope.ADMIN)])
async def pause(name: str, request: Request) -> RedirectResponse:
    return await _set_paused(request, name, True)


@router.post("/queues/{name}/resume", dependencies=[requires(Scope.ADMIN)])
async def resume(name: str, request: Request) -> RedirectResponse:
    return await _set_paused(request, name, False)


# -- notifications -----------------------------------------------------------


@router.get("/notifications", dependencies=[requires(Scope.READ)])
async def notifications(request: Request) -> Any:
    engine = _engine(request)
    q = request.query_params
    where = ListFilter(status=_choice(Status, q, "status"), channel=_choice(Channel, q, "type"),
                       priority=_choice(Priority, q, "priority"))  # fmt: skip
    found = await engine.store.find(tenant_of(request), where, page_number(q), PAGE_SIZE)
    return render(
        request, "notifications.html", section="notifications", refresh=True,
        notifications=[present.notification(n, engine.policy) for n in found.items],
        pager=pager(request, found),
        chosen={"status": q.get("status", ""), "type": q.get("type", ""),
                "priority": q.get("priority", "")},
        statuses=[s.value for s in Status], channels=[c.value for c in Channel],
        priorities=[p.name for p in Priority],
    )  # fmt: skip


@router.get("/notifications/{notification_id}", dependencies=[requires(Scope.READ)])
async def notification(notification_id: str, request: Request) -> Any:
    engine = _engine(request)
    found = await engine.store.get(tenant_of(request), notification_id)
    if found is None:
        raise HTTPException(404, f"No notification {notification_id!r}.")
    audit = await engine.store.audit(tenant_of(request), notification_id)
    shown = present.notification(found, engine.policy)
    return render(
        request, "notification.html", section="notifications", refresh=True,
        n=shown, logs=[present.log_entry(e) for e in audit],
        metadata=json.dumps(shown["metadata"], indent=2, ensure_ascii=False, sort_keys=True),
        cancellable=found.status in CLAIMABLE,
        dead=found.status is Status.FAILED and found.queue == "dlq",
    )  # fmt: skip


@router.post("/notifications/{notification_id}/cancel", dependencies=[requires(Scope.MANAGE)])
async def cancel(notification_id: str, request: Request) -> RedirectResponse:
    form = await posted_form(request)
    store = _engine(request).store
    if await store.cancel(tenant_of(request), notification_id):
        return back(form, _detail_url(notification_id), notice="cancelled")
    if await store.get(tenant_of(request), notification_id) is None:
        raise HTTPException(404, f"No notification {notification_id!r}.")
    return back(form, _detail_url(notification_id), notice="not-cancelled")


# -- dead letters ------------------------------------------------------------


def _dlq_filter(fields: QueryParams | dict[str, str]) -> DlqFilter:
    error = fields.get("error", "").strip()
    if len(error) > 500:
        raise HTTPException(400, "The error text to match is longer than 500 characters.")
    return DlqFilter(channel=_choice(Channel, fields, "type"), error=error or None)


@router.get("/dlq", dependencies=[requires(Scope.READ)])
async def dead_letters(request: Request) -> Any:
    engine = _engine(request)
    q = request.query_params
    found = await engine.store.dlq(tenant_of(request), _dlq_filter(q), page_number(q), PAGE_SIZE)
    return render(
        request, "dlq.html", section="dlq", refresh=True,
        notifications=[present.notification(n, engine.policy) for n in found.items],
        pager=pager(request, found),
        chosen={"type": q.get("type", ""), "error": q.get("error", "")},
        channels=[c.value for c in Channel],
    )  # fmt: skip


@router.post("/dlq/replay", dependencies=[requires(Scope.MANAGE)])
async def replay_matching(request: Request) -> RedirectResponse:
    form = await posted_form(request)
    where = _dlq_filter(form)
    done = await _engine(request).store.replay(tenant_of(request), None, where, actor_of(request))
    return back(form, f"{PREFIX}/dlq", notice="replayed", count=len(done))


@router.post("/dlq/{notification_id}/replay", dependencies=[requires(Scope.MANAGE)])
async def replay_one(notification_id: str, request: Request) -> RedirectResponse:
    form = await posted_form(request)
    done = await _engine(request).store.replay(
        tenant_of(request), [notification_id], None, actor_of(request)
    )
    return back(form, f"{PREFIX}/dlq", notice="replayed", count=len(done))


@router.post("/dlq/{notification_id}/delete", dependencies=[requires(Scope.MANAGE)])
async def delete_dead(notification_id: str, request: Request) -> RedirectResponse:
    form = await posted_form(request)
    if not await _engine(request).store.delete_dead(tenant_of(request), notification_id):
        raise HTTPException(404, f"No dead letter {notification_id!r}.")
    return back(form, f"{PREFIX}/dlq", notice="deleted")


# -- the capture mailbox -----------------------------------------------------


@router.get("/mailbox", dependencies=[requires(Scope.READ)])
async def mailbox(request: Request) -> Any:
    store = _engine(request).store
    channel = _choice(Channel, request.query_params, "type")
    messages = await store.mailbox(tenant_of(request), MAILBOX_SIZE, channel)
    secret = await store.sensitive_notifications(
        tenant_of(request), [m.notification_id for m in messages]
    )
    return render(
        request, "mailbox.html", section="mailbox", refresh=False,
        messages=[present.mailbox_item(m, m.notification_id in secret) for m in messages],
        chosen={"type": request.query_params.get("type", "")},
        channels=[c.value for c in Channel], size=MAILBOX_SIZE,
    )  # fmt: skip

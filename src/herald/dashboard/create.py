"""Creating a notification from the dashboard (seed 004's ``/create``).

``GET /dashboard/create`` shows the form, ``POST`` stores what it sends (scope
``send``: operators and admins). The post goes through ``csrf.posted`` as every
dashboard form does, and is judged by the API's own model (``NotificationIn``):
the same rules and the same words as ``POST /api/notifications``. A refused
field is named beside its input and the form comes back filled in (422); a
stored notification redirects to its page, which follows it live.

A template may write the subject and message instead: it is rendered with the
data given, within the render budget, as the API's preview renders it
(``POST /api/templates/{name}/render``, whose model checks the data), and what
it gives is then judged as if it had been typed.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from ..access import Scope
from ..api.authz import record, requires, tenant_of
from ..api.errors import validation_body
from ..api.eventschemas import RenderIn
from ..api.ingest import accept_new, to_new
from ..api.present import iso
from ..api.refusals import REFUSED
from ..api.schemas import NotificationIn
from ..errors import Overloaded
from ..models import Channel, Priority
from ..sandbox import Budget
from ..templates import RENDERER, choose, merged, normalize_locale
from . import csrf
from .pages import PREFIX, PageRoute, render

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=PageRoute)

#: Each field's longest value: the API's own bounds where it has them.
LIMITS = {"recipient": 4096, "subject": 998, "message": 5000, "template": 200, "locale": 35,
          "data": 16_384, "metadata": 16_384, "scheduledAt": 40, "idempotencyKey": 255}  # fmt: skip
UNMODELLED = ("template", "data", "metadata", "scheduledAt", "idempotencyKey")
#: The whole form: every field at its longest fits, percent-encoded (a character is at
#: most 4 bytes of UTF-8, each sent as ``%XX``), with the field names and the token.
FORM_BYTES = 12 * sum(LIMITS.values()) + 4096
FIELDS = ("type", "recipient", "subject", "message", "template", "locale", "data", "priority",
          "scheduledAt", "metadata", "idempotencyKey")  # fmt: skip


class Refusal(Exception):
    """What is wrong with the form, by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _json_object(form: dict[str, str], field: str) -> dict[str, Any]:
    text = form.get(field, "").strip()
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise Refusal({field: f"is not valid JSON ({exc})"}) from None
    if not isinstance(value, dict):
        raise Refusal({field: 'must be a JSON object, such as {"key": "value"}'})
    return value


def _refused(exc: ValidationError, renamed: dict[str, str] | None = None) -> Refusal:
    """The API's words for a model's errors, each under the form field it belongs to."""
    _, body = validation_body(exc.errors())
    errors: dict[str, str] = {}
    for item in body["errors"]:
        field = item["field"].split(".")[0]
        field = (renamed or {}).get(field, field)
        errors.setdefault(field if field in FIELDS else "form", item["message"])
    return Refusal(errors)


async def _written(request: Request, form: dict[str, str]) -> dict[str, Any]:
    """The subject and message a chosen template writes (empty when none is chosen)."""
    name = form.get("template", "").strip()
    if not name:
        return {}
    if form.get("subject", "").strip() or form.get("message", "").strip():
        raise Refusal({"template": "writes the subject and message: leave those empty, "
                                   "or choose no template"})  # fmt: skip
    try:
        preview = RenderIn(data=_json_object(form, "data"), channel=form.get("type") or "EMAIL",
                           locale=form.get("locale") or "en")  # fmt: skip
    except ValidationError as exc:
        raise _refused(exc, {"channel": "type"}) from None
    engine, tenant = request.app.state.engine, tenant_of(request)
    try:
        variants = merged(await engine.store.templates(tenant, name), name)
        chosen = choose(variants, preview.channel, normalize_locale(preview.locale))
        if chosen is None:
            raise Refusal({"template": f"{name!r} has no {preview.channel.value} variant"})
        budget = Budget.of(engine.settings)
        rendered = await RENDERER.render_async(chosen, preview.data, budget, tenant)
    except REFUSED as exc:
        errors = {}
        for f, m in exc.fields:  # ("data.code", "is required by ..."): "code is required ..."
            head, _, rest = f.partition(".")
            errors["data" if head == "data" else "template"] = f"{rest} {m}" if rest else m
        raise Refusal(errors or {"template": str(exc)}) from None
    return {"subject": rendered.subject, "message": rendered.body, "html": rendered.html}


async def _body(request: Request, form: dict[str, str]) -> NotificationIn:
    """The form as the API's model, or a ``Refusal`` naming each field that is wrong."""
    # The model bounds the rest in its own words; these it never sees as typed.
    long = {f: f"is longer than {LIMITS[f]:,} characters" for f in UNMODELLED
            if len(form.get(f, "")) > LIMITS[f]}  # fmt: skip
    if long:
        raise Refusal(long)
    body: dict[str, Any] = {
        "type": form.get("type", ""),
        "recipient": form.get("recipient", ""),
        "subject": form.get("subject") or None,
        "message": form.get("message", ""),
        "priority": form.get("priority") or "MEDIUM",
        "metadata": _json_object(form, "metadata"),
        "scheduledAt": form.get("scheduledAt") or None,
    }
    body.update(await _written(request, form))
    try:
        parsed = NotificationIn.model_validate(body)
    except ValidationError as exc:
        via_template = {"subject": "template", "message": "template", "html": "template"}
        raise _refused(exc, via_template if form.get("template") else None) from None
    refused = parsed.retries_error(request.app.state.engine.policy)
    if refused is not None:
        raise Refusal({"form": refused["message"]})
    return parsed


async def _templates(request: Request) -> list[dict[str, Any]]:
    """Every template the tenant may use, by name, with the channels it has."""
    stored = await request.app.state.engine.store.templates(tenant_of(request))
    names: dict[str, set[str]] = {}
    for t in merged(stored):
        names.setdefault(t.name, set()).add(t.channel.value)
    return [{"name": n, "channels": sorted(c)} for n, c in sorted(names.items())]


async def _page(request: Request, status: int, form: dict[str, str],
                errors: dict[str, str]) -> Response:  # fmt: skip
    return render(
        request, "create.html", status, section="create", refresh=False,
        form={f: form.get(f, "") for f in FIELDS}, errors=errors, limits=LIMITS,
        channels=[c.value for c in Channel], priorities=[p.name for p in Priority],
        templates=await _templates(request),
    )  # fmt: skip


@router.get("/create", dependencies=[requires(Scope.SEND)])
async def create_form(request: Request) -> Response:
    return await _page(request, 200, {"priority": "MEDIUM", "locale": "en"}, {})


@router.post("/create", dependencies=[requires(Scope.SEND)])
async def create(request: Request) -> Response:
    form = await csrf.posted(request, FORM_BYTES)
    try:
        body = await _body(request, form)
    except Refusal as refusal:
        return await _page(request, 422, form, refusal.errors)
    key = form.get("idempotencyKey", "").strip() or None
    engine, started = request.app.state.engine, time.time()
    try:
        answer = await accept_new(engine, to_new(body, tenant_of(request), key))
    except Overloaded as exc:
        page = await _page(request, 503, form, {"form": str(exc)})
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    data = answer["data"]
    record(request, "notification_created", notification=data["id"], type=data["type"])
    # A repeated idempotency key gives back the notification it made before.
    notice = "existing" if key and data["createdAt"] < iso(started - 0.001) else "created"
    target = f"{PREFIX}/notifications/{data['id']}?notice={notice}"
    return RedirectResponse(target, status_code=303)

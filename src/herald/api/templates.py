"""``/api/templates``: versioned, sandboxed message templates, and a render preview.

A name has variants, one per channel and locale; every PUT stores the next
version of one variant. Built-in templates (version 0) are listed with the
stored ones and give way to a stored variant of the same channel and locale;
they cannot be deleted, only outranked.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query, Request
from starlette.exceptions import HTTPException

from ..access import Scope
from ..models import Channel
from ..sandbox import Budget
from ..templates import (
    RENDERER,
    TemplateDraft,
    TemplateExists,
    builtin_templates,
    choose,
    merged,
    normalize_locale,
)
from . import eventviews as views
from .authz import record, requires, tenant_of
from .eventschemas import (
    RenderIn,
    RenderOut,
    TemplateBody,
    TemplateDeleted,
    TemplateDetail,
    TemplateIn,
    TemplateList,
    TemplateOut,
)
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope

log = structlog.get_logger("herald.api.templates")
router = APIRouter(prefix="/api/templates", tags=["templates"])
TemplateName = Annotated[str, Path(min_length=1, max_length=200)]


def ok(data: Any, message: str | None = None, status: int = 200) -> JSONBody:
    return JSONBody({"success": True, "data": data, "message": message}, status_code=status)


async def _draft(name: str, body: TemplateBody, request: Request) -> TemplateDraft:
    draft = TemplateDraft(
        name=name,
        channel=body.channel,
        locale=normalize_locale(body.locale),
        body=body.text,
        subject=body.subject,
        html=body.html,
    )
    # Compiled and tried in a render process, within the budget, before it is stored.
    budget = Budget.of(request.app.state.engine.settings)
    await RENDERER.check_async(draft, budget, tenant_of(request))
    return draft


@router.get(
    "",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[TemplateList],
    responses=documented(503),
    summary="Every template variant, latest versions, built-ins included",
)
async def list_templates(request: Request) -> JSONBody:
    stored = await request.app.state.engine.store.templates(tenant_of(request))
    return ok({"templates": [views.template(t) for t in merged(stored)]})


@router.post(
    "",
    dependencies=[requires(Scope.MANAGE)],
    status_code=201,
    response_model=Envelope[TemplateOut],
    responses=documented(409, 422, 503),
    summary="Create a template variant (409 if that name, channel and locale exist)",
)
async def create_template(body: TemplateIn, request: Request) -> JSONBody:
    try:
        draft = await _draft(body.name, body, request)
        for t in builtin_templates():
            if (t.name, t.channel, t.locale) == (draft.name, draft.channel, draft.locale):
                raise TemplateExists(
                    f"template {draft.name!r} for {draft.channel.value} in {draft.locale!r} is "
                    f"built in; PUT /api/templates/{draft.name} stores a version of your own"
                )
        saved = await request.app.state.engine.store.save_template(tenant_of(request), draft, True)
        record(request, "template_created", template=saved.name, version=saved.version)
    except REFUSED as exc:
        return refusal(exc)
    log.info("template_saved", name=saved.name, channel=saved.channel.value,
             locale=saved.locale, version=saved.version)  # fmt: skip
    return ok(views.template(saved), "Template created", status=201)


@router.get(
    "/{name}",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[TemplateDetail],
    responses=documented(404, 422, 503),
    summary="A template's variants (every channel and locale), latest or at `version`",
)
async def get_template(
    name: TemplateName,
    request: Request,
    version: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
) -> JSONBody:
    store = request.app.state.engine.store
    if version == 0:
        found = [t for t in builtin_templates() if t.name == name]
    elif version is not None:
        found = await store.templates(tenant_of(request), name, version)
    else:
        found = merged(await store.templates(tenant_of(request), name), name)
    if not found:
        at = "" if version is None else f" at version {version}"
        raise HTTPException(404, f"No template {name!r}{at}")
    return ok({"name": name, "templates": [views.template(t) for t in found]})


@router.put(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[TemplateOut],
    responses=documented(404, 422, 503),
    summary="Store a new version of one variant of an existing template",
)
async def put_template(name: TemplateName, body: TemplateBody, request: Request) -> JSONBody:
    store = request.app.state.engine.store
    if not merged(await store.templates(tenant_of(request), name), name):
        raise HTTPException(404, f"No template {name!r}; POST /api/templates creates one")
    try:
        draft = await _draft(name, body, request)
        saved = await store.save_template(tenant_of(request), draft, False)
        record(request, "template_changed", template=saved.name, version=saved.version)
    except REFUSED as exc:
        return refusal(exc)
    log.info("template_saved", name=saved.name, channel=saved.channel.value,
             locale=saved.locale, version=saved.version)  # fmt: skip
    return ok(views.template(saved), f"Template {name!r} version {saved.version} stored")


@router.delete(
    "/{name}",
    dependencies=[requires(Scope.MANAGE)],
    response_model=Envelope[TemplateDeleted],
    responses=documented(404, 409, 422, 503),
    summary="Delete every stored version of a template (or of one channel or locale)",
)
async def delete_template(
    name: TemplateName,
    request: Request,
    channel: Channel | None = None,
    locale: Annotated[str | None, Query(min_length=2, max_length=35)] = None,
) -> JSONBody:
    try:
        locale = normalize_locale(locale) if locale else None
    except REFUSED as exc:
        return refusal(exc)
    deleted = await request.app.state.engine.store.delete_templates(
        tenant_of(request), name, channel, locale
    )
    record(request, "template_deleted", template=name, rows=deleted)
    builtin = any(
        t.name == name and channel in (None, t.channel) and locale in (None, t.locale)
        for t in builtin_templates()
    )
    if not deleted:
        if builtin:
            raise HTTPException(409, f"Template {name!r} is built in and cannot be deleted")
        raise HTTPException(404, f"No stored template {name!r}")
    log.info("template_deleted", name=name, versions=deleted)
    data = {"name": name, "deleted": deleted, "builtinRemains": builtin}
    return ok(data, f"Deleted {deleted} stored version(s) of {name!r}")


@router.post(
    "/{name}/render",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[RenderOut],
    responses=documented(404, 422, 503),
    summary="Render a template with `data` (a preview: nothing is stored or sent)",
)
async def render_template(name: TemplateName, body: RenderIn, request: Request) -> JSONBody:
    store = request.app.state.engine.store
    try:
        locale = normalize_locale(body.locale)
        if body.version is None:
            variants = merged(await store.templates(tenant_of(request), name), name)
        else:
            variants = await store.templates(tenant_of(request), name, body.version)
        chosen = choose(variants, body.channel, locale)
        if chosen is None:
            raise HTTPException(404, f"No template {name!r} for {body.channel.value}")
        budget = Budget.of(request.app.state.engine.settings)
        rendered = await RENDERER.render_async(chosen, body.data, budget, tenant_of(request))
    except REFUSED as exc:
        return refusal(exc)
    used = {"name": chosen.name, "channel": chosen.channel.value, "version": chosen.version,
            "locale": chosen.locale}  # fmt: skip
    data = {"subject": rendered.subject, "text": rendered.body, "html": rendered.html,
            "template": used}  # fmt: skip
    return ok(data)

"""``/api/templates``: versioned, sandboxed message templates, and a render preview.

A name has variants, one per channel and locale; every PUT stores the next
version of one variant. Built-in templates (version 0) are listed with the
stored ones and give way to a stored variant of the same channel and locale;
they cannot be deleted, only outranked. The five routes every kind of named
definition has are ``catalog.py``'s; the rules here are the templates' own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Query, Request
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
from .catalog import Answer, Catalog, Name
from .envelope import ok
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


def _version(version: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None) -> int | None:
    """``GET ?version=``: that version of every variant (0: the built-ins)."""
    return version


@dataclass(frozen=True)
class Variant:
    """``DELETE ?channel=&locale=``: the variants to delete (None: every one)."""

    channel: Channel | None
    locale: str | None


def _variant(
    channel: Channel | None = None,
    locale: Annotated[str | None, Query(min_length=2, max_length=35)] = None,
) -> Variant:
    return Variant(channel, locale)


class Templates(Catalog):
    singular, plural = "template", "templates"
    create_in, replace_in = TemplateIn, TemplateBody
    listed, saved, detail, deleted = TemplateList, TemplateOut, TemplateDetail, TemplateDeleted
    summaries = {
        "list_all": "Every template variant, latest versions, built-ins included",
        "create": "Create a template variant (409 if that name, channel and locale exist)",
        "read": "A template's variants (every channel and locale), latest or at `version`",
        "replace": "Store a new version of one variant of an existing template",
        "delete": "Delete every stored version of a template (or of one channel or locale)",
    }
    read_options = staticmethod(_version)
    delete_options = staticmethod(_variant)

    async def list_all(self, request: Request) -> Answer:
        stored = await request.app.state.engine.store.templates(tenant_of(request))
        return {"templates": [views.template(t) for t in merged(stored)]}, None

    async def create(self, request: Request, body: TemplateIn) -> Answer:
        draft = await _draft(body.name, body, request)
        for t in builtin_templates():
            if (t.name, t.channel, t.locale) == (draft.name, draft.channel, draft.locale):
                raise TemplateExists(
                    f"template {draft.name!r} for {draft.channel.value} in {draft.locale!r} is "
                    f"built in; PUT /api/templates/{draft.name} stores a version of your own"
                )
        saved = await request.app.state.engine.store.save_template(tenant_of(request), draft, True)
        record(request, "template_created", template=saved.name, version=saved.version)
        log.info("template_saved", name=saved.name, channel=saved.channel.value,
                 locale=saved.locale, version=saved.version)  # fmt: skip
        return views.template(saved), "Template created"

    async def read(self, request: Request, name: str, version: int | None) -> Answer:
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
        return {"name": name, "templates": [views.template(t) for t in found]}, None

    async def replace(self, request: Request, name: str, body: TemplateBody) -> Answer:
        store = request.app.state.engine.store
        if not merged(await store.templates(tenant_of(request), name), name):
            raise HTTPException(404, f"No template {name!r}; POST /api/templates creates one")
        draft = await _draft(name, body, request)
        saved = await store.save_template(tenant_of(request), draft, False)
        record(request, "template_changed", template=saved.name, version=saved.version)
        log.info("template_saved", name=saved.name, channel=saved.channel.value,
                 locale=saved.locale, version=saved.version)  # fmt: skip
        return views.template(saved), f"Template {name!r} version {saved.version} stored"

    async def delete(self, request: Request, name: str, variant: Variant) -> Answer:
        channel = variant.channel
        locale = normalize_locale(variant.locale) if variant.locale else None
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
        data: dict[str, Any] = {"name": name, "deleted": deleted, "builtinRemains": builtin}
        return data, f"Deleted {deleted} stored version(s) of {name!r}"


Templates().declare(router)


@router.post(
    "/{name}/render",
    dependencies=[requires(Scope.READ)],
    response_model=Envelope[RenderOut],
    responses=documented(404, 422, 503),
    summary="Render a template with `data` (a preview: nothing is stored or sent)",
)
async def render_template(name: Name, body: RenderIn, request: Request) -> JSONBody:
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

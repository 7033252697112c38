"""Sandboxed template rendering: a bad template or missing data fails at submit, not in the worker.

Templates are Jinja2 in a hardened ``SandboxedEnvironment`` (``sandbox.py``)
with ``StrictUndefined``: a template can read the data it is given and nothing
else (no attributes beginning with ``_``, no unsafe calls), and a variable the
data lacks is an error naming it, raised while the client is still waiting for
its answer. The HTML part is autoescaped; the subject and the text part are
not, since they are plain text and escaping would garble them.

Every compile and render runs in a render process (``render_pool.py``) within
a ``Budget``: CPU time, memory and output size. Saving a template compiles it
and renders it once with every name defined, so a template over its budget
whatever its data is refused before it is stored.

A template is one variant of a name: ``(name, channel, locale)``. Every save
of a variant is a new version; a notification records the name, version and
locale it was rendered with. The built-in templates ship as files in the
``templates/`` folder beside this module (``<channel>/<locale>/<name>.subject``,
``.txt`` and ``.html``) and are version 0; a stored variant of the same name,
channel and locale takes their place.

Errors::

    HeraldError
    └── TemplateError
        ├── TemplateInvalid     a part does not parse, or breaks a channel's rules
        ├── MissingVariables    the data lacks variables the template needs (names them)
        ├── UnsafeTemplate      the template reached for something the sandbox forbids,
        │                       or printed a function or object instead of a value
        ├── RenderFailed        the template raised while rendering, or its output is unusable
        │   └── OverBudget      compiling or rendering went over a limit (names it: ``limit``)
        ├── TemplateNotFound    no variant of that name for the channel
        └── TemplateExists      the variant exists already (create, not a new version)
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import HeraldError
from .models import Channel
from .render_pool import RenderPool
from .sandbox import Budget, Job, Limit, Outcome, Sandbox, run_here

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))*$")
DEFAULT_LOCALE = "en"
#: Rendered parts longer than this are refused: a template loop must not fill the store.
MAX_TEXT = 100_000
MAX_HTML = 200_000
MAX_SUBJECT = 998


class TemplateError(HeraldError):
    """``fields`` pairs a field name with what is wrong with it, for the API's ``errors``."""

    def __init__(self, message: str, fields: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.fields = tuple(fields)


class TemplateInvalid(TemplateError):
    pass


class MissingVariables(TemplateError):
    def __init__(self, names: Sequence[str], template: str) -> None:
        self.names = tuple(dict.fromkeys(names))
        super().__init__(
            f"Template {template!r} needs data it was not given: {', '.join(self.names)}",
            [(f"data.{n}", f"is required by template {template!r}") for n in self.names],
        )


class UnsafeTemplate(TemplateError):
    pass


class RenderFailed(TemplateError):
    pass


class OverBudget(RenderFailed):
    """``limit`` is ``cpu``, ``memory`` or ``output`` (``sandbox.Budget``)."""

    def __init__(self, message: str, fields: Sequence[tuple[str, str]], limit: Limit) -> None:
        super().__init__(message, fields)
        self.limit = limit


class TemplateNotFound(TemplateError):
    pass


class TemplateExists(TemplateError):
    pass


@dataclass(frozen=True, slots=True)
class TemplateDraft:
    """A template as a client writes it, before the store gives it a version."""

    name: str
    channel: Channel
    locale: str
    body: str
    subject: str | None = None
    html: str | None = None


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    channel: Channel
    locale: str
    version: int
    body: str
    subject: str | None
    html: str | None
    created_at: float
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str | None
    body: str
    html: str | None


def normalize_locale(value: str) -> str:
    """``pt_br`` and ``PT-br`` are ``pt-BR``; refuses what is not a locale tag."""
    if not _LOCALE.match(value):
        raise TemplateInvalid(
            f"{value!r} is not a locale such as en, fr or pt-BR",
            [("locale", "must be a locale tag such as en, fr or pt-BR")],
        )
    language, *rest = re.split(r"[-_]", value)
    return "-".join([language.lower(), *(p.upper() if len(p) == 2 else p for p in rest)])


def choose(variants: Iterable[Template], channel: Channel, locale: str) -> Template | None:
    """The variant for ``locale``: exact, then its language, then ``en``, then any.

    "Its language" is the bare language (``pt`` for ``pt-BR``) or, failing
    that, another region of it (``pt-PT``), so a reader gets their language
    before they get English.
    """
    found = sorted((v for v in variants if v.channel is channel), key=lambda v: v.locale)
    if not found:
        return None
    language = locale.split("-")[0]

    def rank(variant: Template) -> int:
        if variant.locale == locale:
            return 0
        if variant.locale == language:
            return 1
        if variant.locale.split("-")[0] == language:
            return 2
        return 3 if variant.locale == DEFAULT_LOCALE else 4

    return min(found, key=rank)  # ties go to the first in locale order


class Renderer:
    """Checks and renders templates within a ``Budget``.

    Templates a tenant wrote are compiled and rendered in the render processes
    of ``pool`` (``render_pool.py``), under hard limits. The built-in ones
    (Herald's own files, which no tenant can change) render in the calling
    thread, in the same sandbox, with the CPU and output limits checked as the
    output grows: through a render process they cost 0.3 ms more CPU each (see
    ``render_pool.py``), over 10 % of a signup's, and their own code holds no
    bomb, while their data is bounded by the request body limit.

    Each method has a blocking form, for code already in a thread, and an
    ``_async`` one, which waits on the event loop without holding a thread.
    ``tenant`` is whose turn the job takes in the pool.
    """

    def __init__(self, pool: RenderPool | None = None) -> None:
        self.pool = pool or RenderPool()
        self._here = Sandbox()

    def check(self, draft: TemplateDraft, budget: Budget | None = None, tenant: str = "") -> None:
        """Refuse a draft that cannot render: a syntax error, parts its channel forbids, or
        a budget it breaks whatever its data."""
        _settle(draft.name, self.pool.run(tenant, _trial_job(draft, budget)))

    async def check_async(
        self, draft: TemplateDraft, budget: Budget | None = None, tenant: str = ""
    ) -> None:
        _settle(draft.name, await self.pool.run_async(tenant, _trial_job(draft, budget)))

    def render(
        self, template: Template | TemplateDraft, data: Mapping[str, Any],
        budget: Budget | None = None, tenant: str = "",
    ) -> Rendered:  # fmt: skip
        """Render every part, or raise naming every variable the data lacks."""
        job = _render_job(template, data, budget)
        if _builtin(template):
            return _rendered(template.name, run_here(self._here, job))
        return _rendered(template.name, self.pool.run(tenant, job))

    async def render_async(
        self, template: Template | TemplateDraft, data: Mapping[str, Any],
        budget: Budget | None = None, tenant: str = "",
    ) -> Rendered:  # fmt: skip
        job = _render_job(template, data, budget)
        if _builtin(template):
            return _rendered(template.name, await asyncio.to_thread(run_here, self._here, job))
        return _rendered(template.name, await self.pool.run_async(tenant, job))


def _builtin(template: Template | TemplateDraft) -> bool:
    return isinstance(template, Template) and template.builtin


def _trial_job(draft: TemplateDraft, budget: Budget | None) -> Job:
    if not NAME.match(draft.name):
        raise TemplateInvalid(
            f"{draft.name!r} is not a template name",
            [("name", "must be 1 to 64 of a-z, 0-9, '.', '_' and '-', starting alphanumeric")],
        )
    if draft.channel is Channel.EMAIL and not (draft.subject and draft.subject.strip()):
        raise TemplateInvalid("EMAIL templates need a subject", [("subject", "is required")])
    if draft.channel is not Channel.EMAIL and (draft.subject or draft.html):
        field = "subject" if draft.subject else "html"
        raise TemplateInvalid(
            f"{field} is only for EMAIL templates", [(field, "is only for EMAIL")]
        )
    parts = tuple(_parts(draft.subject, draft.body, draft.html))
    return Job(draft.name, parts, None, budget or Budget())


def _render_job(
    template: Template | TemplateDraft, data: Mapping[str, Any], budget: Budget | None
) -> Job:
    parts = tuple(_parts(template.subject, template.body, template.html))
    return Job(template.name, parts, data, budget or Budget())


_REFUSALS: dict[str, type[TemplateError]] = {
    "invalid": TemplateInvalid, "unsafe": UnsafeTemplate, "failed": RenderFailed,
}  # fmt: skip


def _settle(name: str, outcome: Outcome) -> None:
    """Raise what ``outcome`` refuses, then the variables it found missing."""
    kind = outcome.kind
    if kind == "cpu" or kind == "memory" or kind == "output":
        raise OverBudget(outcome.message, outcome.fields, kind)
    if kind is not None:
        raise _REFUSALS[kind](outcome.message, outcome.fields)
    if outcome.missing:
        raise MissingVariables(outcome.missing, name)


def _rendered(name: str, outcome: Outcome) -> Rendered:
    _settle(name, outcome)
    out = outcome.texts
    subject = out.get("subject")
    if subject is not None:
        # A value with a line break must not become a header of its own.
        subject = " ".join(subject.split())
        if not subject or len(subject) > MAX_SUBJECT:
            raise RenderFailed(
                f"the subject rendered {'empty' if not subject else 'too long'}",
                [("subject", f"must render to 1 to {MAX_SUBJECT} characters")],
            )
    body, markup = out["text"], out.get("html")
    if not body.strip():
        raise RenderFailed("the text part rendered empty", [("text", "rendered empty")])
    if len(body) > MAX_TEXT or (markup is not None and len(markup) > MAX_HTML):
        raise RenderFailed(
            f"the rendered message is too long (text ≤ {MAX_TEXT}, html ≤ {MAX_HTML})"
        )
    return Rendered(subject, body, markup)


def _parts(subject: str | None, body: str, html: str | None) -> list[tuple[str, str, bool]]:
    parts = [("text", body, False)]
    if subject is not None:
        parts.insert(0, ("subject", subject, False))
    if html is not None:
        parts.append(("html", html, True))
    return parts


RENDERER = Renderer()


@functools.cache
def builtin_templates() -> tuple[Template, ...]:
    """The templates shipped in ``templates/<channel>/<locale>/``; version 0."""
    root = resources.files(__package__).joinpath("templates")
    found: list[Template] = []
    for channel_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not channel_dir.is_dir():
            continue
        channel = Channel(channel_dir.name.upper())
        for locale_dir in sorted(channel_dir.iterdir(), key=lambda p: p.name):
            files = {f.name: f.read_text(encoding="utf-8") for f in locale_dir.iterdir()}
            for file_name in sorted(files):
                if not file_name.endswith(".txt"):
                    continue
                name = file_name.removesuffix(".txt")
                found.append(
                    Template(
                        name=name, channel=channel, locale=locale_dir.name, version=0,
                        body=files[file_name], subject=_strip(files.get(f"{name}.subject")),
                        html=files.get(f"{name}.html"), created_at=0.0, builtin=True,
                    )
                )  # fmt: skip
    return tuple(found)


def _strip(text: str | None) -> str | None:
    return None if text is None else text.strip()


def merged(stored: Iterable[Template], name: str | None = None) -> list[Template]:
    """Stored variants with the built-ins they do not replace (of ``name``, or all)."""
    result = {(t.name, t.channel, t.locale): t for t in builtin_templates()}
    if name is not None:
        result = {k: t for k, t in result.items() if k[0] == name}
    for template in stored:
        result[(template.name, template.channel, template.locale)] = template
    return sorted(result.values(), key=lambda t: (t.name, t.channel.value, t.locale))

"""Sandboxed template rendering: a bad template or missing data fails at submit, not in the worker.

Templates are Jinja2 in a ``SandboxedEnvironment`` with ``StrictUndefined``:
a template can read the data it is given and nothing else (no attributes
beginning with ``_``, no unsafe calls), and a variable the data lacks is an
error naming it, raised while the client is still waiting for its answer.
The HTML part is autoescaped; the subject and the text part are not, since
they are plain text and escaping would garble them.

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
        ├── UnsafeTemplate      the template reached for something the sandbox forbids
        ├── RenderFailed        the template raised while rendering, or its output is unusable
        ├── TemplateNotFound    no variant of that name for the channel
        └── TemplateExists      the variant exists already (create, not a new version)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
from jinja2 import ChainableUndefined, StrictUndefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from .errors import HeraldError
from .models import Channel

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z0-9]{2,8}))*$")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined$")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'$")
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
    """Two sandboxes, one autoescaping (HTML) and one not; compiled templates are cached."""

    def __init__(self) -> None:
        self._text = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        self._html = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)
        self._compile = functools.lru_cache(maxsize=512)(self._compile_uncached)

    def check(self, draft: TemplateDraft) -> None:
        """Refuse a draft that cannot render: a syntax error, or parts its channel forbids."""
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
        for field, source, html in _parts(draft.subject, draft.body, draft.html):
            try:
                self._compile(source, html)
            except jinja2.TemplateSyntaxError as exc:
                problem = f"line {exc.lineno}: {exc.message}"
                raise TemplateInvalid(
                    f"{field} does not parse: {problem}", [(field, problem)]
                ) from None

    def render(self, template: Template | TemplateDraft, data: Mapping[str, Any]) -> Rendered:
        """Render every part, or raise naming every variable the data lacks."""
        missing: list[str] = []
        out: dict[str, str] = {}
        for field, source, html in _parts(template.subject, template.body, template.html):
            out[field] = self._render_part(template.name, field, source, html, data, missing)
        if missing:
            raise MissingVariables(missing, template.name)
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

    def _render_part(
        self, name: str, field: str, source: str, html: bool,
        data: Mapping[str, Any], missing: list[str],
    ) -> str:  # fmt: skip
        compiled = self._compiled(name, field, source, html)
        context = dict(data)
        # Each pass names one missing variable; a lenient stand-in takes its place so
        # the next pass finds the next one, and the client hears of all of them at once.
        for _ in range(64):
            try:
                return compiled.render(context)
            except SecurityError as exc:
                message = f"template {name!r} {field}: {exc}"
                raise UnsafeTemplate(message, [(field, str(exc))]) from None
            except jinja2.UndefinedError as exc:
                top = _UNDEFINED.match(str(exc))
                if top is None or top.group(1) in context:
                    attribute = _NO_ATTRIBUTE.search(str(exc))
                    missing.append(attribute.group(1) if attribute else str(exc))
                    return ""
                missing.append(top.group(1))
                context[top.group(1)] = ChainableUndefined(name=top.group(1))
            except Exception as exc:  # the sandbox's range limit, a filter's TypeError, ...
                problem = f"{type(exc).__name__}: {exc}"
                message = f"template {name!r} {field}: {problem}"
                raise RenderFailed(message, [(field, problem)]) from None
        raise RenderFailed(f"template {name!r} {field}: too many missing variables")

    def _compiled(self, name: str, field: str, source: str, html: bool) -> jinja2.Template:
        try:
            return self._compile(source, html)
        except jinja2.TemplateSyntaxError as exc:  # a stored template saved before a check
            problem = f"line {exc.lineno}: {exc.message}"
            message = f"template {name!r} {field}: {problem}"
            raise TemplateInvalid(message, [(field, problem)]) from None

    def _compile_uncached(self, source: str, html: bool) -> jinja2.Template:
        return (self._html if html else self._text).from_string(source)


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

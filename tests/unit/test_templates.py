"""Template rendering: the sandbox, autoescape in HTML only, locale fallback, missing names."""

from __future__ import annotations

import pytest

from herald.models import Channel
from herald.templates import (
    RENDERER,
    MissingVariables,
    RenderFailed,
    Template,
    TemplateDraft,
    TemplateInvalid,
    UnsafeTemplate,
    builtin_templates,
    choose,
    merged,
    normalize_locale,
)


def draft(body: str, subject: str | None = "s", html: str | None = None) -> TemplateDraft:
    return TemplateDraft("t", Channel.EMAIL, "en", body, subject, html)


def variant(locale: str, channel: Channel = Channel.EMAIL, version: int = 1) -> Template:
    return Template("t", channel, locale, version, f"body {locale}", "s", None, 0.0)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ user.items.__self__ }}",
        "{{ [].__class__.__base__.__subclasses__() }}",
        "{{ lipsum.__globals__['os'] }}",
    ],
)
def test_the_sandbox_refuses_internals(source: str) -> None:
    with pytest.raises(UnsafeTemplate) as caught:
        RENDERER.render(draft(source), {"user": {"name": "x"}})
    assert caught.value.fields[0][0] == "text"


def test_the_sandbox_refuses_huge_ranges_as_a_render_failure() -> None:
    with pytest.raises(RenderFailed, match="Range too big"):
        RENDERER.render(draft("{% for i in range(10**9) %}x{% endfor %}"), {})


def test_autoescape_is_on_in_html_only() -> None:
    data = {"name": "<b>Bo & Co</b>"}
    out = RENDERER.render(draft("Hi {{ name }}", "For {{ name }}", "<p>{{ name }}</p>"), data)
    assert out.body == "Hi <b>Bo & Co</b>"
    assert out.subject == "For <b>Bo & Co</b>"
    assert out.html == "<p>&lt;b&gt;Bo &amp; Co&lt;/b&gt;</p>"


def test_every_missing_variable_is_named_and_optional_ones_are_not() -> None:
    template = draft(
        "{{ a }} {{ b.c }} {% if d is defined %}{{ d }}{% endif %}{{ e | default('-') }}",
        subject="{{ f }}",
    )
    with pytest.raises(MissingVariables) as caught:
        RENDERER.render(template, {})
    assert caught.value.names == ("f", "a", "b")
    assert ("data.a", "is required by template 't'") in caught.value.fields
    assert "needs data it was not given: f, a, b" in str(caught.value)

    with pytest.raises(MissingVariables) as nested:
        RENDERER.render(template, {"a": 1, "b": {}, "f": 2})
    assert nested.value.names == ("c",)

    out = RENDERER.render(template, {"a": 1, "b": {"c": 2}, "f": 3})
    assert (out.subject, out.body) == ("3", "1 2 -")


def test_a_subject_cannot_grow_a_header() -> None:
    out = RENDERER.render(draft("x", "Hi {{ n }}"), {"n": "Bob\r\nBcc: eve@example.com"})
    assert out.subject == "Hi Bob Bcc: eve@example.com"


def test_empty_output_is_refused() -> None:
    with pytest.raises(RenderFailed):
        RENDERER.render(draft("{{ x }}"), {"x": "  "})


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (draft("{{ x "), "text"),
        (draft("ok", subject="{% if %}"), "subject"),
        (draft("ok", html="{% for %}"), "html"),
        (draft("ok", subject=None), "subject"),
        (TemplateDraft("t", Channel.SMS, "en", "ok", subject="s"), "subject"),
        (TemplateDraft("Bad Name", Channel.SMS, "en", "ok"), "name"),
    ],
)
def test_check_names_the_broken_part(bad: TemplateDraft, field: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        RENDERER.check(bad)
    assert caught.value.fields[0][0] == field


def test_locale_fallback_exact_language_english_any() -> None:
    variants = [variant(x) for x in ("de-AT", "en", "fr", "pt-BR")]
    assert choose(variants, Channel.EMAIL, "fr").locale == "fr"  # type: ignore[union-attr]
    assert choose(variants, Channel.EMAIL, "fr-CA").locale == "fr"  # type: ignore[union-attr]
    assert choose(variants, Channel.EMAIL, "pt").locale == "pt-BR"  # type: ignore[union-attr]
    assert choose(variants, Channel.EMAIL, "de-DE").locale == "de-AT"  # type: ignore[union-attr]
    assert choose(variants, Channel.EMAIL, "ja").locale == "en"  # type: ignore[union-attr]
    no_english = [variant(x) for x in ("fr", "de")]
    assert choose(no_english, Channel.EMAIL, "ja").locale == "de"  # type: ignore[union-attr]
    assert choose(variants, Channel.SMS, "en") is None
    both = [variant("en"), variant("fr", Channel.SMS)]
    assert choose(both, Channel.SMS, "en").locale == "fr"  # type: ignore[union-attr]


def test_locales_are_normalised() -> None:
    assert normalize_locale("pt_br") == "pt-BR"
    assert normalize_locale("EN") == "en"
    assert normalize_locale("zh-Hant-TW") == "zh-Hant-TW"
    with pytest.raises(TemplateInvalid):
        normalize_locale("not a locale")


def test_builtins_ship_for_every_builtin_event_and_a_stored_variant_outranks_them() -> None:
    names = {t.name for t in builtin_templates()}
    assert names == {
        "welcome-email",
        "login-alert",
        "password-reset",
        "purchase-receipt",
        "friend-request",
    }
    for t in builtin_templates():
        assert t.version == 0 and t.builtin and t.channel is Channel.EMAIL
        RENDERER.check(TemplateDraft(t.name, t.channel, t.locale, t.body, t.subject, t.html))
    mine = Template("login-alert", Channel.EMAIL, "en", 3, "mine", "s", None, 1.0)
    found = merged([mine], "login-alert")
    assert found == [mine]
    assert len(merged([])) == len(names)


def test_the_receipt_renders_items_and_totals() -> None:
    [receipt] = [t for t in builtin_templates() if t.name == "purchase-receipt"]
    out = RENDERER.render(
        receipt,
        {"orderId": "A1", "total": 6, "currency": "EUR",
         "items": [{"name": "Pen", "quantity": 2, "price": 1.5}]},
    )  # fmt: skip
    assert out.subject == "Your receipt for order A1"
    assert "2 x Pen: 1.50 EUR" in out.body and "Total: 6.00 EUR" in out.body
    assert out.html is not None and "<td>Pen</td>" in out.html

"""The quick reading (``api.intake``) says yes only where ``NotificationIn`` does, with its values.

Every body here goes through both: where the quick reading accepts, the model
must accept and give the same new notification; where the quick reading
answers ``Unplain``, the model decides (and the doors give its answer).
"""

from __future__ import annotations

import json
from typing import Any

import annotated_types
import msgspec
import pytest
from pydantic import ValidationError

from herald.api import intake
from herald.api.bulk import BulkIn
from herald.api.ingest import to_new
from herald.api.schemas import NotificationIn
from herald.models import NewNotification

EMAIL: dict[str, Any] = {
    "type": "EMAIL",
    "recipient": "customer@example.com",
    "subject": "Your order has shipped",
    "message": "Hi there,\n\nit is on its way.",
    "html": "<p>Hi there</p>",
    "priority": "HIGH",
    "metadata": {"userId": "12345", "n": 3, "ok": True, "none": None, "f": 1.5},
}
SMS = {"type": "SMS", "recipient": "+14155550123", "message": "Your code is 123456"}
PUSH = {"type": "PUSH", "recipient": "fcm-token_0123456789:abc", "message": "Hello"}
WEBHOOK = {"type": "WEBHOOK", "recipient": "https://hooks.example.com/x", "message": "{}"}
CHAT = {"type": "CHAT", "recipient": "slack://TOKEN_A/TOKEN_B/TOKEN_C", "message": "Hi"}


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


#: (field, value) changes to a valid body; each is tried on every channel's body.
CHANGES: list[tuple[str, Any]] = [
    ("recipient", ""),
    ("recipient", " customer@example.com "),
    ("recipient", "Customer@EXAMPLE.com"),
    ("recipient", "user@bücher.example"),
    ("recipient", "user@xn--bcher-kva.example"),
    ("recipient", "user@localhost"),
    ("recipient", "user@printer.local"),
    ("recipient", '"quoted local"@example.com'),
    ("recipient", "a\r\n@example.com"),
    ("recipient", "customer@example.com\0"),
    ("recipient", "+1 415 555 0123"),
    ("recipient", "+999"),
    ("recipient", "x" * 4097),
    ("recipient", 12),
    ("recipient", None),
    ("subject", None),
    ("subject", ""),
    ("subject", "   "),
    ("subject", "x" * 998),
    ("subject", "x" * 999),
    ("subject", "line\nbreak"),
    ("subject", "é😀"),
    ("message", ""),
    ("message", "x" * 5000),
    ("message", "x" * 5001),
    ("message", "😀" * 5000),
    ("message", None),
    ("html", None),
    ("html", "<b>x</b>"),
    ("html", 3),
    ("priority", "LOW"),
    ("priority", "CRITICAL"),
    ("priority", "low"),
    ("priority", None),
    ("priority", 1),
    ("type", "email"),
    ("type", "IN_APP"),
    ("type", None),
    ("metadata", {}),
    ("metadata", None),
    ("metadata", []),
    ("metadata", {"a": [1, 2, {"b": None}], "c": {"d": "e"}}),
    ("metadata", {"big": 2**63 - 1, "small": -(2**63)}),
    ("metadata", {"big": 2**64 - 1}),
    ("metadata", {"big": 2**64}),
    ("metadata", {"small": -(2**63) - 1}),
    ("metadata", {"deep": _nested(30)}),
    ("metadata", {"deep": _nested(40)}),
    ("metadata", {"deep": _nested(250)}),
    ("metadata", {"f": 1e308, "g": -0.0, "h": 5e-324}),
    ("scheduledAt", None),
    ("scheduledAt", "2030-01-01T00:00:00Z"),
    ("scheduledAt", "2030-01-01T00:00:00"),
    ("scheduledAt", "1999-01-01T00:00:00Z"),
    ("scheduledAt", 1700000000),
    ("callbackUrl", None),
    ("callbackUrl", "https://cb.example.com/done"),
    ("callbackUrl", "ftp://cb.example.com/done"),
    ("callbackUrl", "https://cb.example.com/a b"),
    ("callbackUrl", "https://" + "x" * 2048),
    ("delaySeconds", None),
    ("delaySeconds", 0),
    ("delaySeconds", 60),
    ("delaySeconds", 31_536_000),
    ("delaySeconds", 31_536_001),
    ("delaySeconds", -1),
    ("delaySeconds", 5.0),
    ("delaySeconds", "5"),
    ("delaySeconds", True),
    ("category", None),
    ("category", "newsletter"),
    ("category", "billing.receipts_2-x"),
    ("category", "0"),
    ("category", "x" * 64),
    ("category", "x" * 65),
    ("category", ""),
    ("category", "News"),
    ("category", "-news"),
    ("category", "news letter"),
    ("category", "news\n"),
    ("category", "né"),
    ("category", 7),
    ("ignoreSuppression", None),
    ("ignoreSuppression", False),
    ("ignoreSuppression", True),
    ("ignoreSuppression", "true"),
    ("ignoreSuppression", 1),
    ("unknown", 1),
]

BODIES = [EMAIL, SMS, PUSH, WEBHOOK, CHAT]
CASES = [json.dumps(body).encode() for body in BODIES] + [
    json.dumps({**body, field: value}).encode() for body in BODIES for field, value in CHANGES
]
RAW_CASES = [
    b'{"type": "SMS", "recipient": "+14155550123", "message": "a", "message": "b"}',
    b'{"type": "SMS", "recipient": "+14155550123", "message": "x", "metadata": {"a": NaN}}',
    b'{"type": "SMS", "recipient": "+14155550123", "message": "x", "metadata": {"a": 1e400}}',
    b'{"type": "SMS", "recipient": "+14155550123", "message": "\\ud800"}',
    b'{"type": "SMS", "recipient": "+14155550123", "message": "x"} trailing',
    b'\xef\xbb\xbf{"type": "SMS", "recipient": "+14155550123", "message": "x"}',
    b'{"type": "SMS", "recipient": "+14155550123", "message": "\xff"}',
    b"[]",
    b"null",
    b"",
]


def _model(raw: bytes) -> NewNotification | None:
    try:
        return to_new(NotificationIn.model_validate_json(raw), "t1")
    except ValidationError:
        return None


def _same(quick: NewNotification, model: NewNotification) -> None:
    if model.scheduled_at is None:
        assert quick == model
        return
    assert quick.scheduled_at == pytest.approx(model.scheduled_at, abs=5)
    assert {**_fields(quick), "scheduled_at": 0} == {**_fields(model), "scheduled_at": 0}


def _fields(new: NewNotification) -> dict[str, Any]:
    return {name: getattr(new, name) for name in NewNotification.__slots__}


@pytest.mark.parametrize("raw", CASES + RAW_CASES)
def test_one_accepts_only_what_the_model_accepts_alike(raw: bytes) -> None:
    model = _model(raw)
    try:
        quick = intake.one(raw, "t1")
    except intake.Unplain:
        return
    assert model is not None, "the quick reading accepted a body the model refuses"
    _same(quick, model)


def test_plain_bodies_take_the_quick_reading() -> None:
    for body in BODIES:
        intake.one(json.dumps(body).encode(), "t1")


def test_category_and_ignore_suppression_are_read_by_both() -> None:
    raw = json.dumps({**SMS, "category": "alerts", "ignoreSuppression": True}).encode()
    quick = intake.one(raw, "t1")
    assert (quick.category, quick.ignore_suppression) == ("alerts", True)
    assert _model(raw) == quick
    plain = intake.one(json.dumps(SMS).encode(), "t1")
    assert (plain.category, plain.ignore_suppression) == (None, False)


@pytest.mark.parametrize("category", ["News", "news\n", "", "a b", "x" * 65])
def test_a_category_that_is_not_a_slug_is_refused_by_both(category: str) -> None:
    raw = json.dumps({**SMS, "category": category}).encode()
    assert _model(raw) is None
    with pytest.raises(intake.Unplain):
        intake.one(raw, "t1")


@pytest.mark.parametrize("raw", CASES[:40])
def test_bulk_reading_agrees_with_the_model(raw: bytes) -> None:
    bulk = b'{"notifications": [' + b",".join([raw, json.dumps(SMS).encode()]) + b"]}"
    try:
        model: list[NewNotification] | None = [
            to_new(item, "t1") for item in BulkIn.model_validate_json(bulk).notifications
        ]
    except ValidationError:
        model = None
    try:
        quick = [intake.checked(b, "t1", 0.0) for b in intake.bulk(bulk)]
    except intake.Unplain:
        return
    assert model is not None
    for q, m in zip(quick, model, strict=True):
        _same(q, m)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"notifications": []}',
        b'{"notifications": {}}',
        b'{"notifications": [], "other": 1}',
        b'{"other": 1}',
        b'{"notifications": [' + b",".join([json.dumps(SMS).encode()] * 1001) + b"]}",
    ],
)
def test_bulk_bodies_the_model_words(raw: bytes) -> None:
    with pytest.raises(intake.Unplain):
        intake.bulk(raw)


def test_bounds_match_the_model() -> None:
    """Each field's length and range bounds, and which fields may be null, are the model's."""
    info = msgspec.inspect.type_info(intake.NotificationBody)
    assert isinstance(info, msgspec.inspect.StructType)
    quick = {field.name: field for field in info.fields}
    assert set(quick) == set(NotificationIn.model_fields)
    for name, field in NotificationIn.model_fields.items():
        bounds: dict[str, int] = {}
        for rule in field.metadata:
            if isinstance(rule, annotated_types.MinLen):
                bounds["min_length"] = rule.min_length
            elif isinstance(rule, annotated_types.MaxLen):
                bounds["max_length"] = rule.max_length
            elif isinstance(rule, annotated_types.Ge):
                bounds["ge"] = int(rule.ge)  # type: ignore[call-overload]
            elif isinstance(rule, annotated_types.Le):
                bounds["le"] = int(rule.le)  # type: ignore[call-overload]
        assert _msgspec_bounds(quick[name].type) == bounds, name
        assert quick[name].required == field.is_required(), name


def _msgspec_bounds(kind: msgspec.inspect.Type) -> dict[str, int]:
    if isinstance(kind, msgspec.inspect.UnionType):
        found: dict[str, int] = {}
        for member in kind.types:
            found.update(_msgspec_bounds(member))
        return found
    names = ("min_length", "max_length", "ge", "le")
    return {n: getattr(kind, n) for n in names if getattr(kind, n, None) is not None}

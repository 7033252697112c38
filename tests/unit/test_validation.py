"""Validation of POST /api/notifications bodies, field by field (seed 004's rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from herald.api.errors import validation_body
from herald.api.schemas import NotificationIn

GOOD: dict[str, Any] = {
    "type": "EMAIL",
    "recipient": "user@example.com",
    "subject": "Welcome",
    "message": "Thank you for signing up!",
}


def fields_of(payload: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        NotificationIn.model_validate(payload)
    status, body = validation_body(caught.value.errors())
    assert status == 422 and body["success"] is False
    return {e["field"]: e["message"] for e in body["errors"]}


def test_minimal_email_gets_defaults() -> None:
    body = NotificationIn.model_validate(GOOD)
    assert body.priority == "MEDIUM"
    assert body.metadata == {}
    assert body.scheduledAt is None


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"type": "FAX"}, "type", "EMAIL"),
        ({"type": None}, "type", ""),
        ({"recipient": "not-an-address"}, "recipient", "email"),
        ({"recipient": ""}, "recipient", "at least 1"),
        ({"subject": None}, "subject", "required for EMAIL"),
        ({"subject": "   "}, "subject", "required for EMAIL"),
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject", "line breaks"),
        ({"subject": "x" * 999}, "subject", "at most 998"),
        ({"message": ""}, "message", "at least 1"),
        ({"message": "x" * 5001}, "message", "at most 5000"),
        ({"priority": "URGENT"}, "priority", "CRITICAL"),
        ({"metadata": ["not", "an", "object"]}, "metadata", "dictionary"),
        ({"metadata": {"big": 2**70}}, "metadata", "64-bit"),
        ({"scheduledAt": "next tuesday"}, "scheduledAt", "datetime"),
        ({"colour": "blue"}, "colour", "not permitted"),
    ],
)
def test_each_field_is_checked_and_named(change: dict[str, Any], field: str, fragment: str) -> None:
    errors = fields_of({**GOOD, **change})
    assert field in errors, errors
    assert fragment in errors[field]


def test_missing_required_fields_are_each_named() -> None:
    errors = fields_of({})
    assert {"type", "recipient", "message"} <= set(errors)


def test_message_of_exactly_5000_is_fine() -> None:
    NotificationIn.model_validate({**GOOD, "message": "x" * 5000})


def test_sms_recipient_is_normalised_to_e164() -> None:
    body = NotificationIn.model_validate(
        {"type": "SMS", "recipient": "+1 415 555 0123", "message": "code 1234"}
    )
    assert body.recipient == "+14155550123"
    assert body.subject is None


@pytest.mark.parametrize("number", ["4155550123", "+1 555", "+99912345678", "phone"])
def test_sms_recipient_must_be_a_valid_number(number: str) -> None:
    assert "E.164" in fields_of({"type": "SMS", "recipient": number, "message": "x"})["recipient"]


def test_push_token_rules() -> None:
    NotificationIn.model_validate({"type": "PUSH", "recipient": "fcm:abcDEF123_-", "message": "x"})
    errors = fields_of({"type": "PUSH", "recipient": "has space in it", "message": "x"})
    assert "device token" in errors["recipient"]


def test_webhook_and_chat_recipients() -> None:
    NotificationIn.model_validate(
        {"type": "WEBHOOK", "recipient": "https://example.com/h", "message": "x"}
    )
    NotificationIn.model_validate({"type": "CHAT", "recipient": "slack://a/b/c", "message": "x"})
    assert (
        "http"
        in fields_of({"type": "WEBHOOK", "recipient": "ftp://x", "message": "x"})["recipient"]
    )
    assert "URL" in fields_of({"type": "CHAT", "recipient": "nope", "message": "x"})["recipient"]


def test_recipient_with_line_break_is_refused_for_every_type() -> None:
    errors = fields_of({**GOOD, "recipient": "user@example.com\r\nBcc: x@example.com"})
    assert "line breaks" in errors["recipient"]


def test_html_only_for_email() -> None:
    NotificationIn.model_validate({**GOOD, "html": "<p>hi</p>"})
    errors = fields_of({"type": "SMS", "recipient": "+14155550123", "message": "x", "html": "<b>"})
    assert "only for EMAIL" in errors["html"]


def test_naive_schedule_is_taken_as_utc() -> None:
    soon = (datetime.now(UTC) + timedelta(days=30)).replace(tzinfo=None, microsecond=0)
    body = NotificationIn.model_validate({**GOOD, "scheduledAt": soon.isoformat()})
    assert body.scheduledAt is not None and body.scheduledAt.utcoffset() is not None


def test_broken_json_is_a_400_naming_the_body() -> None:
    with pytest.raises(ValidationError) as caught:
        NotificationIn.model_validate_json(b'{"type": "EMAIL",')
    status, body = validation_body(caught.value.errors())
    assert status == 400
    assert body["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    "address",
    ["Foo.Bar@Example.COM", "user+tag@mail.example.org", "x@foo.test", "a@sub.localhost",
     "a..b@x.com", "a@-x.com", ".a@x.com", '"quoted"@x.com', "ü@x.com", "a@xn--bcher-kva.com",
     "a@b.c", "a@123.com", "a" * 65 + "@x.com", "a@" + "b" * 64 + ".com"],
)  # fmt: skip
def test_plain_address_shortcut_agrees_with_email_validator(address: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    from herald.api.validation import email

    try:
        expected: str | None = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        got: str | None = email(address)
    except ValueError:
        got = None
    assert got == expected


def test_push_takes_a_web_push_subscription() -> None:
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()  # noqa: E731
    subscription = json.dumps({"endpoint": "https://push.example.com/abc",
                               "keys": {"p256dh": b64(point), "auth": b64(b"0" * 16)}})  # fmt: skip
    body = NotificationIn.model_validate(
        {"type": "PUSH", "recipient": subscription, "message": "x"}
    )
    assert body.recipient == subscription
    broken = subscription.replace("https://push", "ftp://push")
    errors = fields_of({"type": "PUSH", "recipient": broken, "message": "x"})
    assert "endpoint" in errors["recipient"]


def test_chat_refuses_generic_http_urls() -> None:
    errors = fields_of({"type": "CHAT", "recipient": "json://10.0.0.1/hook", "message": "x"})
    assert "WEBHOOK" in errors["recipient"]

"""Mailgun webhooks, signed with a webhook signing key the test makes up."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from herald.receipts import Inbound, ReceiptKind, ReceiptRefused, ReceiptReplayed, SeenSet, mailgun

NOW = 1_760_000_000.0
KEY = "key-test-webhook-signing-0123456789"
HEADER_ID = "20251009085310.1.ABCDEF@herald.example.com"


def signature(
    key: str = KEY, stamp: str | None = None, token: str = "t" * 50, parent: str | None = None
) -> dict[str, str]:
    stamp = stamp or str(int(NOW) - 2)
    made = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    signed = {"timestamp": stamp, "token": token, "signature": made}
    if parent is not None:
        signed["signature"] = "0" * 64  # the subaccount's own key, not ours
        signed["parent-signature"] = hmac.new(
            parent.encode(), (stamp + token).encode(), hashlib.sha256
        ).hexdigest()
    return signed


def event_data(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{name}",
        "timestamp": NOW - 5.25,
        "log-level": "info",
        "event": name,
        "recipient": "ann@example.com",
        "recipient-domain": "example.com",
        "message": {
            "headers": {
                "to": "ann@example.com",
                "message-id": HEADER_ID,
                "from": "herald@example.com",
                "subject": "Welcome",
            },
            "attachments": [],
            "size": 1024,
        },
        "delivery-status": {"code": 250, "message": "OK", "description": ""},
        **fields,
    }


def request(payload: Any) -> Inbound:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Inbound(
        "https://herald.example.com/api/receipts/mailgun",
        {"Content-Type": "application/json"},
        body,
    )


def verify(inbound: Inbound, seen: SeenSet | None = None, now: float = NOW) -> list[Any]:
    return mailgun.verify(
        inbound, signing_key=KEY, now=now, seen=SeenSet() if seen is None else seen
    )


@pytest.mark.parametrize(
    ("name", "fields", "kind"),
    [
        ("delivered", {}, ReceiptKind.DELIVERED),
        ("failed", {"severity": "permanent", "reason": "bounce"}, ReceiptKind.BOUNCED),
        ("failed", {"severity": "temporary", "reason": "generic"}, ReceiptKind.SOFT_BOUNCE),
        ("complained", {}, ReceiptKind.COMPLAINED),
        ("unsubscribed", {}, ReceiptKind.UNSUBSCRIBED),
        ("opened", {}, ReceiptKind.OTHER),
        ("accepted", {}, ReceiptKind.OTHER),
    ],
)
def test_a_signed_event_yields_its_kind(
    name: str, fields: dict[str, Any], kind: ReceiptKind
) -> None:
    [event] = verify(request({"signature": signature(), "event-data": event_data(name, **fields)}))
    assert (event.kind, event.raw_type, event.recipient) == (kind, name, "ann@example.com")
    assert event.message_id == f"<{HEADER_ID}>"
    assert (event.at, event.event_id) == (NOW - 5.25, f"evt-{name}")


def test_a_permanent_failure_keeps_its_diagnostic() -> None:
    status = {"code": 550, "message": "5.1.1 user unknown", "description": "No such mailbox"}
    data = event_data(
        "failed", severity="permanent", reason="bounce", **{"delivery-status": status}
    )
    [event] = verify(request({"signature": signature(), "event-data": data}))
    assert event.detail == "permanent bounce 550 No such mailbox"


def test_a_parent_account_signature_is_accepted() -> None:
    payload = {"signature": signature(parent=KEY), "event-data": event_data("delivered")}
    assert verify(request(payload))[0].kind is ReceiptKind.DELIVERED


def test_a_signature_by_another_key_is_refused() -> None:
    payload = {"signature": signature(key="someone-elses-key"), "event-data": event_data("failed")}
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(request(payload))


@pytest.mark.parametrize("field", ["timestamp", "token"])
def test_a_modified_signed_field_is_refused(field: str) -> None:
    signed = signature()
    signed[field] = str(int(NOW) - 1) if field == "timestamp" else "u" * 50
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(request({"signature": signed, "event-data": event_data("delivered")}))


@pytest.mark.parametrize("offset", [-mailgun.WINDOW - 1, mailgun.WINDOW + 1])
def test_a_timestamp_outside_the_window_is_refused(offset: float) -> None:
    payload = {
        "signature": signature(stamp=str(int(NOW + offset))),
        "event-data": event_data("delivered"),
    }
    with pytest.raises(ReceiptRefused, match="outside"):
        verify(request(payload))


def test_a_replayed_token_is_refused_even_with_another_event() -> None:
    # Mailgun signs the timestamp and token, not the event: a token is good once.
    seen = SeenSet()
    signed = signature()
    verify(request({"signature": signed, "event-data": event_data("delivered")}), seen)
    forged = {"signature": signed, "event-data": event_data("failed", severity="permanent")}
    with pytest.raises(ReceiptReplayed, match="token"):
        verify(request(forged), seen)
    fresh = {"signature": signature(token="v" * 50), "event-data": event_data("opened")}
    assert verify(request(fresh), seen)[0].kind is ReceiptKind.OTHER


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"signature=abc&token=def", "not JSON"),
        ({"event-data": event_data("delivered")}, "signature is not a JSON object"),
        ({"signature": {**signature(), "timestamp": "soon"}}, "not epoch seconds"),
        ({"signature": {**signature(), "signature": "zz" * 32}}, "not a hex HMAC-SHA256"),
        ({"signature": {k: v for k, v in signature().items() if k != "signature"}}, "missing"),
        ({"signature": {**signature(), "token": "t" * 300}}, "token is longer"),
        ({"signature": signature()}, "event-data is not a JSON object"),
        (
            {"signature": signature(), "event-data": {**event_data("delivered"), "message": {}}},
            "headers is not a JSON object",
        ),
        (
            {"signature": signature(), "event-data": event_data("delivered", timestamp="now")},
            "event-data.timestamp",
        ),
        (b" " * (mailgun.MAX_BODY + 1), "larger than"),
    ],
)
def test_malformed_or_oversized_webhooks_are_refused(payload: Any, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        verify(request(payload))

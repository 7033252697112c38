"""Postmark webhooks, authenticated by the HTTP Basic credentials configured per endpoint."""

from __future__ import annotations

import json
from base64 import b64encode
from datetime import UTC, datetime
from typing import Any

import pytest

from herald.receipts import Inbound, ReceiptKind, ReceiptRefused, ReceiptReplayed, SeenSet, postmark

NOW = 1_760_000_000.0
USER, PASSWORD = "postmark-hooks", "s3cret-pa55word:with-colon"
MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"


def at(offset: float) -> str:
    return datetime.fromtimestamp(NOW + offset, UTC).isoformat().replace("+00:00", "Z")


def delivery(**fields: Any) -> dict[str, Any]:
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": MESSAGE_ID,
        "Recipient": "ann@example.com",
        "Tag": "welcome",
        "DeliveredAt": at(-60),
        "Details": "Test delivery webhook details",
        "Metadata": {"a_key": "a_value"},
        **fields,
    }


def bounce(bounce_type: str = "HardBounce", inactive: bool = True, **fields: Any) -> dict[str, Any]:
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": 4323372036854775807,
        "Type": bounce_type,
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "welcome",
        "MessageID": MESSAGE_ID,
        "ServerID": 23,
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 user unknown",
        "Email": "ann@example.com",
        "From": "herald@example.com",
        "BouncedAt": at(-30),
        "DumpAvailable": True,
        "Inactive": inactive,
        "CanActivate": True,
        "Subject": "Welcome",
        "Content": "Return-Path:<>...",
        **fields,
    }


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


def request(record: Any, authorization: str | None = None) -> Inbound:
    headers = {"Content-Type": "application/json"}
    headers["Authorization"] = basic() if authorization is None else authorization
    body = record if isinstance(record, bytes) else json.dumps(record).encode()
    return Inbound("https://herald.example.com/api/receipts/postmark", headers, body)


def verify(inbound: Inbound, seen: SeenSet | None = None) -> list[Any]:
    return postmark.verify(
        inbound,
        username=USER,
        password=PASSWORD,
        now=NOW,
        seen=SeenSet() if seen is None else seen,
    )


def test_a_delivery_yields_delivered() -> None:
    [event] = verify(request(delivery()))
    assert event == postmark.ReceiptEvent(
        provider="postmark",
        message_id=MESSAGE_ID,
        kind=ReceiptKind.DELIVERED,
        raw_type="Delivery",
        at=NOW - 60,
        recipient="ann@example.com",
        detail="Test delivery webhook details",
        event_id=None,
    )


@pytest.mark.parametrize(
    ("bounce_type", "inactive", "kind"),
    [
        ("HardBounce", True, ReceiptKind.BOUNCED),
        ("HardBounce", False, ReceiptKind.BOUNCED),
        ("BadEmailAddress", False, ReceiptKind.BOUNCED),
        ("SoftBounce", False, ReceiptKind.SOFT_BOUNCE),
        ("Transient", False, ReceiptKind.SOFT_BOUNCE),
        ("DnsError", False, ReceiptKind.SOFT_BOUNCE),
        ("Blocked", False, ReceiptKind.SOFT_BOUNCE),
        # Postmark deactivated the address: it will not send there again.
        ("SoftBounce", True, ReceiptKind.BOUNCED),
        ("Unsubscribe", False, ReceiptKind.UNSUBSCRIBED),
        ("AutoResponder", False, ReceiptKind.OTHER),
        ("SpamNotification", False, ReceiptKind.COMPLAINED),
    ],
)
def test_bounces_by_type_and_inactive_flag(
    bounce_type: str, inactive: bool, kind: ReceiptKind
) -> None:
    [event] = verify(request(bounce(bounce_type, inactive)))
    assert (event.kind, event.raw_type, event.recipient) == (kind, "Bounce", "ann@example.com")
    assert event.event_id == "4323372036854775807"
    assert event.at == pytest.approx(NOW - 30)
    assert event.detail is not None and event.detail.startswith(bounce_type)
    assert ("(address deactivated)" in event.detail) is inactive


def test_a_spam_complaint_and_a_manual_suppression() -> None:
    [event] = verify(request(bounce("SpamComplaint", RecordType="SpamComplaint")))
    assert event.kind is ReceiptKind.COMPLAINED
    change = {
        "RecordType": "SubscriptionChange",
        "MessageID": MESSAGE_ID,
        "ServerID": 23,
        "MessageStream": "broadcast",
        "ChangedAt": at(-5),
        "Recipient": "ann@example.com",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
    }
    [event] = verify(request(change))
    assert (event.kind, event.detail) == (ReceiptKind.UNSUBSCRIBED, "ManualSuppression")
    [event] = verify(request({**change, "SuppressSending": False, "SuppressionReason": None}))
    assert (event.kind, event.detail) == (ReceiptKind.OTHER, "reactivated")


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (basic(password="wrong"), "not the ones configured"),
        (basic(user="someone"), "not the ones configured"),
        ("Basic " + b64encode(USER.encode()).decode(), "not the ones configured"),
        ("Bearer " + PASSWORD, "not HTTP Basic"),
        ("Basic ***", "not base64"),
        ("", "Authorization is missing"),
        ("Basic " + "A" * 2000, "longer than"),
    ],
)
def test_wrong_or_missing_credentials_are_refused(authorization: str, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        verify(request(delivery(), authorization))


def test_a_record_older_than_the_window_or_from_the_future_is_refused() -> None:
    with pytest.raises(ReceiptRefused, match="outside the window"):
        verify(request(bounce(BouncedAt=at(-postmark.MAX_AGE - 1))))
    with pytest.raises(ReceiptRefused, match="outside the window"):
        verify(request(delivery(DeliveredAt=at(postmark.SKEW + 60))))


def test_a_replayed_record_is_refused() -> None:
    seen = SeenSet()
    verify(request(bounce()), seen)
    with pytest.raises(ReceiptReplayed):
        verify(request(bounce()), seen)
    # The same message's next record is not a replay.
    assert verify(request(delivery()), seen)[0].kind is ReceiptKind.DELIVERED


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"RecordType": "Inbound"}).encode(), "not one Herald takes"),
        (json.dumps(delivery(MessageID=None)).encode(), "MessageID is missing"),
        (json.dumps(delivery(DeliveredAt="whenever")).encode(), "DeliveredAt is not an ISO"),
        (json.dumps(bounce(Type=None)).encode(), "Type is missing"),
        (json.dumps(delivery(Recipient="a" * 600)).encode(), "recipient is too long"),
        (b" " * (postmark.MAX_BODY + 1), "larger than"),
    ],
)
def test_malformed_or_oversized_records_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        verify(request(body))

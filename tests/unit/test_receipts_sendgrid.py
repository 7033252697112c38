"""SendGrid's signed Event Webhook, with an ECDSA P-256 key pair the test generates."""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from herald.errors import ConfigError
from herald.receipts import Inbound, ReceiptKind, ReceiptRefused, ReceiptReplayed, SeenSet, sendgrid

NOW = 1_760_000_000.0
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
#: As SendGrid's settings page shows it: base64 DER, no PEM armour.
VERIFICATION_KEY = b64encode(
    SIGNING_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()
SMTP_ID = "<171234.5678.abcdef@herald.example.com>"
SG_ID = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"


def event(name: str, **fields: Any) -> dict[str, Any]:
    base = {
        "email": "ann@example.com",
        "timestamp": 1_759_999_990,
        "smtp-id": SMTP_ID,
        "event": name,
        "category": ["welcome"],
        "sg_event_id": f"evt-{name}",
        "sg_message_id": SG_ID,
    }
    return {**base, **fields}


def signed(
    body: bytes, stamp: str | None = None, key: ec.EllipticCurvePrivateKey = SIGNING_KEY
) -> Inbound:
    stamp = stamp or str(int(NOW) - 5)
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return Inbound(
        url="https://herald.example.com/api/receipts/sendgrid",
        headers={
            "Content-Type": "application/json",
            sendgrid.SIGNATURE_HEADER: b64encode(signature).decode(),
            sendgrid.TIMESTAMP_HEADER: stamp,
        },
        body=body,
    )


def verify(inbound: Inbound, seen: SeenSet | None = None, now: float = NOW) -> list[Any]:
    return sendgrid.verify(
        inbound,
        public_key=sendgrid.public_key(VERIFICATION_KEY),
        now=now,
        seen=SeenSet() if seen is None else seen,
    )


def test_a_signed_batch_yields_each_event_in_order() -> None:
    batch = [
        event("processed"),
        event("delivered", response="250 OK"),
        event("deferred", response="451 try later", attempt="2"),
        event("bounce", type="bounce", status="5.1.1", reason="550 5.1.1 no such user"),
        event("bounce", type="blocked", status="5.7.1", reason="550 blocked by policy"),
        event("dropped", reason="Bounced Address"),
        event("spamreport"),
        event("unsubscribe"),
        event("group_unsubscribe", asm_group_id=7),
    ]
    events = verify(signed(json.dumps(batch).encode()))
    assert [(e.raw_type, e.kind) for e in events] == [
        ("processed", ReceiptKind.OTHER),
        ("delivered", ReceiptKind.DELIVERED),
        ("deferred", ReceiptKind.DEFERRED),
        ("bounce", ReceiptKind.BOUNCED),
        ("bounce", ReceiptKind.SOFT_BOUNCE),
        ("dropped", ReceiptKind.BOUNCED),
        ("spamreport", ReceiptKind.COMPLAINED),
        ("unsubscribe", ReceiptKind.UNSUBSCRIBED),
        ("group_unsubscribe", ReceiptKind.UNSUBSCRIBED),
    ]
    assert {e.message_id for e in events} == {SMTP_ID}
    assert {e.recipient for e in events} == {"ann@example.com"}
    assert events[1].at == 1_759_999_990.0
    assert events[1].event_id == "evt-delivered"
    assert events[3].detail == "bounce 5.1.1 550 5.1.1 no such user"
    assert events[5].detail == "Bounced Address"


def test_message_ids_are_bracketed_or_taken_from_sg_message_id() -> None:
    batch = [
        event("delivered", **{"smtp-id": "171234.5678.abcdef@herald.example.com"}),
        {k: v for k, v in event("open").items() if k != "smtp-id"},
    ]
    first, second = verify(signed(json.dumps(batch).encode()))
    assert first.message_id == SMTP_ID
    assert second.message_id == "14c5d75ce93"


def test_an_empty_batch_yields_nothing() -> None:
    assert verify(signed(b"[]")) == []


def test_a_signature_by_another_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(signed(json.dumps([event("delivered")]).encode(), key=other))


def test_a_modified_body_is_refused() -> None:
    good = signed(json.dumps([event("bounce", type="bounce")]).encode())
    forged = json.dumps([event("delivered")]).encode()
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(Inbound(good.url, good.headers, forged))


def test_a_modified_timestamp_is_refused() -> None:
    good = signed(b"[]")
    headers = {**good.headers, sendgrid.TIMESTAMP_HEADER.lower(): str(int(NOW) - 4)}
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(Inbound(good.url, headers, good.body))


@pytest.mark.parametrize("offset", [-sendgrid.WINDOW - 1, sendgrid.WINDOW + 1])
def test_a_timestamp_outside_the_window_is_refused(offset: float) -> None:
    with pytest.raises(ReceiptRefused, match="outside"):
        verify(signed(b"[]", stamp=str(int(NOW + offset))))


def test_a_replayed_batch_is_refused() -> None:
    seen = SeenSet()
    inbound = signed(json.dumps([event("delivered")]).encode())
    verify(inbound, seen)
    with pytest.raises(ReceiptReplayed):
        verify(inbound, seen)
    # SendGrid's retry is signed again: a fresh signature over the same body is taken.
    assert verify(signed(inbound.body), seen)[0].kind is ReceiptKind.DELIVERED


def test_missing_headers_are_refused() -> None:
    good = signed(b"[]")
    for name in (sendgrid.SIGNATURE_HEADER, sendgrid.TIMESTAMP_HEADER):
        headers = {k: v for k, v in good.headers.items() if k != name.lower()}
        with pytest.raises(ReceiptRefused, match=f"{name} is missing"):
            verify(Inbound(good.url, headers, good.body))


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        (sendgrid.SIGNATURE_HEADER, "***not base64***", "not base64"),
        (sendgrid.SIGNATURE_HEADER, "QUJD" * 100, "longer than"),
        (sendgrid.TIMESTAMP_HEADER, "yesterday", "not epoch seconds"),
    ],
)
def test_malformed_headers_are_refused(header: str, value: str, reason: str) -> None:
    good = signed(b"[]")
    with pytest.raises(ReceiptRefused, match=reason):
        verify(Inbound(good.url, {**good.headers, header.lower(): value}, good.body))


def test_a_batch_over_the_limit_is_refused() -> None:
    batch = [event("delivered", sg_event_id=f"e{i}") for i in range(sendgrid.MAX_EVENTS + 1)]
    with pytest.raises(ReceiptRefused, match="1001 events, more than 1000"):
        verify(signed(json.dumps(batch).encode()))
    batch.pop()
    assert len(verify(signed(json.dumps(batch).encode()))) == sendgrid.MAX_EVENTS


def test_an_oversized_body_is_refused_before_its_signature_is_checked() -> None:
    with pytest.raises(ReceiptRefused, match="larger than"):
        verify(signed(b" " * (sendgrid.MAX_BODY + 1)))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"event": "delivered"}', "not a JSON array"),
        (b"[1]", "event 0 is not a JSON object"),
        (
            json.dumps([event("delivered"), {"email": "a@b.c"}]).encode(),
            "event 1: event is missing",
        ),
        (json.dumps([event("delivered", timestamp="soon")]).encode(), "event 0: timestamp"),
        (json.dumps([event("delivered", timestamp=True)]).encode(), "event 0: timestamp"),
        (
            json.dumps([{"event": "open", "timestamp": 1_759_999_990}]).encode(),
            "neither smtp-id nor sg_message_id",
        ),
        (json.dumps([event("delivered", email=["x"])]).encode(), "email is not a string"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),
    ],
)
def test_malformed_batches_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        verify(signed(body))


def test_the_verification_key_is_read_from_der_or_pem_and_must_be_p256() -> None:
    pem = SIGNING_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert sendgrid.public_key(pem.decode()).public_numbers() == (
        SIGNING_KEY.public_key().public_numbers()
    )
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_der = rsa_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ConfigError, match="not an ECDSA P-256"):
        sendgrid.public_key(b64encode(rsa_der).decode())
    with pytest.raises(ConfigError, match="cannot be read"):
        sendgrid.public_key("bm90IGEga2V5")

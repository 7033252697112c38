"""SES notifications through SNS, signed with an RSA key and a self-signed certificate
the test generates, served to the verifier through the injected fetch."""

from __future__ import annotations

import json
from base64 import b64encode
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from herald.receipts import Inbound, ReceiptKind, ReceiptRefused, ReceiptReplayed, SeenSet, ses, sns

NOW = 1_760_000_000.0
TOPIC = "arn:aws:sns:eu-west-1:123456789012:herald-ses"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
HERALD_ID = "<171234.5678.abcdef@herald.example.com>"
SES_ID = "0102018f00000000-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee-000000"


def certificate(key: rsa.RSAPrivateKey, start: float, end: float) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.fromtimestamp(start, UTC))
        .not_valid_after(datetime.fromtimestamp(end, UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = certificate(KEY, NOW - 86400, NOW + 30 * 86400)


class Fetcher:
    """The injected fetch: serves certificates by URL and counts its calls."""

    def __init__(self, served: dict[str, bytes] | None = None) -> None:
        self.served = {CERT_URL: PEM} if served is None else served
        self.calls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.served[url]


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def envelope(
    message: str | dict[str, Any],
    *,
    kind: str = "Notification",
    version: str = "1",
    at: float = NOW - 3,
    key: rsa.RSAPrivateKey = KEY,
    **fields: str,
) -> dict[str, str]:
    """An SNS message as SNS posts it, signed the way the SNS documentation describes."""
    record = {
        "Type": kind,
        "MessageId": fields.pop("MessageId", "6a1e0e5e-7f31-5b7c-9a1c-0e1f2a3b4c5d"),
        "TopicArn": TOPIC,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": stamp(at),
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **fields,
    }
    if kind == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    canonical = "".join(f"{n}\n{record[n]}\n" for n in names if n in record)
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(canonical.encode(), padding.PKCS1v15(), digest)
    return {**record, "Signature": b64encode(signature).decode()}


def inbound(record: dict[str, str], **headers: str) -> Inbound:
    head = {"x-amz-sns-message-type": record.get("Type", ""), "content-type": "text/plain"}
    return Inbound(
        "https://herald.example.com/api/receipts/ses",
        {**head, **headers},
        json.dumps(record).encode(),
    )


async def verify(
    request: Inbound,
    *,
    fetch: Fetcher | None = None,
    seen: SeenSet | None = None,
    cache: sns.CertificateCache | None = None,
    hosts: tuple[str, ...] = sns.AMAZON_HOSTS,
) -> Any:
    return await ses.verify(
        request,
        topics={TOPIC},
        fetch=Fetcher() if fetch is None else fetch,
        certificates=sns.CertificateCache() if cache is None else cache,
        now=NOW,
        seen=SeenSet() if seen is None else seen,
        hosts=hosts,
    )


def mail(**extra: Any) -> dict[str, Any]:
    return {
        "timestamp": "2025-10-09T08:53:10.000Z",
        "messageId": SES_ID,
        "source": "herald@example.com",
        "destination": ["ann@example.com", "bob@example.com"],
        "commonHeaders": {"from": ["herald@example.com"], "messageId": HERALD_ID},
        **extra,
    }


def bounce(bounce_type: str, sub_type: str = "General") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {
                    "emailAddress": "ann@example.com",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                },
                {"emailAddress": "bob@example.com"},
            ],
            "timestamp": "2025-10-09T08:53:12.500Z",
            "feedbackId": "0102018f-feedback-000000",
        },
        "mail": mail(),
    }


@pytest.mark.parametrize("version", ["1", "2"])
async def test_a_signed_delivery_yields_one_event_per_recipient(version: str) -> None:
    record = {
        "notificationType": "Delivery",
        "mail": mail(),
        "delivery": {
            "timestamp": "2025-10-09T08:53:11.250Z",
            "recipients": ["ann@example.com", "bob@example.com"],
            "smtpResponse": "250 2.6.0 Message received",
        },
    }
    events = await verify(inbound(envelope(record, version=version, Subject="Amazon SES")))
    assert [(e.kind, e.recipient) for e in events] == [
        (ReceiptKind.DELIVERED, "ann@example.com"),
        (ReceiptKind.DELIVERED, "bob@example.com"),
    ]
    first = events[0]
    assert (first.provider, first.message_id, first.raw_type) == ("ses", HERALD_ID, "Delivery")
    assert first.at == datetime(2025, 10, 9, 8, 53, 11, 250000, UTC).timestamp()
    assert first.detail == "250 2.6.0 Message received"


@pytest.mark.parametrize(
    ("bounce_type", "kind"),
    [
        ("Permanent", ReceiptKind.BOUNCED),
        ("Transient", ReceiptKind.SOFT_BOUNCE),
        ("Undetermined", ReceiptKind.SOFT_BOUNCE),
    ],
)
async def test_bounces_by_type_one_event_per_bounced_recipient(
    bounce_type: str, kind: ReceiptKind
) -> None:
    ann, bob = await verify(inbound(envelope(bounce(bounce_type))))
    assert (ann.kind, ann.recipient, bob.recipient) == (kind, "ann@example.com", "bob@example.com")
    assert ann.detail == f"{bounce_type}/General 5.1.1 smtp; 550 5.1.1 user unknown"
    assert ann.event_id == bob.event_id == "0102018f-feedback-000000"


async def test_complaints_and_event_publishing_records() -> None:
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "ann@example.com"}],
            "timestamp": "2025-10-09T09:00:00Z",
            "feedbackId": "fb-1",
            "complaintFeedbackType": "abuse",
        },
        "mail": mail(),
    }
    [event] = await verify(inbound(envelope(complaint)))
    assert (event.kind, event.raw_type, event.detail) == (
        ReceiptKind.COMPLAINED,
        "Complaint",
        "abuse",
    )
    opened = {"eventType": "Open", "mail": mail(), "open": {"timestamp": "2025-10-09T09:00:00Z"}}
    [event] = await verify(inbound(envelope(opened, MessageId="m-2")))
    assert (event.kind, event.recipient, event.event_id) == (ReceiptKind.OTHER, None, "m-2")


async def test_without_the_original_header_the_ses_message_id_is_used() -> None:
    record = bounce("Permanent")
    record["mail"] = mail(commonHeaders={"from": ["herald@example.com"]})
    events = await verify(inbound(envelope(record)))
    assert {e.message_id for e in events} == {SES_ID}


async def test_a_subscription_confirmation_is_returned_for_the_caller() -> None:
    url = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc"
    record = envelope(
        "You have chosen to subscribe",
        kind="SubscriptionConfirmation",
        SubscribeURL=url,
        Token="abc",
    )
    result = await verify(inbound(record))
    assert result == sns.SubscriptionConfirmation(TOPIC, url, record["MessageId"])
    record = envelope(
        "You have chosen to unsubscribe",
        kind="UnsubscribeConfirmation",
        SubscribeURL=url,
        Token="abc",
        MessageId="m-3",
    )
    assert await verify(inbound(record)) == []


async def test_a_subscribe_url_off_the_allow_list_is_refused() -> None:
    record = envelope(
        "subscribe",
        kind="SubscriptionConfirmation",
        Token="abc",
        SubscribeURL="https://attacker.example.net/confirm",
    )
    with pytest.raises(ReceiptRefused, match="SubscribeURL is on a host"):
        await verify(inbound(record))


async def test_a_signature_by_another_key_is_refused() -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ReceiptRefused, match="Signature does not match"):
        await verify(inbound(envelope(bounce("Permanent"), key=other)))


@pytest.mark.parametrize("field", ["Message", "Timestamp", "Subject"])
async def test_a_modified_message_is_refused(field: str) -> None:
    record = envelope(bounce("Permanent"), Subject="Amazon SES")
    forged = {
        "Message": json.dumps(bounce("Transient")),
        "Timestamp": stamp(NOW - 2),
        "Subject": "something else",
    }
    with pytest.raises(ReceiptRefused, match="Signature does not match"):
        await verify(inbound({**record, field: forged[field]}))


async def test_a_stale_timestamp_is_refused_before_fetching() -> None:
    fetch = Fetcher()
    with pytest.raises(ReceiptRefused, match="outside"):
        await verify(inbound(envelope(bounce("Permanent"), at=NOW - sns.WINDOW - 1)), fetch=fetch)
    assert fetch.calls == []


async def test_a_replayed_message_is_refused() -> None:
    seen = SeenSet()
    request = inbound(envelope(bounce("Permanent")))
    await verify(request, seen=seen)
    with pytest.raises(ReceiptReplayed):
        await verify(request, seen=seen)


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.attacker.net/cert.pem",
        "https://attacker.net/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://s3.amazonaws.com/cert.pem",
        "https://[::1/cert.pem",
    ],
)
async def test_a_certificate_url_off_the_allow_list_is_refused_without_fetching(url: str) -> None:
    fetch = Fetcher({url: PEM})
    with pytest.raises(ReceiptRefused, match="SigningCertURL"):
        await verify(inbound(envelope(bounce("Permanent"), SigningCertURL=url)), fetch=fetch)
    assert fetch.calls == []


async def test_the_allow_list_is_configurable_for_a_local_server() -> None:
    local = "https://127.0.0.1:8443/sns-test.pem"
    fetch = Fetcher({local: PEM})
    record = envelope(bounce("Permanent"), SigningCertURL=local)
    events = await verify(inbound(record), fetch=fetch, hosts=(r"127\.0\.0\.1:8443",))
    assert events[0].kind is ReceiptKind.BOUNCED and fetch.calls == [local]


async def test_certificates_are_cached_and_the_cache_is_bounded() -> None:
    fetch, cache = Fetcher(), sns.CertificateCache(capacity=1)
    await verify(inbound(envelope(bounce("Permanent"), MessageId="a")), fetch=fetch, cache=cache)
    await verify(inbound(envelope(bounce("Permanent"), MessageId="b")), fetch=fetch, cache=cache)
    assert fetch.calls == [CERT_URL]
    other = CERT_URL.replace("0123", "9999")
    fetch.served[other] = PEM
    for message_id, url in (("c", other), ("d", CERT_URL)):
        record = envelope(bounce("Permanent"), MessageId=message_id, SigningCertURL=url)
        await verify(inbound(record), fetch=fetch, cache=cache)
    assert fetch.calls == [CERT_URL, other, CERT_URL]


@pytest.mark.parametrize(
    ("served", "reason"),
    [
        (b"not a certificate", "not a PEM certificate"),
        (certificate(KEY, NOW - 10 * 86400, NOW - 86400), "not valid now"),
        (b"x" * (sns.MAX_CERTIFICATE + 1), "larger than"),
    ],
)
async def test_a_bad_certificate_is_refused(served: bytes, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        await verify(inbound(envelope(bounce("Permanent"))), fetch=Fetcher({CERT_URL: served}))


async def test_a_topic_not_configured_is_refused() -> None:
    # Anyone can have SNS sign messages for a topic of their own.
    record = envelope(bounce("Permanent"), TopicArn="arn:aws:sns:eu-west-1:999999999999:theirs")
    with pytest.raises(ReceiptRefused, match="topic that is not configured"):
        await verify(inbound(record))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: {**r, "SignatureVersion": "3"}, "SignatureVersion"),
        (lambda r: {**r, "Signature": "%%%"}, "Signature is not base64"),
        (lambda r: {k: v for k, v in r.items() if k != "MessageId"}, "MessageId is missing"),
        (lambda r: {**r, "Type": "Surprise"}, "not one Herald takes"),
        (lambda r: {**r, "Timestamp": "yesterday"}, "Timestamp is not an ISO 8601"),
        (lambda r: {**r, "Message": 42}, "Message is not a string"),
    ],
)
async def test_malformed_envelopes_are_refused(mutate: Any, reason: str) -> None:
    record = mutate(envelope(bounce("Permanent")))
    with pytest.raises(ReceiptRefused, match=reason):
        await verify(inbound(record, **{"x-amz-sns-message-type": record["Type"]}))


async def test_a_message_type_header_that_disagrees_is_refused() -> None:
    record = envelope(bounce("Permanent"))
    with pytest.raises(ReceiptRefused, match="x-amz-sns-message-type"):
        await verify(inbound(record, **{"x-amz-sns-message-type": "SubscriptionConfirmation"}))


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not json", "not JSON"),
        ({"notificationType": "Bounce", "mail": mail()}, "bounce is not a JSON object"),
        (
            {
                "notificationType": "Bounce",
                "mail": mail(),
                "bounce": {
                    "timestamp": "2025-10-09T09:00:00Z",
                    "bouncedRecipients": [{"emailAddress": "a@b.c"}] * 101,
                },
            },
            "at most 100",
        ),
        (
            {
                "notificationType": "Delivery",
                "mail": {"timestamp": "2025-10-09T09:00:00Z"},
                "delivery": {},
            },
            "messageId is missing",
        ),
        ({"mail": mail()}, "notificationType is missing"),
    ],
)
async def test_malformed_ses_records_are_refused(message: Any, reason: str) -> None:
    with pytest.raises(ReceiptRefused, match=reason):
        await verify(inbound(envelope(message)))


async def test_an_oversized_body_is_refused() -> None:
    request = Inbound("https://herald.example.com/r", {}, b" " * (sns.MAX_BODY + 1))
    with pytest.raises(ReceiptRefused, match="larger than"):
        await verify(request)


async def test_no_configured_topic_refuses_everything() -> None:
    with pytest.raises(ReceiptRefused, match="no SNS topic"):
        await ses.verify(
            inbound(envelope(bounce("Permanent"))),
            topics=set(),
            fetch=Fetcher(),
            certificates=sns.CertificateCache(),
            now=NOW,
            seen=SeenSet(),
        )

"""Twilio status callbacks: signed with the test's own auth token, as Twilio signs them."""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64encode
from urllib.parse import urlencode

import pytest

from herald.receipts import Inbound, ReceiptKind, ReceiptRefused, ReceiptReplayed, SeenSet, twilio

NOW = 1_760_000_000.0
TOKEN = "test-auth-token-0123456789abcdef"
URL = "https://herald.example.com/api/receipts/twilio?tenant=t1"
SID = "SM" + "0123456789abcdef" * 2


def callback(status: str = "delivered", **extra: str) -> dict[str, str]:
    form = {
        "AccountSid": "AC" + "f" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": SID,
        "MessageStatus": status,
        "SmsSid": SID,
        "SmsStatus": status,
        "To": "+15558675310",
    }
    return {**form, **extra}


def sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    """Twilio's scheme: the URL, then each parameter's name and value in name order."""
    text = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def request(form: dict[str, str], signature: str | None = None, url: str = URL) -> Inbound:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    headers["X-Twilio-Signature"] = sign(url, form) if signature is None else signature
    return Inbound(url=url, headers=headers, body=urlencode(form).encode())


def verify(inbound: Inbound, seen: SeenSet | None = None) -> list[twilio.ReceiptEvent]:
    return twilio.verify(
        inbound, auth_token=TOKEN, now=NOW, seen=SeenSet() if seen is None else seen
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        ("delivered", ReceiptKind.DELIVERED),
        ("undelivered", ReceiptKind.UNDELIVERED),
        ("failed", ReceiptKind.UNDELIVERED),
        ("sent", ReceiptKind.OTHER),
        ("queued", ReceiptKind.OTHER),
    ],
)
def test_a_signed_callback_yields_its_status(status: str, kind: ReceiptKind) -> None:
    [event] = verify(request(callback(status)))
    assert event == twilio.ReceiptEvent(
        provider="twilio",
        message_id=SID,
        kind=kind,
        raw_type=status,
        at=NOW,
        recipient="+15558675310",
        detail=None,
        event_id=None,
    )


def test_a_carrier_failure_keeps_its_error_code() -> None:
    [event] = verify(request(callback("undelivered", ErrorCode="30003")))
    assert event.kind is ReceiptKind.UNDELIVERED
    assert event.detail == "error 30003"


def test_header_names_are_case_insensitive_and_the_default_port_is_optional() -> None:
    form = callback()
    body = urlencode(form).encode()
    with_port = "https://herald.example.com:443/api/receipts/twilio?tenant=t1"
    # Twilio was given the URL with the port; the endpoint knows it without.
    inbound = Inbound(URL, {"x-twilio-signature": sign(with_port, form)}, body)
    assert verify(inbound)[0].kind is ReceiptKind.DELIVERED
    inbound = Inbound(with_port, {"X-TWILIO-SIGNATURE": sign(URL, form)}, body)
    assert verify(inbound)[0].kind is ReceiptKind.DELIVERED


def test_a_signature_made_with_another_token_is_refused() -> None:
    form = callback()
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(request(form, signature=sign(URL, form, token="someone-elses-token")))


def test_a_modified_body_is_refused() -> None:
    form = callback("undelivered")
    signature = sign(URL, form)
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(request({**form, "MessageStatus": "delivered"}, signature=signature))


def test_a_signature_for_another_url_is_refused() -> None:
    form = callback()
    other = "https://herald.example.com/api/receipts/twilio?tenant=t2"
    with pytest.raises(ReceiptRefused, match="does not match"):
        verify(request(form, signature=sign(other, form)))


def test_a_replayed_callback_is_refused_and_remembered_for_the_ttl() -> None:
    seen = SeenSet()
    inbound = request(callback())
    verify(inbound, seen)
    with pytest.raises(ReceiptReplayed, match="already received"):
        verify(inbound, seen)
    # Twilio's callbacks carry no timestamp: past the memory, a replay of a status
    # already applied is taken again (and changes nothing downstream).
    later = twilio.verify(inbound, auth_token=TOKEN, now=NOW + twilio.SEEN_TTL + 1, seen=seen)
    assert later[0].kind is ReceiptKind.DELIVERED


def test_a_missing_or_malformed_signature_header_is_refused() -> None:
    form = callback()
    body = urlencode(form).encode()
    with pytest.raises(ReceiptRefused, match="X-Twilio-Signature is missing"):
        verify(Inbound(URL, {}, body))
    with pytest.raises(ReceiptRefused, match="not a base64 HMAC-SHA1"):
        verify(request(form, signature="not a signature"))
    with pytest.raises(ReceiptRefused, match="longer than"):
        verify(request(form, signature="A" * 200))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"a=" + b"x" * (twilio.MAX_BODY + 1), "larger than"),
        ("&".join(f"p{i}=1" for i in range(twilio.MAX_PARAMS + 1)).encode(), "at most"),
        (b"MessageSid=\xff\xfe", "not a form"),
        (b"MessageSid=a&MessageSid=b", "repeated"),
        (b"no-equals-sign", "not a form"),
    ],
)
def test_malformed_or_oversized_bodies_are_refused(body: bytes, reason: str) -> None:
    from urllib.parse import parse_qsl

    try:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    except ValueError:
        form = {}
    inbound = Inbound(URL, {"X-Twilio-Signature": sign(URL, form)}, body)
    with pytest.raises(ReceiptRefused, match=reason):
        verify(inbound)


def test_a_signed_callback_without_a_message_sid_is_refused() -> None:
    form = callback()
    del form["MessageSid"], form["SmsSid"]
    with pytest.raises(ReceiptRefused, match="MessageSid"):
        verify(request(form))

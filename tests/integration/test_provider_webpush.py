"""The Web Push provider against a local fake push service.

The fake does what a browser and its push service do between them: it checks
the VAPID header (the JWT's ES256 signature against the ``k`` key, its
audience and expiry), then decrypts the ``aes128gcm`` body with the
subscription's private key and auth secret (as the browser would) and keeps
the plaintext for the test to read.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import http_ece  # type: ignore[import-untyped]
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from herald.errors import ConfigError, PermanentError, TransientError, UnregisteredRecipient
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.webpush import WebPushProvider
from herald.store.base import Store
from tests.conftest import make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server

SUBJECT = "mailto:ops@example.com"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


class Browser:
    """A subscription's secrets: what ``PushManager.subscribe()`` keeps on the device."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscription(self, endpoint: str) -> str:
        keys = {"p256dh": b64(point(self.key)), "auth": b64(self.auth)}
        return json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": keys})


class FakePushService:
    """``POST /push/{id}``: 201 and a Location, or the push service's refusals."""

    def __init__(self, browser: Browser, vapid_public: bytes) -> None:
        self.browser = browser
        self.vapid_public = vapid_public
        self.url = ""
        self.gone: set[str] = set()
        self.queued: list[Reply] = []
        self.received: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []

    def __call__(self, seen: Seen) -> Reply:
        if seen.method != "POST" or not seen.path.startswith("/push/"):
            return Reply(404)
        scheme, _, params = seen.headers.get("authorization", "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme != "vapid" or unb64(fields.get("k", "")) != self.vapid_public:
            return Reply(401, b"missing or unknown VAPID key")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.vapid_public)
            claims = jwt.decode(
                fields["t"],
                public,
                algorithms=["ES256"],
                audience=self.url,
                options={"require": ["aud", "exp", "sub"]},
            )
        except (KeyError, jwt.PyJWTError) as exc:
            return Reply(401, f"bad VAPID JWT: {exc}".encode())
        if claims["exp"] > time.time() + 24 * 3600 or claims["sub"] != SUBJECT:
            return Reply(401, b"VAPID claims out of bounds")
        self.claims.append(claims)
        if seen.headers.get("content-encoding") != "aes128gcm" or "ttl" not in seen.headers:
            return Reply(400, b"Content-Encoding aes128gcm and TTL required")
        if len(seen.body) > 4096:
            return Reply(413, b"payload too large")
        if self.queued:
            return self.queued.pop(0)
        if seen.path in self.gone:
            return Reply(410, b"push subscription has unsubscribed or expired")
        try:
            plaintext = http_ece.decrypt(
                seen.body,
                private_key=self.browser.key,
                auth_secret=self.browser.auth,
                version="aes128gcm",
            )
        except Exception as exc:
            return Reply(400, f"cannot decrypt: {exc}".encode())
        self.received.append(json.loads(plaintext))
        location = f"{self.url}/message/{len(self.received)}"
        return Reply(201, b"", {"location": location})


@pytest.fixture(scope="module")
def vapid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def vapid_pem(tmp_path: Path, vapid_key: ec.EllipticCurvePrivateKey) -> str:
    path = tmp_path / "vapid_private.pem"
    path.write_bytes(
        vapid_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


@pytest_asyncio.fixture
async def push_service(
    vapid_key: ec.EllipticCurvePrivateKey,
) -> AsyncIterator[tuple[FakeServer, FakePushService]]:
    fake = FakePushService(Browser(), point(vapid_key))
    async with fake_server(fake) as server:
        fake.url = server.url
        yield server, fake


Make = Callable[..., WebPushProvider]


@pytest_asyncio.fixture
async def provider(tmp_path: Path, vapid_pem: str) -> AsyncIterator[Make]:
    made: list[WebPushProvider] = []

    def make(**overrides: Any) -> WebPushProvider:
        options = {
            "vapid_private_key": vapid_pem,
            "vapid_subject": SUBJECT,
            "webpush_allow_hosts": "127.0.0.1/32",
            **overrides,
        }
        made.append(WebPushProvider(make_settings(tmp_path, **options), cast(Store, None)))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def push(fake: FakePushService, endpoint: str = "/push/sub-1", **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.PUSH,
        "recipient": fake.browser.subscription(fake.url + endpoint),
        "subject": "Parcel",
        "body": "Out for delivery. ✓",
        "metadata": {"url": "/orders/17"},
        **fields,
    }
    return Message(**values)


async def test_the_browser_decrypts_what_was_sent_and_the_vapid_jwt_verifies(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    server, fake = push_service
    message = push(fake)

    receipt = await provider().send(message)

    assert receipt.provider == "webpush"
    assert receipt.message_id == f"{server.url}/message/1"
    assert fake.received == [
        {
            "id": message.id,
            "title": "Parcel",
            "body": "Out for delivery. ✓",
            "data": {"url": "/orders/17"},
        }
    ]
    [seen] = server.seen
    assert seen.path == "/push/sub-1"
    assert seen.headers["content-encoding"] == "aes128gcm"
    assert seen.headers["content-type"] == "application/octet-stream"
    assert seen.headers["ttl"] == "86400"
    assert seen.headers["urgency"] == "normal"
    [claims] = fake.claims
    assert claims["aud"] == server.url
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


async def test_a_raw_base64url_vapid_key_works_too(
    push_service: tuple[FakeServer, FakePushService],
    provider: Make,
    vapid_key: ec.EllipticCurvePrivateKey,
) -> None:
    _, fake = push_service
    raw = b64(vapid_key.private_numbers().private_value.to_bytes(32, "big"))

    await provider(vapid_private_key=raw).send(push(fake))

    assert len(fake.received) == 1


async def test_metadata_sets_ttl_urgency_and_topic(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    server, fake = push_service
    metadata = {"ttl": 60, "urgency": "high", "collapseId": "order-17"}

    await provider().send(push(fake, metadata=metadata))

    headers = server.seen[0].headers
    assert (headers["ttl"], headers["urgency"], headers["topic"]) == ("60", "high", "order-17")


async def test_each_message_is_encrypted_afresh(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    server, fake = push_service
    sender = provider()
    message = push(fake)

    await sender.send(message)
    await sender.send(message)

    first, second = (seen.body for seen in server.seen)
    assert first[:16] != second[:16]  # the salt
    assert fake.received[0] == fake.received[1]


@pytest.mark.parametrize("status", [404, 410])
async def test_an_expired_subscription_is_gone(
    push_service: tuple[FakeServer, FakePushService], provider: Make, status: int
) -> None:
    _, fake = push_service
    fake.queued.append(Reply(status, b"push subscription has unsubscribed or expired"))

    with pytest.raises(UnregisteredRecipient, match=str(status)):
        await provider().send(push(fake))


async def test_too_large_is_permanent(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    _, fake = push_service
    fake.queued.append(Reply(413, b"payload too large"))

    with pytest.raises(PermanentError, match="413") as caught:
        await provider().send(push(fake))

    assert not isinstance(caught.value, UnregisteredRecipient)


async def test_a_payload_over_4kb_is_refused_before_sending(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    server, fake = push_service

    with pytest.raises(PermanentError, match="at most 3993"):
        await provider().send(push(fake, body="x" * 4000))

    assert server.seen == []


@pytest.mark.parametrize(("status", "retry_after"), [(429, "30"), (503, None)])
async def test_a_busy_push_service_is_transient(
    push_service: tuple[FakeServer, FakePushService],
    provider: Make,
    status: int,
    retry_after: str | None,
) -> None:
    _, fake = push_service
    fake.queued.append(Reply(status, b"slow down", {"retry-after": retry_after or ""}))

    with pytest.raises(TransientError) as caught:
        await provider().send(push(fake))

    assert caught.value.retry_after == (float(retry_after) if retry_after else None)


async def test_a_foreign_vapid_key_is_refused_as_transient(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    _, fake = push_service
    other = ec.generate_private_key(ec.SECP256R1())
    raw = b64(other.private_numbers().private_value.to_bytes(32, "big"))

    with pytest.raises(TransientError, match="HERALD_VAPID_PRIVATE_KEY"):
        await provider(vapid_private_key=raw).send(push(fake))


@pytest.mark.parametrize(
    "recipient",
    [
        "fcm-device-token-0123456789",
        '{"endpoint": "https://push.example.com/x"}',
        '{"endpoint": "ftp://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
        '{"endpoint": "https://push.example.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
    ],
)
async def test_a_recipient_that_is_not_a_subscription_is_permanent(
    provider: Make, recipient: str
) -> None:
    message = Message(new_id(), "default", Channel.PUSH, recipient, "body")

    with pytest.raises(PermanentError):
        await provider().send(message)


async def test_a_private_endpoint_is_refused_unless_allowed(
    push_service: tuple[FakeServer, FakePushService], provider: Make
) -> None:
    server, fake = push_service

    # The caller learns no more than for a host that does not answer; the log has why.
    with pytest.raises(PermanentError, match="not an allowed destination"):
        await provider(webpush_allow_hosts="").send(push(fake))

    assert server.seen == []


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"vapid_private_key": None}, "HERALD_VAPID_PRIVATE_KEY"),
        ({"vapid_private_key": "not-a-key"}, "HERALD_VAPID_PRIVATE_KEY"),
        ({"vapid_subject": "ops@example.com"}, "HERALD_VAPID_SUBJECT"),
        ({"webpush_allow_hosts": "http://x/"}, "HERALD_WEBPUSH_ALLOW_HOSTS"),
    ],
)
def test_bad_settings_fail_at_start(
    tmp_path: Path, vapid_pem: str, overrides: dict[str, Any], variable: str
) -> None:
    options = {"vapid_private_key": vapid_pem, "vapid_subject": SUBJECT, **overrides}

    with pytest.raises(ConfigError, match=variable):
        WebPushProvider(make_settings(tmp_path, **options), cast(Store, None))

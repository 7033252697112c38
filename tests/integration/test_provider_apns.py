"""The APNs provider against a local HTTP/2 fake of APNs.

The fake is built on the ``h2`` protocol library and speaks HTTP/2 only, in
cleartext with prior knowledge (APNs itself is HTTP/2 over TLS), so a
request that arrives at all arrived over HTTP/2. It verifies the provider
token's ES256 signature with the key's public half and answers with APNs's
reasons.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import ConnectionTerminated, DataReceived, RequestReceived, StreamEnded

from herald.errors import ConfigError, PermanentError, TransientError, UnregisteredRecipient
from herald.models import Channel, new_id
from herald.providers import apns
from herald.providers.apns import APNsProvider
from herald.providers.base import Message
from herald.store.base import Store
from tests.conftest import make_settings
from tests.integration.fakehttp import Reply, Seen

KEY_ID, TEAM_ID, TOPIC = "ABC123DEFG", "DEF123GHIJ", "com.example.app"
DEVICE = "a1" * 32
GONE = "b2" * 32
Handler = Callable[[Seen], Reply]


class _H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection: collect each stream's request, answer it when it ends."""

    def __init__(self, server: H2Server) -> None:
        self.server = server
        self.h2 = H2Connection(H2Configuration(client_side=False, header_encoding="utf-8"))
        self.requests: dict[int, tuple[dict[str, str], bytearray]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.transports.append(self.transport)
        self.h2.initiate_connection()
        self.transport.write(self.h2.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.h2.receive_data(data):
            if isinstance(event, RequestReceived):
                headers = {str(k): str(v) for k, v in event.headers or ()}
                self.requests[event.stream_id or 0] = (headers, bytearray())
            elif isinstance(event, DataReceived):
                self.requests[event.stream_id or 0][1].extend(event.data or b"")
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length or 0, event.stream_id or 0
                )
            elif isinstance(event, StreamEnded):
                self.respond(event.stream_id or 0)
            elif isinstance(event, ConnectionTerminated):
                self.transport.close()
        self.transport.write(self.h2.data_to_send())

    def respond(self, stream_id: int) -> None:
        headers, body = self.requests.pop(stream_id)
        seen = Seen(
            headers.get(":method", ""),
            headers.get(":path", ""),
            "",
            {k: v for k, v in headers.items() if not k.startswith(":")},
            bytes(body),
        )
        self.server.seen.append(seen)
        reply = self.server.handler(seen)
        response = [(":status", str(reply.status)), ("content-length", str(len(reply.body)))]
        response += list(reply.headers.items())
        self.h2.send_headers(stream_id, response, end_stream=not reply.body)
        if reply.body:
            self.h2.send_data(stream_id, reply.body, end_stream=True)


class H2Server:
    """HTTP/2 with prior knowledge on a free port of 127.0.0.1."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self.transports: list[asyncio.Transport] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _H2Protocol(self), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for transport in self.transports:
            transport.close()
        await self._server.wait_closed()

    @property
    def connections(self) -> int:
        return len(self.transports)


def apns_reply(status: int, reason: str, **headers: str) -> Reply:
    body: dict[str, Any] = {"reason": reason}
    if status == 410:
        body["timestamp"] = int(time.time() * 1000)
    return Reply.json(status, body, **headers)


class FakeAPNs:
    """``POST /3/device/{token}`` as APNs checks it; ``queued`` replies come first."""

    push_types = {"alert", "background", "voip", "location", "complication", "liveactivity"}

    def __init__(self, public_key: ec.EllipticCurvePublicKey) -> None:
        self.public_key = public_key
        self.expired: set[str] = set()
        self.queued: list[Reply] = []
        self.tokens: list[str] = []
        self.delivered: list[tuple[dict[str, str], dict[str, Any]]] = []

    def __call__(self, seen: Seen) -> Reply:
        if seen.method != "POST":
            return apns_reply(405, "MethodNotAllowed")
        if not seen.path.startswith("/3/device/"):
            return apns_reply(404, "BadPath")
        device = seen.path.removeprefix("/3/device/")
        headers = seen.headers
        authorization = headers.get("authorization", "")
        if not authorization.startswith("bearer "):
            return apns_reply(403, "MissingProviderToken")
        token = authorization.removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.public_key, algorithms=["ES256"], options={"require": ["iat", "iss"]}
            )
        except jwt.PyJWTError:
            return apns_reply(403, "InvalidProviderToken")
        if header.get("kid") != KEY_ID or claims["iss"] != TEAM_ID:
            return apns_reply(403, "InvalidProviderToken")
        if abs(claims["iat"] - time.time()) > 3600 or token in self.expired:
            return apns_reply(403, "ExpiredProviderToken")
        self.tokens.append(token)
        if not headers.get("apns-topic", "").startswith(TOPIC):
            return apns_reply(400, "TopicDisallowed")
        if headers.get("apns-push-type") not in self.push_types:
            return apns_reply(400, "InvalidPushType")
        if headers.get("apns-priority") not in ("10", "5", "1"):
            return apns_reply(400, "BadPriority")
        try:
            apns_id = str(uuid.UUID(headers.get("apns-id", "")))
        except ValueError:
            return apns_reply(400, "BadMessageId")
        if len(headers.get("apns-collapse-id", "").encode()) > 64:
            return apns_reply(400, "BadCollapseId")
        try:
            payload = json.loads(seen.body)
        except ValueError:
            return apns_reply(400, "PayloadEmpty")
        if not isinstance(payload.get("aps"), dict):
            return apns_reply(400, "PayloadEmpty")
        if self.queued:
            return self.queued.pop(0)
        if device == GONE:
            return apns_reply(410, "Unregistered")
        if len(device) != 64 or any(c not in "0123456789abcdef" for c in device):
            return apns_reply(400, "BadDeviceToken")
        self.delivered.append((headers, payload))
        return Reply(200, b"", {"apns-id": apns_id})


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def key_file(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> str:
    """A .p8 file as Apple issues them: PKCS#8 PEM."""
    path = tmp_path / f"AuthKey_{KEY_ID}.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(path)


@pytest_asyncio.fixture
async def fake(key: ec.EllipticCurvePrivateKey) -> AsyncIterator[tuple[H2Server, FakeAPNs]]:
    handler = FakeAPNs(key.public_key())
    server = H2Server(handler)
    await server.start()
    try:
        yield server, handler
    finally:
        await server.stop()


Make = Callable[..., APNsProvider]


@pytest_asyncio.fixture
async def provider(
    tmp_path: Path, key_file: str, fake: tuple[H2Server, FakeAPNs]
) -> AsyncIterator[Make]:
    server, _ = fake
    made: list[APNsProvider] = []

    def make(**overrides: Any) -> APNsProvider:
        options = {
            "apns_key_file": key_file,
            "apns_key_id": KEY_ID,
            "apns_team_id": TEAM_ID,
            "apns_topic": TOPIC,
            "apns_base_url": server.url,
            **overrides,
        }
        made.append(APNsProvider(make_settings(tmp_path, **options), cast(Store, None)))
        return made[-1]

    yield make
    for each in made:
        await each.close()


class Clock:
    """Stands in for the monotonic clock the provider token ages by."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(apns, "_clock", fake)
    return fake


def push(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.PUSH,
        "recipient": DEVICE,
        "subject": "Parcel",
        "body": "Out for delivery.",
        **fields,
    }
    return Message(**values)


async def test_sends_an_alert_over_http2_with_a_provider_token(
    fake: tuple[H2Server, FakeAPNs], provider: Make, key: ec.EllipticCurvePrivateKey
) -> None:
    server, _ = fake
    message = push()

    receipt = await provider().send(message)

    assert receipt.provider == "apns"
    assert receipt.message_id == str(uuid.UUID(hex=message.id))
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.path == f"/3/device/{DEVICE}"
    headers = seen.headers
    assert headers["apns-topic"] == TOPIC
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-priority"] == "10"
    assert headers["apns-id"] == receipt.message_id
    assert "apns-collapse-id" not in headers
    token = headers["authorization"].removeprefix("bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = jwt.decode(token, key.public_key(), algorithms=["ES256"])
    assert claims["iss"] == TEAM_ID and abs(claims["iat"] - time.time()) < 60
    assert json.loads(seen.body) == {
        "aps": {"alert": {"title": "Parcel", "body": "Out for delivery."}}
    }


async def test_metadata_chooses_priority_collapse_id_and_push_type(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    server, _ = fake
    sender = provider()

    await sender.send(push(metadata={"apnsPriority": 5, "collapseId": "score-17"}))
    await sender.send(push(metadata={"apnsPushType": "background"}))
    await sender.send(push(metadata={"apnsPushType": "voip"}))

    first, background, voip = (seen.headers for seen in server.seen)
    assert first["apns-priority"] == "5" and first["apns-collapse-id"] == "score-17"
    assert background["apns-push-type"] == "background"
    assert background["apns-priority"] == "5"
    assert json.loads(server.seen[1].body) == {"aps": {"content-available": 1}}
    assert voip["apns-topic"] == f"{TOPIC}.voip"


async def test_the_same_notification_keeps_its_apns_id(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    server, _ = fake
    sender = provider()
    message = push()

    await sender.send(message)
    await sender.send(push(id=message.id, attempt=2))

    assert server.seen[0].headers["apns-id"] == server.seen[1].headers["apns-id"]


async def test_concurrent_sends_share_one_connection(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    server, handler = fake
    sender = provider()

    await asyncio.gather(*(sender.send(push()) for _ in range(50)))

    assert len(handler.delivered) == 50
    assert server.connections == 1
    assert len(set(handler.tokens)) == 1


async def test_an_unregistered_device_is_gone(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    with pytest.raises(UnregisteredRecipient, match="410 Unregistered"):
        await provider().send(push(recipient=GONE))


async def test_a_bad_device_token_is_permanent_not_gone(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    with pytest.raises(PermanentError, match="BadDeviceToken") as caught:
        await provider().send(push(recipient="not-a-device-token"))

    assert not isinstance(caught.value, UnregisteredRecipient)


@pytest.mark.parametrize(
    ("status", "reason", "retry_after"),
    [
        (429, "TooManyRequests", "60"),
        (503, "ServiceUnavailable", None),
        (500, "InternalServerError", None),
    ],
)
async def test_busy_apns_is_transient(
    fake: tuple[H2Server, FakeAPNs],
    provider: Make,
    status: int,
    reason: str,
    retry_after: str | None,
) -> None:
    _, handler = fake
    extra = {"retry_after": retry_after} if retry_after else {}
    handler.queued.append(apns_reply(status, reason, **extra))

    with pytest.raises(TransientError, match=reason) as caught:
        await provider().send(push())

    assert caught.value.retry_after == (float(retry_after) if retry_after else None)


async def test_a_wrong_topic_is_the_operators_and_transient(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    with pytest.raises(TransientError, match=r"TopicDisallowed.*HERALD_APNS_TOPIC"):
        await provider(apns_topic="org.other.app").send(push())


async def test_an_expired_token_is_renewed_once_and_the_send_retried(
    fake: tuple[H2Server, FakeAPNs], provider: Make, clock: Clock
) -> None:
    server, handler = fake
    sender = provider()
    await sender.send(push())
    first = handler.tokens[0]
    clock.now += 25 * 60
    handler.expired.add(first)

    await sender.send(push())

    assert len(server.seen) == 3
    assert handler.tokens[-1] != first
    assert len(handler.delivered) == 2


async def test_a_token_younger_than_20_minutes_is_not_renewed(
    fake: tuple[H2Server, FakeAPNs], provider: Make, clock: Clock
) -> None:
    server, handler = fake
    sender = provider()
    await sender.send(push())
    handler.expired.add(handler.tokens[0])
    clock.now += 5 * 60

    with pytest.raises(TransientError, match="clock"):
        await sender.send(push())

    assert len(server.seen) == 2


async def test_the_token_is_renewed_after_50_minutes_without_being_asked(
    fake: tuple[H2Server, FakeAPNs], provider: Make, clock: Clock
) -> None:
    _, handler = fake
    sender = provider()
    await sender.send(push())
    clock.now += 49 * 60
    await sender.send(push())
    clock.now += 2 * 60
    await sender.send(push())

    first, second, third = handler.tokens
    assert first == second != third


async def test_metadata_apns_would_refuse_is_refused_before_sending(
    fake: tuple[H2Server, FakeAPNs], provider: Make
) -> None:
    server, _ = fake

    with pytest.raises(PermanentError, match="apnsPriority"):
        await provider().send(push(metadata={"apnsPriority": 7}))

    assert server.seen == []


def test_a_key_that_is_not_p256_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey.p8"
    path.write_text("not a key")
    settings = make_settings(
        tmp_path,
        apns_key_file=str(path),
        apns_key_id=KEY_ID,
        apns_team_id=TEAM_ID,
        apns_topic=TOPIC,
    )

    with pytest.raises(ConfigError, match="HERALD_APNS_KEY_FILE"):
        APNsProvider(settings, cast(Store, None))

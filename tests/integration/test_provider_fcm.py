"""The FCM provider against a local fake of Google's token endpoint and FCM HTTP v1.

The fake verifies the service account's signed JWT with the account's public
key before it issues an access token, accepts only tokens it issued, and
answers sends with FCM's error bodies.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from herald.errors import ConfigError, PermanentError, TransientError, UnregisteredRecipient
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.fcm import GRANT_TYPE, SCOPE, FCMProvider
from herald.store.base import Store
from tests.conftest import make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server

PROJECT = "herald-test"
EMAIL = f"herald@{PROJECT}.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef"
DEVICE = "fcm-registration-token-" + "x" * 100


def fcm_error(status: int, state: str, text: str, code: str | None = None) -> Reply:
    error: dict[str, Any] = {"code": status, "message": text, "status": state}
    if code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return Reply.json(status, {"error": error})


class FakeGoogle:
    """``POST /token`` (JWT bearer grant) and ``POST /v1/projects/{project}/messages:send``."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        self.public_key = public_key
        self.url = ""
        self.lifetime = 3600
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.queued: list[Reply] = []
        self.sent: list[dict[str, Any]] = []

    def __call__(self, seen: Seen) -> Reply:
        if seen.method == "POST" and seen.path == "/token":
            return self.token(seen)
        if seen.method == "POST" and seen.path == f"/v1/projects/{PROJECT}/messages:send":
            return self.send(seen)
        return fcm_error(404, "NOT_FOUND", "Requested entity was not found.")

    def token(self, seen: Seen) -> Reply:
        form = seen.form()
        if form.get("grant_type") != GRANT_TYPE:
            return Reply.json(400, {"error": "unsupported_grant_type"})
        try:
            header = jwt.get_unverified_header(form["assertion"])
            claims = jwt.decode(
                form["assertion"],
                self.public_key,
                algorithms=["RS256"],
                audience=f"{self.url}/token",
                issuer=EMAIL,
                options={"require": ["iat", "exp", "iss", "aud"]},
            )
        except (KeyError, jwt.PyJWTError) as exc:
            return Reply.json(
                400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
            )
        if claims.get("scope") != SCOPE or claims["exp"] - claims["iat"] > 3600:
            return Reply.json(400, {"error": "invalid_scope", "error_description": "bad claims"})
        self.assertions.append((header, claims))
        token = f"ya29.fake-{len(self.issued)}"
        self.issued.append(token)
        body = {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}
        return Reply.json(200, body)

    def send(self, seen: Seen) -> Reply:
        token = seen.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.issued or token in self.revoked:
            return fcm_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        if not seen.headers.get("content-type", "").startswith("application/json"):
            return fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        message = seen.json().get("message")
        if not isinstance(message, dict) or not isinstance(message.get("token"), str):
            return fcm_error(
                400, "INVALID_ARGUMENT", "Invalid value at 'message'", "INVALID_ARGUMENT"
            )
        data = message.get("data", {})
        if not all(isinstance(v, str) for v in data.values()):
            return fcm_error(400, "INVALID_ARGUMENT", "Invalid value at 'message.data'")
        if self.queued:
            return self.queued.pop(0)
        self.sent.append(message)
        return Reply.json(200, {"name": f"projects/{PROJECT}/messages/0:{len(self.sent)}"})


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest_asyncio.fixture
async def google(key: rsa.RSAPrivateKey) -> AsyncIterator[tuple[FakeServer, FakeGoogle]]:
    fake = FakeGoogle(key.public_key())
    async with fake_server(fake) as server:
        fake.url = server.url
        yield server, fake


def write_credentials(path: Path, key: rsa.RSAPrivateKey, token_uri: str, **fields: Any) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": pem,
        "client_email": EMAIL,
        "client_id": "1234567890",
        "token_uri": token_uri,
        **fields,
    }
    path.write_text(json.dumps(account))
    return str(path)


Make = Callable[..., FCMProvider]


@pytest_asyncio.fixture
async def provider(
    tmp_path: Path, key: rsa.RSAPrivateKey, google: tuple[FakeServer, FakeGoogle]
) -> AsyncIterator[Make]:
    server, _ = google
    made: list[FCMProvider] = []

    def make(signing_key: rsa.RSAPrivateKey | None = None, **overrides: Any) -> FCMProvider:
        credentials = write_credentials(
            tmp_path / f"service-account-{len(made)}.json",
            signing_key or key,
            f"{server.url}/token",
        )
        options = {"fcm_credentials_file": credentials, "fcm_base_url": server.url, **overrides}
        made.append(FCMProvider(make_settings(tmp_path, **options), cast(Store, None)))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def push(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.PUSH,
        "recipient": DEVICE,
        "subject": "Parcel",
        "body": "Your parcel is out for delivery.",
        "metadata": {"orderId": "A-17", "screen": "tracking"},
        **fields,
    }
    return Message(**values)


async def test_signs_a_jwt_trades_it_and_sends_the_v1_message(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    server, fake = google

    receipt = await provider().send(push())

    assert receipt.provider == "fcm"
    assert receipt.message_id == f"projects/{PROJECT}/messages/0:1"
    [(header, claims)] = fake.assertions
    assert header["alg"] == "RS256" and header["kid"] == KEY_ID
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60
    token_request, send_request = server.seen
    assert token_request.form()["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert send_request.headers["authorization"] == "Bearer ya29.fake-0"
    assert send_request.json() == {
        "message": {
            "token": DEVICE,
            "notification": {"title": "Parcel", "body": "Your parcel is out for delivery."},
            "data": {"orderId": "A-17", "screen": "tracking"},
        }
    }


async def test_metadata_that_is_not_all_strings_is_left_out(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google

    await provider().send(push(subject=None, metadata={"count": 3}))

    assert fake.sent == [{"token": DEVICE, "notification": {"body": push().body}}]


async def test_the_access_token_is_reused_and_fetched_once_under_concurrency(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google
    fcm = provider()

    await asyncio.gather(*(fcm.send(push()) for _ in range(20)))
    await fcm.send(push())

    assert len(fake.issued) == 1
    assert len(fake.sent) == 21


async def test_the_access_token_is_refreshed_before_it_expires(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google
    fake.lifetime = 1  # refreshed a tenth of its life early
    fcm = provider()

    await fcm.send(push())
    await asyncio.sleep(1.0)
    await fcm.send(push())

    assert len(fake.issued) == 2


async def test_a_refused_access_token_is_replaced_once(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    server, fake = google
    fcm = provider()
    await fcm.send(push())
    fake.revoked.add(fake.issued[0])

    receipt = await fcm.send(push())

    assert receipt.message_id.endswith("0:2")
    assert len(fake.issued) == 2
    paths = [seen.path for seen in server.seen]
    assert paths[2:] == ["/v1/projects/herald-test/messages:send", "/token", paths[1]]


async def test_an_access_token_refused_twice_is_transient(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    server, fake = google
    fake.queued.append(fcm_error(401, "UNAUTHENTICATED", "Request had invalid credentials."))
    fake.queued.append(fcm_error(401, "UNAUTHENTICATED", "Request had invalid credentials."))

    with pytest.raises(TransientError, match="UNAUTHENTICATED"):
        await provider().send(push())

    assert len(fake.issued) == 2
    assert sum(seen.path.endswith(":send") for seen in server.seen) == 2


async def test_an_unregistered_token_is_reported_as_gone(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google
    fake.queued.append(
        fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
    )

    with pytest.raises(UnregisteredRecipient, match="UNREGISTERED"):
        await provider().send(push())


async def test_an_invalid_argument_is_permanent(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google
    fake.queued.append(
        fcm_error(
            400, "INVALID_ARGUMENT", "The registration token is not valid", "INVALID_ARGUMENT"
        )
    )

    with pytest.raises(PermanentError) as caught:
        await provider().send(push())
    assert not isinstance(caught.value, UnregisteredRecipient)
    assert "INVALID_ARGUMENT" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "state", "retry_after"),
    [(429, "RESOURCE_EXHAUSTED", "30"), (503, "UNAVAILABLE", "5"), (500, "INTERNAL", None)],
)
async def test_busy_fcm_is_transient_with_its_retry_after(
    google: tuple[FakeServer, FakeGoogle],
    provider: Make,
    status: int,
    state: str,
    retry_after: str | None,
) -> None:
    _, fake = google
    reply = fcm_error(status, state, "try later", "QUOTA_EXCEEDED" if status == 429 else None)
    if retry_after:
        reply.headers["retry-after"] = retry_after
    fake.queued.append(reply)

    with pytest.raises(TransientError) as caught:
        await provider().send(push())

    assert caught.value.retry_after == (float(retry_after) if retry_after else None)


async def test_a_refused_service_account_is_transient(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    _, fake = google
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    with pytest.raises(TransientError, match=r"Invalid JWT.*HERALD_FCM_CREDENTIALS_FILE"):
        await provider(signing_key=stranger).send(push())

    assert fake.issued == []


async def test_the_project_setting_overrides_the_file(
    google: tuple[FakeServer, FakeGoogle], provider: Make
) -> None:
    server, _ = google

    with pytest.raises(PermanentError, match="404"):
        await provider(fcm_project_id="another-project").send(push())

    assert server.seen[-1].path == "/v1/projects/another-project/messages:send"


def test_a_missing_credentials_file_fails_at_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, fcm_credentials_file=str(tmp_path / "absent.json"))

    with pytest.raises(ConfigError, match="HERALD_FCM_CREDENTIALS_FILE"):
        FCMProvider(settings, cast(Store, None))

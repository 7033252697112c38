"""The Twilio provider against a local fake of Twilio's Messages API.

The fake checks what Twilio checks (path, basic auth, form fields) and
answers as Twilio does, error bodies included.
"""

from __future__ import annotations

import base64
import email.utils
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from herald.config import Settings
from herald.errors import ConfigError, PermanentError, TransientError
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.twilio import TwilioProvider
from herald.store.base import Store
from tests.conftest import free_port, make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server

SID = "AC" + "1f" * 16
TOKEN = "twilio-auth-token"
SENDER = "+15005550006"


def twilio_error(status: int, code: int, text: str) -> Reply:
    return Reply.json(
        status,
        {
            "code": code,
            "message": text,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


class FakeTwilio:
    """Answers like ``POST /2010-04-01/Accounts/{sid}/Messages.json``; ``queued`` replies first."""

    def __init__(self) -> None:
        self.queued: list[Reply] = []
        self.created = 0

    def __call__(self, seen: Seen) -> Reply:
        if seen.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
            return twilio_error(404, 20404, "The requested resource was not found")
        if seen.method != "POST":
            return twilio_error(405, 20004, "Method not allowed")
        expected = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        if seen.headers.get("authorization") != expected:
            return twilio_error(401, 20003, "Authenticate")
        form = seen.form()
        if not form.get("To"):
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return twilio_error(400, 21602, "Message body is required.")
        if self.queued:
            return self.queued.pop(0)
        self.created += 1
        return Reply.json(
            201,
            {
                "sid": f"SM{self.created:032x}",
                "account_sid": SID,
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
                "status": "queued",
            },
        )


Make = Callable[..., TwilioProvider]


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[tuple[FakeServer, FakeTwilio]]:
    fake = FakeTwilio()
    async with fake_server(fake) as server:
        yield server, fake


@pytest_asyncio.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[TwilioProvider] = []

    def make(base_url: str, **overrides: Any) -> TwilioProvider:
        options: dict[str, Any] = {
            "twilio_account_sid": SID,
            "twilio_auth_token": TOKEN,
            "twilio_from": SENDER,
            "twilio_base_url": base_url,
            **overrides,
        }
        made.append(TwilioProvider(make_settings(tmp_path, **options), cast(Store, None)))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def sms(**fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.SMS,
        "recipient": "+14155550123",
        "body": "Your code is 1234.",
        **fields,
    }
    return Message(**values)


async def test_sends_the_form_with_basic_auth_and_returns_the_sid(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, _ = twilio
    callback = "https://herald.example.com/twilio/status"

    receipt = await provider(server.url + "/", twilio_status_callback=callback).send(sms())

    assert receipt.provider == "twilio"
    assert receipt.message_id == f"SM{1:032x}"
    [seen] = server.seen
    assert seen.method == "POST"
    assert seen.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert seen.form() == {
        "To": "+14155550123",
        "From": SENDER,
        "Body": "Your code is 1234.",
        "StatusCallback": callback,
    }
    assert seen.headers["user-agent"].startswith("Herald/")


async def test_a_messaging_service_replaces_from(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, _ = twilio
    service = "MG" + "0a" * 16

    await provider(server.url, twilio_from=service).send(sms())

    form = server.seen[0].form()
    assert form["MessagingServiceSid"] == service
    assert "From" not in form and "StatusCallback" not in form


async def test_sends_reuse_one_connection(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, _ = twilio
    twilio_provider = provider(server.url)

    for _ in range(3):
        await twilio_provider.send(sms())

    assert len({seen.client_port for seen in server.seen}) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [
        (429, "7", 7.0),
        (503, None, None),
        (500, "http-date", 120.0),
    ],
)
async def test_busy_twilio_is_transient_with_its_retry_after(
    twilio: tuple[FakeServer, FakeTwilio],
    provider: Make,
    status: int,
    retry_after: str | None,
    expected: float | None,
) -> None:
    server, fake = twilio
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 120, usegmt=True)
    reply = twilio_error(status, 20429 if status == 429 else 20500, "Too Many Requests")
    if retry_after is not None:
        reply.headers["retry-after"] = retry_after
    fake.queued.append(reply)

    with pytest.raises(TransientError) as caught:
        await provider(server.url).send(sms())

    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=2)
    assert str(status) in str(caught.value)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (21211, "The 'To' number +14155550123 is not a valid phone number."),
        (21614, "'To' number is not a valid mobile number"),
        (21610, "Attempt to send to unsubscribed recipient"),
        (21612, "The 'To' phone number is not currently reachable via SMS"),
    ],
)
async def test_recipient_refusals_are_permanent(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make, code: int, text: str
) -> None:
    server, fake = twilio
    fake.queued.append(twilio_error(400, code, text))

    with pytest.raises(PermanentError, match=f"{code} {re.escape(text)}"):
        await provider(server.url).send(sms())


async def test_wrong_credentials_are_transient_and_name_the_settings(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, _ = twilio

    with pytest.raises(TransientError, match=r"20003 Authenticate.*HERALD_TWILIO_AUTH_TOKEN"):
        await provider(server.url, twilio_auth_token="wrong").send(sms())


async def test_a_sender_refusal_is_the_operators_and_transient(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, fake = twilio
    fake.queued.append(twilio_error(400, 21606, "The 'From' phone number is not SMS-capable"))

    with pytest.raises(TransientError, match=r"21606.*HERALD_TWILIO_FROM"):
        await provider(server.url).send(sms())


async def test_other_refusals_are_permanent(
    twilio: tuple[FakeServer, FakeTwilio], provider: Make
) -> None:
    server, fake = twilio
    fake.queued.append(twilio_error(400, 21617, "The concatenated message body exceeds 1600"))

    with pytest.raises(PermanentError) as caught:
        await provider(server.url).send(sms())
    assert not isinstance(caught.value, TransientError)


async def test_nothing_listening_is_transient(provider: Make) -> None:
    with pytest.raises(TransientError, match="cannot reach Twilio"):
        await provider(f"http://127.0.0.1:{free_port()}").send(sms())


def test_missing_settings_fail_at_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, twilio_account_sid=SID)

    with pytest.raises(ConfigError, match="HERALD_TWILIO_AUTH_TOKEN, HERALD_TWILIO_FROM"):
        TwilioProvider(settings, cast(Store, None))


def test_the_seeds_variable_names_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("TWILIO_PHONE_NUMBER", SENDER)

    settings = Settings(_env_file=None)

    assert (settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from) == (
        SID,
        TOKEN,
        SENDER,
    )

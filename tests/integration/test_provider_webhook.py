"""The webhook provider against local receivers, and its guard against private destinations.

Signatures are checked with ``standardwebhooks``, the Standard Webhooks
reference library, exactly as a receiver would. The guard's tests watch two
things for each disguised loopback or private address: a listening socket on
127.0.0.1 that counts the connections it accepts, and every TCP connect the
HTTP stack attempts. Neither may see anything.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ipaddress
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio
import structlog
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from herald.errors import ConfigError, PermanentError, TransientError, UnregisteredRecipient
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.ssrf import Allowance, refusal
from herald.providers.webhook import WebhookProvider
from herald.store.base import Store
from tests.conftest import free_port, make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server
from tests.integration.watch import Listener, connects_fixture, listener_fixture  # noqa: F401


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


SECRET = new_secret()


class Receiver:
    """Verifies each delivery as a Standard Webhooks receiver does; ``queued`` replies first."""

    def __init__(self, *secrets: str) -> None:
        self.hooks = [Webhook(secret) for secret in secrets]
        self.queued: list[Reply | Callable[[], Reply]] = []
        self.payloads: list[Any] = []

    async def __call__(self, seen: Seen) -> Reply:
        if seen.method != "POST" or seen.headers.get("content-type") != "application/json":
            return Reply(415)
        try:
            payload = self.verify(seen)
        except WebhookVerificationError as exc:
            return Reply(401, str(exc).encode())
        if self.queued:
            queued = self.queued.pop(0)
            return queued() if callable(queued) else queued
        self.payloads.append(payload)
        return Reply(204)

    def verify(self, seen: Seen) -> Any:
        failure: WebhookVerificationError | None = None
        for hook in self.hooks:
            try:
                return hook.verify(seen.body, seen.headers)
            except WebhookVerificationError as exc:
                failure = exc
        raise failure or WebhookVerificationError("no secret")


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[tuple[FakeServer, Receiver]]:
    handler = Receiver(SECRET)
    async with fake_server(handler) as server:
        yield server, handler


Make = Callable[..., WebhookProvider]


@pytest_asyncio.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Make]:
    made: list[WebhookProvider] = []

    def make(**overrides: Any) -> WebhookProvider:
        options = {
            "webhook_secret": SECRET,
            "webhook_allow_hosts": "127.0.0.1",
            "webhook_timeout": 5.0,
            **overrides,
        }
        made.append(WebhookProvider(make_settings(tmp_path, **options), cast(Store, None)))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def hook(url: str, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.WEBHOOK,
        "recipient": url,
        "subject": "Order shipped",
        "body": "Order 17 left the warehouse.",
        "metadata": {"order": 17, "tags": ["a", "b"]},
        **fields,
    }
    return Message(**values)


async def test_the_delivery_verifies_with_the_reference_library(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver
    message = hook(f"{server.url}/hooks/herald?token=abc", attempt=3)

    receipt = await provider().send(message)

    assert receipt == type(receipt)("webhook", message.id)
    [payload] = handler.payloads
    timestamp = payload.pop("timestamp")
    assert payload == {
        "id": message.id,
        "type": "WEBHOOK",
        "subject": "Order shipped",
        "message": "Order 17 left the warehouse.",
        "metadata": {"order": 17, "tags": ["a", "b"]},
        "attempt": 3,
    }
    assert timestamp.endswith("Z")
    [seen] = server.seen
    assert seen.path == "/hooks/herald" and seen.query == "token=abc"
    assert seen.headers["webhook-id"] == message.id
    assert abs(int(seen.headers["webhook-timestamp"]) - time.time()) < 5
    assert seen.headers["webhook-signature"].startswith("v1,")


async def test_during_a_rotation_both_secrets_sign(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, _ = receiver
    new = new_secret()

    await provider(webhook_secret=f"{SECRET}, {new}").send(hook(server.url))

    seen = server.seen[0]
    signatures = seen.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    for secret in (SECRET, new):  # a receiver on either secret accepts it
        Webhook(secret).verify(seen.body, seen.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(seen.body, seen.headers)
    for secret, signature in zip((SECRET, new), signatures, strict=True):
        alone = {**seen.headers, "webhook-signature": signature}
        Webhook(secret).verify(seen.body, alone)


async def test_a_retry_keeps_the_webhook_id(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver
    handler.queued.append(Reply(500, b"oops"))
    message = hook(server.url)
    sender = provider()

    with pytest.raises(TransientError, match="500"):
        await sender.send(message)
    await sender.send(hook(server.url, id=message.id, attempt=2))

    first, second = server.seen
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == message.id
    assert handler.payloads[0]["attempt"] == 2


async def test_a_redirect_is_not_followed(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver
    moved = f"{server.url}/elsewhere"
    handler.queued.append(Reply(301, b"", {"location": moved}))

    with pytest.raises(PermanentError, match=f"redirects to {moved}"):
        await provider().send(hook(server.url))

    assert [seen.path for seen in server.seen] == ["/"]


async def test_gone_means_the_endpoint_is_disabled(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver
    handler.queued.append(Reply(410, b"endpoint disabled"))

    with pytest.raises(UnregisteredRecipient, match="disabled"):
        await provider().send(hook(server.url))


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(429, "17", 17.0), (503, "http-date", 90.0), (502, None, None), (408, None, None)],
)
async def test_busy_receivers_are_transient_with_retry_after(
    receiver: tuple[FakeServer, Receiver],
    provider: Make,
    status: int,
    retry_after: str | None,
    expected: float | None,
) -> None:
    server, handler = receiver
    if retry_after == "http-date":
        retry_after = email.utils.formatdate(time.time() + 90, usegmt=True)
    handler.queued.append(
        Reply(status, b"busy", {"retry-after": retry_after} if retry_after else {})
    )

    with pytest.raises(TransientError) as caught:
        await provider().send(hook(server.url))

    if expected is None:
        assert caught.value.retry_after is None
    else:
        assert caught.value.retry_after == pytest.approx(expected, abs=2)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_client_errors_are_permanent(
    receiver: tuple[FakeServer, Receiver], provider: Make, status: int
) -> None:
    server, handler = receiver
    handler.queued.append(Reply(status, b"no thanks"))

    with pytest.raises(PermanentError, match=f"{status}.*no thanks") as caught:
        await provider().send(hook(server.url))

    assert not isinstance(caught.value, UnregisteredRecipient)


async def test_a_large_reply_is_read_only_in_part(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver
    handler.queued.append(Reply(400, b"x" * 5_000_000))

    with pytest.raises(PermanentError, match="400") as caught:
        await provider().send(hook(server.url))

    assert len(str(caught.value)) < 400


async def test_a_slow_receiver_times_out_as_transient(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, _ = receiver

    async def slow(seen: Seen) -> Reply:
        await asyncio.sleep(1.0)
        return Reply(204)

    server.handler = slow

    with pytest.raises(TransientError, match="cannot reach"):
        await provider(webhook_timeout=0.2).send(hook(server.url))


async def test_nothing_listening_is_transient(provider: Make) -> None:
    with pytest.raises(TransientError, match="cannot reach"):
        await provider().send(hook(f"http://127.0.0.1:{free_port()}/"))


# -- the guard -----------------------------------------------------------------


SSRF_FORMS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://127.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.0.0.1:{port}/",
    "http://017700000001:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[64:ff9b::127.0.0.1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[ff02::1]/",
    "https://127.0.0.1:{port}/",
]


@pytest.mark.parametrize("form", SSRF_FORMS)
async def test_private_destinations_are_refused_before_any_connection(
    provider: Make, listener: Listener, connects: list[tuple[str, int]], form: str
) -> None:
    url = form.format(port=listener.port)

    with pytest.raises(PermanentError):
        await provider(webhook_allow_hosts="").send(hook(url))

    await asyncio.sleep(0.05)
    assert connects == []
    assert listener.accepted == 0


class Resolver:
    """Answers chosen names with chosen addresses and counts lookups; others go to DNS."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        loop = asyncio.get_running_loop()
        self.real = loop.getaddrinfo
        monkeypatch.setattr(loop, "getaddrinfo", self.getaddrinfo)

    async def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        self.lookups.append(str(host))
        if host not in self.answers:
            return await self.real(host, port, *args, **kwargs)
        results = []
        for address in self.answers[host]:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            results.append((family, socket.SOCK_STREAM, 6, "", (address, int(port))))
        return results


async def test_a_name_resolving_to_loopback_is_refused(
    provider: Make,
    listener: Listener,
    connects: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Resolver(monkeypatch, {"hooks.example.com": ["127.0.0.1"]})

    with (
        structlog.testing.capture_logs() as logged,
        pytest.raises(PermanentError, match=r"cannot reach hooks\.example\.com: ") as caught,
    ):
        await provider(webhook_allow_hosts="").send(
            hook(f"http://hooks.example.com:{listener.port}/")
        )

    assert connects == [] and listener.accepted == 0
    assert "127.0.0.1" not in str(caught.value), "the caller learns nothing of the address"
    [refused] = [e for e in logged if e["event"] == "webhook_destination_refused"]
    assert "hooks.example.com (127.0.0.1): loopback" in refused["reason"]


async def test_one_private_answer_among_public_ones_is_refused(
    provider: Make, connects: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    Resolver(monkeypatch, {"mixed.example.com": ["93.184.215.14", "10.1.2.3"]})

    with structlog.testing.capture_logs() as logged, pytest.raises(PermanentError):
        await provider().send(hook("http://mixed.example.com/"))

    assert connects == []
    [refused] = [e for e in logged if e["event"] == "webhook_destination_refused"]
    assert "10.1.2.3): private" in refused["reason"]


async def test_an_allowed_name_is_resolved_once_and_pinned(
    receiver: tuple[FakeServer, Receiver],
    provider: Make,
    connects: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, handler = receiver
    port = int(server.url.rsplit(":", 1)[1])
    resolver = Resolver(monkeypatch, {"hooks.internal": ["127.0.0.1"]})

    await provider(webhook_allow_hosts="hooks.internal").send(
        hook(f"http://hooks.internal:{port}/")
    )

    assert resolver.lookups == ["hooks.internal"]
    assert connects == [("127.0.0.1", port)]  # the checked address, not the name again
    assert server.seen[0].headers["host"] == f"hooks.internal:{port}"
    assert len(handler.payloads) == 1


async def test_an_allowed_network_admits_its_addresses(
    receiver: tuple[FakeServer, Receiver], provider: Make
) -> None:
    server, handler = receiver

    await provider(webhook_allow_hosts="10.0.0.0/8, 127.0.0.0/8").send(hook(server.url))

    assert len(handler.payloads) == 1


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("169.254.169.254", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("10.9.8.7", "private"),
        ("100.64.0.1", "not globally routable"),
        ("240.0.0.1", "private"),
        ("192.0.0.8", "not globally routable"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("ff05::1", "multicast"),
        ("::ffff:10.0.0.1", "private, embedded in ::ffff:a00:1"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata, embedded in 64:ff9b::a9fe:a9fe"),
        ("2002:c0a8:101::1", "private, embedded in 2002:c0a8:101::1"),
        ("8.8.8.8", None),
        ("93.184.215.14", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),
    ],
)
def test_address_classification(address: str, reason: str | None) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


def test_allowance_parsing() -> None:
    allowance = Allowance.parse(" Hooks.Internal. , 10.0.0.0/8,192.168.1.7 ,", "VAR")

    assert allowance.admits_host("hooks.internal")
    assert allowance.admits(ipaddress.ip_address("10.200.0.1"))
    assert allowance.admits(ipaddress.ip_address("::ffff:10.200.0.1"))
    assert allowance.admits(ipaddress.ip_address("192.168.1.7"))
    assert not allowance.admits(ipaddress.ip_address("192.168.1.8"))
    with pytest.raises(ConfigError, match="VAR"):
        Allowance.parse("http://hooks.internal/", "VAR")


@pytest.mark.parametrize(
    ("secret", "match"),
    [
        (None, "HERALD_WEBHOOK_SECRET"),
        ("whsec_not base64!", "not whsec_ and base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes"),
    ],
)
def test_bad_secrets_fail_at_start(tmp_path: Path, secret: str | None, match: str) -> None:
    settings = make_settings(tmp_path, webhook_secret=secret)

    with pytest.raises(ConfigError, match=match):
        WebhookProvider(settings, cast(Store, None))

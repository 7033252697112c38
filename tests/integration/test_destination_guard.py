"""One destination guard for every connection a tenant chooses: chat (Apprise) and callbacks.

Each attack is what was reported: an Apprise URL or a status callback that
names loopback in one spelling or another, a UDP or SMTP service, a redirect
from an admitted host. Listening sockets on loopback (TCP on 127.0.0.1 and
::1, UDP on 127.0.0.1) count what reaches them, and nothing may. The
guard's resolver is injectable, so a name can resolve to loopback without
touching DNS. Credentials inside recipient URLs must not show in any answer,
in the audit trail or on the dashboard.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import pytest_asyncio
import structlog
from pydantic import ValidationError
from urllib3.util import connection as urllib3_connection

from herald.api import validation
from herald.api.schemas import NotificationIn
from herald.errors import ConfigError, PermanentError, TransientError
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.chat import AppriseProvider
from herald.providers.ssrf import mask_credentials, withheld
from herald.store.base import Store
from tests.conftest import free_port, make_settings
from tests.integration.fakehttp import Reply, fake_server

#: Apprise imports a module Python 3.13 removes; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

WITHHELD = "it did not answer, or it is not an allowed destination"


class Listener:
    """TCP on 127.0.0.1 and ::1 (one port) and UDP on 127.0.0.1, counting what arrives."""

    def __init__(self) -> None:
        self.accepted = 0
        self.datagrams = 0
        self.port = 0
        self.udp_port = 0
        self.ipv6 = False
        self._servers: list[asyncio.Server] = []
        self._udp: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        first = await asyncio.start_server(count, "127.0.0.1", 0)
        self.port = first.sockets[0].getsockname()[1]
        self._servers.append(first)
        with contextlib.suppress(OSError):
            self._servers.append(await asyncio.start_server(count, "::1", self.port))
            self.ipv6 = True
        listener = self

        class Datagrams(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                listener.datagrams += 1

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        self._udp = transport
        self.udp_port = transport.get_extra_info("sockname")[1]

    @property
    def reached(self) -> int:
        return self.accepted + self.datagrams

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        if self._udp is not None:
            self._udp.close()


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    watched = Listener()
    await watched.start()
    yield watched
    await watched.stop()


class Names:
    """The guard's resolver here: chosen names get chosen answers (None: no such host)."""

    def __init__(self, answers: dict[str, list[str] | None]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return [str(info[4][0]) for info in found]
        answer = self.answers[host]
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answer


MakeChat = Callable[..., AppriseProvider]


@pytest_asyncio.fixture
async def chat(tmp_path: Path) -> AsyncIterator[MakeChat]:
    """``chat(resolver=…, **settings)`` builds an Apprise provider; all are closed afterwards."""
    made: list[AppriseProvider] = []

    def make(resolver: Names | None = None, **overrides: Any) -> AppriseProvider:
        extra = {} if resolver is None else {"resolver": resolver}
        settings = make_settings(tmp_path, **overrides)
        made.append(AppriseProvider(settings, cast(Store, None), **extra))
        return made[-1]

    yield make
    for each in made:
        await each.close()


def note(recipient: str) -> Message:
    return Message(new_id(), "default", Channel.CHAT, recipient, "disk full", "alert")


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Every TCP connect requests makes (urllib3 opens them through this function)."""
    attempts: list[tuple[str, int]] = []
    real = urllib3_connection.create_connection

    def spy(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3_connection, "create_connection", spy)
    yield attempts


# -- chat through the API, with the default services ----------------------------------

#: Loopback in the spellings Apprise parses as a self-hosted ntfy server.
NTFY_LOOPBACK = [
    "ntfy://127.0.0.1:{port}/t",
    "ntfy://[::1]:{port}/t",
    "ntfy://2130706433:{port}/t",  # decimal
    "ntfy://0x7f000001:{port}/t",  # hexadecimal
    "ntfy://017700000001:{port}/t",  # octal
    "ntfy://0.0.0.0:{port}/t",
    "ntfy://localhost:{port}/t",
    "ntfys://127.0.0.1:{port}/t",
    "ntfy://alice:secret@127.0.0.1:{port}/t",
]


@pytest.mark.parametrize("form", NTFY_LOOPBACK)
async def test_a_chat_url_to_loopback_is_refused_and_nothing_connects(
    herald: Any, listener: Listener, form: str
) -> None:
    url = form.format(port=listener.port)
    async with herald(chat_providers=["apprise"]) as h:
        reply = await h.client.post(
            "/api/notifications", json={"type": "CHAT", "recipient": url, "message": "hi"}
        )
        assert reply.status_code == 201, reply.text
        detail = await h.wait_status(reply.json()["data"]["_id"], "FAILED")
    assert listener.reached == 0, f"{url} reached the loopback listener"
    error = detail["notification"]["error"]
    assert error.startswith("cannot reach ") and error.endswith(WITHHELD), error
    assert "loopback" not in orjson.dumps(detail).decode(), "the reason is the log's, not theirs"


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ("gotify://127.0.0.1:{port}/AbCdEfGhIjKlMnO", "not an accepted chat service"),
        ("rsyslog://127.0.0.1:{udp}", "cannot guard"),
        ("rsyslog://127.0.0.1:{udp}/local5?logpid=no", "cannot guard"),
        ("syslog://local5", "cannot guard"),
        ("mailto://user:pass@127.0.0.1:{port}?to=ops@example.com&smtp=127.0.0.1", "cannot guard"),
        ("mailtos://user:pass@127.0.0.1:{port}?to=ops@example.com", "cannot guard"),
        ("xmpp://user:pass@127.0.0.1:{port}", "cannot guard"),
        ("rocket://user:pass@127.0.0.1:{port}/room", "not an accepted chat service"),
    ],
)
async def test_a_service_the_guard_cannot_watch_is_a_422_naming_the_recipient(
    herald: Any, listener: Listener, form: str, says: str
) -> None:
    url = form.format(port=listener.port, udp=listener.udp_port)
    async with herald(chat_providers=["apprise"]) as h:
        reply = await h.client.post(
            "/api/notifications", json={"type": "CHAT", "recipient": url, "message": "hi"}
        )
        assert reply.status_code == 422, reply.text
        [error] = reply.json()["errors"]
        assert error["field"] == "recipient" and says in error["message"]
        assert "pass" not in reply.text, "a refusal does not repeat the URL's credentials"
        stats = await h.client.get("/api/notifications/stats/system")
        assert stats.json()["data"]["total"] == 0
        await asyncio.sleep(0.2)
    assert listener.reached == 0


def test_the_accepted_services_are_the_operators_to_choose(monkeypatch: pytest.MonkeyPatch) -> None:
    body = {
        "type": "CHAT",
        "recipient": "gotify://gotify.example.com/AbCdEfGhIjKlMnO",
        "message": "x",
    }
    with pytest.raises(ValidationError, match="HERALD_CHAT_SCHEMES"):
        NotificationIn.model_validate(body)
    monkeypatch.setattr(validation, "chat_schemes", frozenset({"gotify"}))
    assert NotificationIn.model_validate(body).recipient == body["recipient"]
    monkeypatch.setattr(validation, "chat_schemes", frozenset({"gotify", "rsyslog"}))
    with pytest.raises(ValidationError, match="cannot guard"):
        NotificationIn.model_validate({**body, "recipient": "rsyslog://10.0.0.1"})


# -- the Apprise provider, with services an operator enabled ----------------------------


@pytest.mark.parametrize(
    "form",
    [
        "gotify://127.0.0.1:{port}/AbCdEfGhIjKlMnO",
        "gotify://[::1]:{port}/AbCdEfGhIjKlMnO",
        "gotifys://localhost:{port}/AbCdEfGhIjKlMnO",
        "json://[::ffff:7f00:1]:{port}/hook",  # IPv4-mapped IPv6
        "json://localhost:{port}/hook",
        "matrixs://user:pass@127.0.0.1:{port}/#room",
        "ntfy://[::1]:{port}/t",
    ],
)
async def test_services_an_operator_enables_cannot_reach_loopback_either(
    chat: MakeChat, listener: Listener, connects: list[tuple[str, int]], form: str
) -> None:
    provider = chat(chat_schemes=["gotify", "gotifys", "json", "matrixs", "ntfy"])
    url = form.format(port=listener.port)

    with pytest.raises(PermanentError, match=WITHHELD):
        await provider.send(note(url))

    await asyncio.sleep(0.05)
    assert connects == [] and listener.reached == 0


async def test_a_name_resolving_to_loopback_is_refused(
    chat: MakeChat, listener: Listener, connects: list[tuple[str, int]]
) -> None:
    names = Names({"localtest.me": ["127.0.0.1"], "mixed.example.com": ["93.184.215.14", "::1"]})
    provider = chat(names)

    for host in ("localtest.me", "mixed.example.com"):
        with pytest.raises(PermanentError) as caught:
            await provider.send(note(f"ntfy://{host}:{listener.port}/t"))
        assert str(caught.value) == withheld(host)

    assert names.lookups == ["localtest.me", "mixed.example.com"]
    assert connects == [] and listener.reached == 0


async def test_the_address_checked_is_the_address_connected_to(
    chat: MakeChat, connects: list[tuple[str, int]]
) -> None:
    """An admitted name is resolved once and the connection goes to that answer: a
    DNS server that answers differently the second time (rebinding) is never asked."""
    async with fake_server(lambda seen: Reply.json(200, {"ok": True})) as server:
        port = int(server.url.rsplit(":", 1)[1])
        names = Names({"chat.test": ["127.0.0.1"]})
        provider = chat(names, chat_schemes=["json"], chat_allow_hosts="chat.test")

        await provider.send(note(f"json://chat.test:{port}/hook"))

    assert names.lookups == ["chat.test"]
    assert connects == [("127.0.0.1", port)]
    [seen] = server.seen
    assert seen.headers["host"] == f"chat.test:{port}" and seen.path == "/hook"


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_from_an_allowed_host_is_not_followed(
    chat: MakeChat, listener: Listener, status: int
) -> None:
    if not listener.ipv6:
        pytest.skip("no IPv6 loopback to redirect to")
    target = f"http://[::1]:{listener.port}/latest/meta-data/"
    async with fake_server(lambda seen: Reply(status, b"", {"location": target})) as server:
        provider = chat(chat_schemes=["json"], chat_allow_hosts="127.0.0.1")

        with pytest.raises(PermanentError, match="redirect"):
            await provider.send(note(server.url.replace("http://", "json://") + "/hook"))

    await asyncio.sleep(0.05)
    assert [seen.path for seen in server.seen] == ["/hook"]
    assert listener.reached == 0


@pytest.mark.parametrize(
    "form",
    [
        "rsyslog://127.0.0.1:{udp}",
        "mailto://user:pass@127.0.0.1:{port}?to=ops@example.com",
        "mailtos://user:pass@localhost:{port}?to=ops@example.com",
    ],
)
async def test_a_stored_udp_or_smtp_url_sends_nothing(
    chat: MakeChat, listener: Listener, form: str
) -> None:
    """A row stored before this check existed still reaches the provider: it refuses it."""
    url = form.format(port=listener.port, udp=listener.udp_port)

    with pytest.raises(PermanentError, match="not an accepted chat service"):
        await chat().send(note(url))

    await asyncio.sleep(0.1)
    assert listener.reached == 0


@pytest.mark.parametrize("scheme", ["rsyslog", "syslog", "mailto", "mailtos", "xmpp", "mqtt"])
def test_services_the_guard_cannot_watch_cannot_be_enabled(tmp_path: Path, scheme: str) -> None:
    settings = make_settings(tmp_path, chat_schemes=f"slack, {scheme}")  # as the variable reads

    with pytest.raises(ConfigError, match=f"HERALD_CHAT_SCHEMES.*{scheme}"):
        AppriseProvider(settings, cast(Store, None))


async def test_refused_unknown_and_silent_destinations_read_the_same(chat: MakeChat) -> None:
    url = f"ntfy://probe.test:{free_port()}/t"
    refused = chat(Names({"probe.test": ["127.0.0.1"]}))
    unknown = chat(Names({"probe.test": None}))
    silent = chat(Names({"probe.test": ["127.0.0.1"]}), chat_allow_hosts="probe.test")

    errors = []
    for provider in (refused, unknown, silent):
        with pytest.raises((PermanentError, TransientError)) as caught:
            await provider.send(note(url))
        errors.append(caught.value)

    assert {str(e) for e in errors} == {withheld("probe.test")}
    assert [type(e) for e in errors] == [PermanentError, PermanentError, TransientError]


# -- status callbacks -----------------------------------------------------------------

EMAIL = {"type": "EMAIL", "recipient": "ops@example.com", "subject": "s", "message": "m"}
WEBHOOKS = {
    "email_providers": ["fault"],
    "webhook_providers": ["webhook"],
    "webhook_secret": "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0",
}


async def callbacks(h: Any, count: int) -> list[dict[str, Any]]:
    """The callback notifications, once ``count`` of them have ended."""
    for _ in range(500):
        reply = await h.client.get("/api/notifications", params={"type": "WEBHOOK"})
        found = reply.json()["data"]["notifications"]
        if len(found) == count and all(n["status"] in ("FAILED", "RETRYING") for n in found):
            return list(found)
        await asyncio.sleep(0.02)
    raise AssertionError(f"callbacks did not end: {found}")


async def test_a_status_callback_to_loopback_is_refused(herald: Any, listener: Listener) -> None:
    port = listener.port
    urls = [f"http://127.0.0.1:{port}/cb", f"http://[::1]:{port}/cb",
            f"http://2130706433:{port}/cb", f"http://0x7f000001:{port}/cb",
            f"http://[::ffff:127.0.0.1]:{port}/cb", "http://nosuch.invalid/cb"]  # fmt: skip
    tenant_wide = f"http://localhost:{port}/tenant"
    async with herald(**WEBHOOKS, callback_url=tenant_wide) as h:
        for url in urls:
            reply = await h.client.post("/api/notifications", json={**EMAIL, "callbackUrl": url})
            assert reply.status_code == 201, reply.text
        await h.client.post("/api/notifications", json=EMAIL)  # calls back HERALD_CALLBACK_URL
        ended = await callbacks(h, len(urls) + 1)

    await asyncio.sleep(0.05)
    assert listener.reached == 0
    for callback in ended:
        error = callback["error"]
        assert error.startswith("cannot reach ") and error.endswith(WITHHELD), error
    assert {c["recipient"] for c in ended} == {*urls, tenant_wide}


# -- credentials are masked -----------------------------------------------------------


def test_credentials_in_urls_are_masked() -> None:
    cases = {
        "rocket://user:pass@chat.example.com/room": "rocket://user:****@chat.example.com/room",
        "rocket://user:p@ss@chat.example.com/room": "rocket://user:****@chat.example.com/room",
        "ntfys://tk_AbC@ntfy.example.com/alerts": "ntfys://****@ntfy.example.com/alerts",
        "failed at mmost://a:b@x.example/c and json://d:e@y.example/": (
            "failed at mmost://a:****@x.example/c and json://d:****@y.example/"
        ),
        "slack://T1/B2/C3": "slack://T1/B2/C3",
        "https://example.com/hook?reply=ops@example.com": (
            "https://example.com/hook?reply=ops@example.com"
        ),
        "ops@example.com": "ops@example.com",
    }
    for given, shown in cases.items():
        assert mask_credentials(given) == shown


SECRETS = ("pa55word", "s3cret", "hunter2", "l3ak")


def assert_masked(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} shows {leaked}"


async def test_credentials_are_masked_in_answers_audit_and_dashboard(herald: Any) -> None:
    """The store keeps the URLs whole (delivery needs them); nothing shows them."""
    moved = "https://mallory:l3ak@elsewhere.example/"
    chat_url = "ntfys://alice:pa55word@ntfy.example.com/alerts"
    async with (
        fake_server(lambda seen: Reply(302, b"", {"location": moved})) as server,
        herald(**WEBHOOKS, webhook_allow_hosts="127.0.0.1") as h,
    ):
        hook_url = server.url.replace("http://", "http://hook:s3cret@") + "/in"
        created = [
            await h.client.post("/api/notifications", json={
                "type": "CHAT", "recipient": chat_url, "message": "m",
                "callbackUrl": f"{server.url.replace('http://', 'http://cb:hunter2@')}/cb"}),
            await h.client.post("/api/notifications", json={
                "type": "WEBHOOK", "recipient": hook_url, "message": "m"}),
        ]  # fmt: skip
        for reply in created:
            assert reply.status_code == 201, reply.text
            assert_masked(reply.text, "the create answer")
        chat_id, hook_id = (reply.json()["data"]["_id"] for reply in created)
        chat_detail = await h.wait_status(chat_id, "SENT")
        hook_detail = await h.wait_status(hook_id, "FAILED")
        await asyncio.sleep(0.3)  # the chat notification's callback goes out (and is redirected)

        assert chat_detail["notification"]["recipient"] == (
            "ntfys://alice:****@ntfy.example.com/alerts"
        )
        assert hook_detail["notification"]["recipient"].startswith("http://hook:****@127.0.0.1:")
        assert "mallory:****@elsewhere.example" in hook_detail["notification"]["error"]
        audit = " ".join(entry["message"] for entry in hook_detail["logs"])
        assert "mallory:****@elsewhere.example" in audit, "the audit trail quotes the redirect"

        pages = {
            "the API": ["/api/notifications", f"/api/notifications/{chat_id}",
                        f"/api/notifications/{hook_id}", f"/api/notifications/{hook_id}/logs",
                        "/api/mailbox", "/api/dlq"],
            "the dashboard": ["/dashboard", "/dashboard/notifications", "/dashboard/dlq",
                              f"/dashboard/notifications/{chat_id}", "/dashboard/mailbox",
                              f"/dashboard/notifications/{hook_id}"],
        }  # fmt: skip
        for where, paths in pages.items():
            for path in paths:
                reply = await h.client.get(path)
                if reply.status_code == 404:
                    continue
                assert reply.status_code == 200, (path, reply.text)
                assert_masked(reply.text, f"{where} at {path}")
        listed = await h.client.get("/api/notifications", params={"type": "WEBHOOK"})
        found = listed.json()["data"]["notifications"]
        callback_ids = [n["_id"] for n in found if n["_id"] != hook_id]
        assert callback_ids, "the chat notification called back"
        for callback_id in callback_ids:
            reply = await h.client.get(f"/api/notifications/{callback_id}")
            assert_masked(reply.text, "a callback's event")
            page = await h.client.get(f"/dashboard/notifications/{callback_id}")
            assert_masked(page.text, "a callback's page")
        overview = await h.client.get("/dashboard/notifications")
        assert "alice:****@ntfy.example.com" in overview.text

        stored = await h.engine.store.get("default", chat_id)
        assert stored is not None and stored.recipient == chat_url, "delivery keeps the URL"


async def test_credentials_never_reach_the_logs_of_failing_sends(
    herald: Any, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every log of a failing chat or webhook send: Herald's own (structlog, tracebacks
    rendered as text), the libraries' (stdlib logging, httpx's "HTTP Request: POST <url>"
    at INFO above all), and whatever reached the terminal."""
    secret = "zq-s3cret-9"
    caplog.set_level(logging.DEBUG)
    chat_schemes = ["json", "jsons", "ntfys"]
    with structlog.testing.capture_logs(
        processors=[structlog.processors.format_exc_info]
    ) as logged:
        async with (
            fake_server(lambda seen: Reply(500, b"boom")) as server,
            herald(**WEBHOOKS, webhook_allow_hosts="127.0.0.1", chat_allow_hosts="127.0.0.1",
                   chat_providers=["apprise"], chat_schemes=chat_schemes) as h,
        ):  # fmt: skip
            port = server.url.rsplit(":", 1)[1]
            sends = [
                ("WEBHOOK", f"https://hook:{secret}@127.0.0.1:{port}/in"),  # no TLS there
                ("WEBHOOK", f"http://hook:{secret}@127.0.0.1:{port}/in"),  # answers 500
                ("WEBHOOK", f"https://hook:{secret}@127.0.0.2:{port}/in"),  # not admitted
                ("WEBHOOK", f"https://hook:{secret}@nosuch.invalid/in"),
                ("CHAT", f"jsons://user:{secret}@127.0.0.1:{port}/hook"),
                ("CHAT", f"json://user:{secret}@127.0.0.1:{port}/hook"),
                ("CHAT", f"ntfys://user:{secret}@127.0.0.1:{port}/topic"),
            ]
            made = []
            for kind, url in sends:
                body = {"type": kind, "recipient": url, "message": "m"}
                reply = await h.client.post("/api/notifications", json=body)
                assert reply.status_code == 201, reply.text
                made.append(reply.json()["data"]["_id"])
            for notification_id in made:
                await h.wait_status(notification_id, "FAILED", "RETRYING")

    hook = next(seen for seen in server.seen if seen.path == "/in")
    assert (
        hook.headers["authorization"]
        == "Basic " + base64.b64encode(f"hook:{secret}".encode()).decode()
    ), "the receiver still gets the URL's credentials"
    events = {entry["event"] for entry in logged}
    assert {"webhook_unreachable", "webhook_destination_refused", "apprise_failed"} <= events
    assert re.search(rf"HTTP Request: POST http://\S*127\.0\.0\.1:{port}/in", caplog.text)
    printed = capfd.readouterr()
    herald_log = "\n".join(repr(entry) for entry in logged)
    for where, text in {"Herald's log": herald_log, "the libraries' log": caplog.text,
                        "stdout": printed.out, "stderr": printed.err}.items():  # fmt: skip
        leaked = [line for line in text.splitlines() if secret in line]
        assert not leaked, f"{where}: {leaked[:3]}"

"""The httpx door to the destination guard, on its own: ``GuardedTransport`` and its backend.

Every test watches where sockets really go: a listener on 127.0.0.1 counts
what connects, and a spy on ``anyio.connect_tcp`` (through which httpcore's
backend opens every TCP connection) records each address asked for. A
transport whose pool connected without the guarded backend would reach the
listener, and would hand the spy a host name rather than a checked address.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx
import pytest
import trustme

from herald.errors import RefusedDestination
from herald.providers import httpapi
from herald.providers.httpxdoor import GuardedTransport
from herald.providers.ssrf import Allowance, Guard
from tests.integration.fakehttp import Reply, fake_server
from tests.integration.watch import Listener, connects_fixture, listener_fixture  # noqa: F401


class Rebinding:
    """A resolver that answers ``first`` once, then ``later``: a DNS rebinding attack."""

    def __init__(self, first: str, later: str) -> None:
        self.answers = [first, later]
        self.lookups = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return [self.answers[min(self.lookups, 2) - 1]]


def transport(allow: str = "", resolver: Any = None, **options: Any) -> GuardedTransport:
    return GuardedTransport(Guard(Allowance.parse(allow, "VAR"), resolver), **options)


@pytest.mark.parametrize(
    "form",
    ["http://127.0.0.1:{port}/", "http://[::ffff:127.0.0.1]:{port}/", "http://2130706433:{port}/",
     "http://localhost:{port}/", "https://127.0.0.1:{port}/"],
)  # fmt: skip
async def test_the_transport_refuses_loopback_before_any_socket(
    listener: Listener, connects: list[tuple[str, int]], form: str
) -> None:
    async with httpx.AsyncClient(transport=transport()) as client:
        with pytest.raises(RefusedDestination, match="loopback"):
            await client.get(form.format(port=listener.port))

    await asyncio.sleep(0.05)
    assert connects == [] and listener.accepted == 0


async def test_the_connection_goes_to_the_address_checked_not_to_a_second_lookup(
    connects: list[tuple[str, int]],
) -> None:
    """The name reaches the socket layer never: only the checked address does."""
    resolver = Rebinding("127.0.0.1", "10.0.0.1")
    async with (
        fake_server(lambda seen: Reply(200, b"ok")) as server,
        httpx.AsyncClient(transport=transport("hooks.internal", resolver)) as client,
    ):
        port = int(server.url.rsplit(":", 1)[1])
        for _ in range(2):  # the second request reuses the connection, or checks again
            reply = await client.get(f"http://hooks.internal:{port}/in")
            assert reply.status_code == 200 and reply.text == "ok"

    assert connects and all(address == ("127.0.0.1", port) for address in connects)
    assert server.seen[0].headers["host"] == f"hooks.internal:{port}"


async def test_a_rebound_name_is_refused_when_it_is_checked_again(
    listener: Listener, connects: list[tuple[str, int]]
) -> None:
    resolver = Rebinding("127.0.0.1", "127.0.0.1")
    async with httpx.AsyncClient(transport=transport("10.0.0.0/8", resolver)) as client:
        with pytest.raises(RefusedDestination, match=r"rebound\.test \(127\.0\.0\.1\): loopback"):
            await client.get(f"http://rebound.test:{listener.port}/")

    assert resolver.lookups == 1 and connects == [] and listener.accepted == 0


async def test_a_redirect_a_client_follows_is_guarded_again(
    listener: Listener, connects: list[tuple[str, int]]
) -> None:
    """Herald's clients follow no redirect; one that did would still meet the guard."""
    target = f"http://localhost:{listener.port}/latest/meta-data/"
    names = Rebinding("127.0.0.1", "127.0.0.1")  # hooks.internal, then localhost
    async with (
        fake_server(lambda seen: Reply(302, b"", {"location": target})) as server,
        httpx.AsyncClient(
            transport=transport("hooks.internal", names), follow_redirects=True
        ) as client,
    ):
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(RefusedDestination, match=r"localhost \(127\.0\.0\.1\): loopback"):
            await client.get(f"http://hooks.internal:{port}/hook")

    assert [seen.path for seen in server.seen] == ["/hook"]
    assert connects == [("127.0.0.1", port)] and listener.accepted == 0


async def test_proxies_from_the_environment_are_not_used(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = f"http://127.0.0.1:{listener.port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with (
        fake_server(lambda seen: Reply(204)) as server,
        httpapi.new_client(transport=transport("127.0.0.1")) as client,
    ):
        reply = await client.post(server.url + "/in", content=b"{}")

    assert reply.status_code == 204 and len(server.seen) == 1
    assert listener.accepted == 0, "the request went through the proxy"


async def test_a_unix_socket_is_refused() -> None:
    with pytest.raises(RefusedDestination, match="Unix socket"):
        await transport().backend.connect_unix_socket("/run/docker.sock")


async def test_unreachable_and_unresolvable_hosts_are_httpx_errors() -> None:
    """Providers catch httpx's errors: httpcore's must not leak past the transport."""
    async with httpx.AsyncClient(transport=transport("127.0.0.1")) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/")  # discard: nothing listens

    def broken(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    async with httpx.AsyncClient(transport=transport("", broken)) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await client.get("http://flaky.test/")


# -- TLS: the certificate and SNI are the URL's name, the socket the checked address ---


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def https_listener(ca: trustme.CA, *names: str) -> tuple[Listener, list[str | None]]:
    """A TLS listener with a certificate for ``names``, and the SNI names it is sent."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    server = Listener(context)
    await server.start()
    return server, sni


async def test_tls_checks_the_certificate_of_the_name_not_the_address(
    ca: trustme.CA, connects: list[tuple[str, int]]
) -> None:
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    server, sni = await https_listener(ca, "hooks.internal")
    resolver = Rebinding("127.0.0.1", "127.0.0.1")
    try:
        guarded = transport("hooks.internal", resolver, ssl_context=trusted)
        async with httpx.AsyncClient(transport=guarded) as client:
            reply = await client.get(f"https://hooks.internal:{server.port}/")
    finally:
        await server.stop()

    assert reply.status_code == 200 and reply.text == "ok"
    assert sni == ["hooks.internal"]
    assert connects == [("127.0.0.1", server.port)]


async def test_tls_refuses_a_certificate_for_another_name(ca: trustme.CA) -> None:
    trusted = ssl.create_default_context()
    ca.configure_trust(trusted)
    server, _ = await https_listener(ca, "elsewhere.example")
    try:
        guarded = transport(
            "hooks.internal", Rebinding("127.0.0.1", "127.0.0.1"), ssl_context=trusted
        )
        async with httpx.AsyncClient(transport=guarded) as client:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await client.get(f"https://hooks.internal:{server.port}/")
    finally:
        await server.stop()

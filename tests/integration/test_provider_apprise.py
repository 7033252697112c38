"""The Apprise provider, posting through Apprise's ``json://`` service to a local server.

The local server runs in the test's event loop, so a send that blocked the
loop would never be answered: each delivery here also shows that Apprise's
blocking HTTP call ran off the loop. The server is on loopback, which the
destination guard refuses unless ``HERALD_CHAT_ALLOW_HOSTS`` admits it, and
``json://`` is accepted only when ``HERALD_CHAT_SCHEMES`` names it
(tests/integration/test_destination_guard.py tests the guard itself).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_asyncio

from herald.errors import PermanentError, TransientError
from herald.models import Channel, new_id
from herald.providers.base import Message
from herald.providers.chat import AppriseProvider
from herald.store.base import Store
from tests.conftest import make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server

#: Apprise imports a module Python 3.13 removes; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")


class ChatService:
    """Accepts Apprise's JSON notification; ``queued`` replies first."""

    def __init__(self) -> None:
        self.queued: list[Reply] = []
        self.latency = 0.0

    async def __call__(self, seen: Seen) -> Reply:
        await asyncio.sleep(self.latency)
        if self.queued:
            return self.queued.pop(0)
        return Reply.json(200, {"ok": True})


@pytest_asyncio.fixture
async def chat() -> AsyncIterator[tuple[FakeServer, ChatService]]:
    service = ChatService()
    async with fake_server(service) as server:
        yield server, service


@pytest_asyncio.fixture
async def provider(tmp_path: Path) -> AsyncIterator[AppriseProvider]:
    settings = make_settings(tmp_path, chat_schemes=["json", "slack"], chat_allow_hosts="127.0.0.1")
    made = AppriseProvider(settings, cast(Store, None))
    yield made
    await made.close()


def note(recipient: str, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": new_id(),
        "tenant_id": "default",
        "channel": Channel.CHAT,
        "recipient": recipient,
        "subject": "Deploy finished",
        "body": "api v2.3.1 is live ✓",
        **fields,
    }
    return Message(**values)


def json_url(server: FakeServer, path: str = "/hooks/chat") -> str:
    return server.url.replace("http://", "json://") + path


async def test_apprise_posts_its_json_notification(
    chat: tuple[FakeServer, ChatService], provider: AppriseProvider
) -> None:
    server, _ = chat
    message = note(json_url(server))

    receipt = await provider.send(message)

    assert receipt.provider == "apprise"
    assert receipt.message_id == f"apprise-{message.id}"
    [seen] = server.seen
    assert seen.method == "POST" and seen.path == "/hooks/chat"
    assert seen.headers["content-type"].startswith("application/json")
    body = seen.json()
    assert body["title"] == "Deploy finished"
    assert body["message"] == "api v2.3.1 is live ✓"
    assert body["type"] == "info"


async def test_concurrent_sends_do_not_wait_for_each_other(
    chat: tuple[FakeServer, ChatService], provider: AppriseProvider
) -> None:
    server, service = chat
    service.latency = 0.2
    started = asyncio.get_running_loop().time()

    await asyncio.gather(*(provider.send(note(json_url(server))) for _ in range(8)))

    assert len(server.seen) == 8
    assert asyncio.get_running_loop().time() - started < 8 * 0.2 * 0.75  # not one by one


async def test_a_failed_delivery_is_transient_and_says_why(
    chat: tuple[FakeServer, ChatService], provider: AppriseProvider
) -> None:
    server, service = chat
    service.queued.append(Reply(500, b"boom"))

    with pytest.raises(TransientError, match="500") as caught:
        await provider.send(note(json_url(server)))

    assert "json://" in str(caught.value)


@pytest.mark.parametrize("recipient", ["json://", "slack://not-enough-tokens"])
async def test_a_url_apprise_cannot_use_is_permanent(
    provider: AppriseProvider, recipient: str
) -> None:
    scheme = recipient.split("://")[0]

    with pytest.raises(PermanentError, match=f"this {scheme}:// URL"):
        await provider.send(note(recipient))


async def test_a_service_not_accepted_is_permanent(provider: AppriseProvider) -> None:
    with pytest.raises(PermanentError, match="nosuchservice:// is not an accepted chat service"):
        await provider.send(note("nosuchservice://token/abc"))

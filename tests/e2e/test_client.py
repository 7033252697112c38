"""``herald.client`` against a live ``herald up``: every kind of route, its errors and retries.

One Herald serves the module; each test works in a tenant of its own (a key
made for it by the admin key), so counts are its own. Email goes to the
capture provider and SMS to the fault provider, failing for good, so SMS
notifications land in the DLQ.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald.client import (
    AsyncHerald,
    Conflict,
    Forbidden,
    Herald,
    NewApiKey,
    NotFound,
    NotificationDraft,
    RateLimited,
    RetryPolicy,
    Target,
    Unauthorized,
    ValidationFailed,
)
from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import poll
from tests.e2e.relay import LossyRelay, first
from tests.seeds.conftest import Live, running, wait_for

pytestmark = pytest.mark.slow

README = Path(__file__).parents[2] / "README.md"
ENV = {
    "HERALD_SMS_PROVIDERS": "fault",
    "HERALD_FAULT_FAILURE_RATE": "1",
    "HERALD_FAULT_ERROR": "permanent",
}
LATER = 3600  # seconds: a notification that stays SCHEDULED, so it can be cancelled


@pytest.fixture(scope="module")
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    with running("sqlite", tmp_path_factory.mktemp("client"), ENV, request) as herald:
        yield herald


@pytest.fixture
def admin(live: Live) -> Iterator[Herald]:
    with Herald(live.process.url, ADMIN_KEY) as herald:
        yield herald


def tenant_key(admin: Herald, *scopes: str, rate_limit: str | None = None) -> NewApiKey:
    """A key of a tenant of its own, with ``scopes`` (all but admin by default)."""
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    return admin.create_key("client-test", scopes or ("send", "read", "manage"),
                            tenant=tenant, rate_limit=rate_limit)  # fmt: skip


@pytest.fixture
def herald(live: Live, admin: Herald) -> Iterator[Herald]:
    with Herald(live.process.url, tenant_key(admin).key) as client:
        yield client


def test_create_get_list_iterate_cancel_and_delete(herald: Herald) -> None:
    later = [herald.create_notification(type="EMAIL", recipient=f"u{n}@example.com",
                                        subject="Hi", message=f"number {n}",
                                        delay_seconds=LATER, metadata={"n": n})
             for n in range(5)]  # fmt: skip
    assert {n.status for n in later} == {"SCHEDULED"} and later[0].metadata == {"n": 0}
    listed = herald.list_notifications(limit=2)
    assert [n.id for n in listed.items] == [later[4].id, later[3].id], "newest first"
    assert (listed.pagination.total_items, listed.pagination.total_pages) == (5, 3)
    walked = [n.id for n in herald.iter_notifications(page_size=2)]
    assert walked == [n.id for n in reversed(later)], "every page, each once"

    cancelled = herald.cancel_notification(later[0].id)
    assert cancelled.status == "CANCELLED"
    with pytest.raises(Conflict) as again:
        herald.cancel_notification(later[0].id)
    assert again.value.status == 409 and "CANCELLED" in again.value.message
    assert [n.id for n in herald.iter_notifications(status="CANCELLED")] == [later[0].id]
    herald.delete_notification(later[0].id)
    with pytest.raises(NotFound):
        herald.get_notification(later[0].id)

    now = herald.create_notification(type="EMAIL", recipient="ada@example.com",
                                     subject="Welcome", message="Hello Ada")  # fmt: skip
    sent = wait_for(lambda: herald.get_notification(now.id).notification.status == "SENT",
                    "the email to be SENT")  # fmt: skip
    detail = herald.get_notification(now.id)
    assert sent and [log.status for log in detail.logs][-1] == "SENT"
    assert detail.notification.provider == "capture" and detail.notification.attempts == 1
    assert now.id in {m.notification_id for m in herald.mailbox(type="EMAIL")}


def test_bulk_and_refusals_carry_their_field_errors(live: Live, admin: Herald) -> None:
    with Herald(live.process.url, tenant_key(admin).key) as herald:
        good = NotificationDraft(type="SMS", recipient="+1 415 555 0123", message="code 1234")
        bad = NotificationDraft(type="EMAIL", recipient="not-an-address", message="Hi")
        result = herald.create_bulk([good, bad])
        assert (result.accepted, result.rejected) == (1, 1)
        assert {e.field for e in result.results[1].errors} == {"recipient", "subject"}
        with pytest.raises(ValidationFailed) as atomic:
            herald.create_bulk([good, bad], atomic=True)
        assert atomic.value.body["data"]["accepted"] == 0
        assert herald.list_notifications().pagination.total_items == 1, "atomic stored nothing"

        with pytest.raises(ValidationFailed) as refused:
            herald.create_notification(type="EMAIL", recipient="nobody", message="")
        assert refused.value.status == 422 and set(refused.value.fields) == {
            "recipient", "subject", "message",
        }  # fmt: skip
        with pytest.raises(ValidationFailed) as paged:
            herald.list_notifications(limit=1000)
        assert list(paged.value.fields) == ["query.limit"]
        with pytest.raises(NotFound) as missing:
            herald.get_notification("no-such-id")
        assert "no-such-id" in missing.value.message
    with Herald(live.process.url, "hk_not-a-key-herald-knows") as stranger:
        with pytest.raises(Unauthorized):
            stranger.stats()
        assert stranger.health().status == "healthy", "health needs no key"
    with Herald(live.process.url, tenant_key(admin, "read").key) as reader:
        with pytest.raises(Forbidden) as forbidden:
            reader.create_notification(type="SMS", recipient="+14155550123", message="x")
        assert forbidden.value.status == 403 and "send" in forbidden.value.message


def test_templates_event_types_and_events(herald: Herald) -> None:
    made = herald.create_template("order-shipped", "Hi {{ name }}, {{ order }} is on its way.",
                                  subject="Order {{ order }} shipped")  # fmt: skip
    assert (made.version, made.channel, made.locale) == (1, "EMAIL", "en")
    with pytest.raises(Conflict):
        herald.create_template("order-shipped", "again", subject="again")
    herald.replace_template("order-shipped", "Hello {{ name }}: {{ order }} shipped.",
                            subject="Order {{ order }}")  # fmt: skip
    preview = herald.render_template("order-shipped", {"name": "Ada", "order": "A-1"})
    assert (preview.subject, preview.text) == ("Order A-1", "Hello Ada: A-1 shipped.")
    assert preview.template.version == 2
    [old] = herald.get_template("order-shipped", version=1)
    assert old.text.startswith("Hi {{ name }}")

    kind = herald.create_event_type("order-shipped", [Target(template="order-shipped")],
                                    redact=["trackingSecret"])  # fmt: skip
    assert kind.source == "api" and kind.targets[0].channel == "EMAIL"
    data = {"name": "Ada", "order": "A-2", "trackingSecret": "s3cret"}
    accepted = herald.create_event("order-shipped", data, recipient="ada@example.com")
    assert len(accepted.notification_ids) == 1
    assert accepted.event.data["trackingSecret"] == "[redacted]"
    shown = herald.get_event(accepted.event.id)
    assert [n.id for n in shown.notifications] == accepted.notification_ids
    assert [e.id for e in herald.iter_events(type="order-shipped")] == [accepted.event.id]
    with pytest.raises(ValidationFailed) as missing:
        herald.create_event("order-shipped", {"name": "Ada"}, recipient="ada@example.com")
    assert "data.order" in missing.value.fields

    assert herald.delete_event_type("order-shipped").now is None
    assert herald.delete_template("order-shipped").deleted == 2
    with pytest.raises(NotFound):
        herald.get_event_type("order-shipped")


def test_dead_letters_listed_replayed_and_deleted(herald: Herald) -> None:
    made = [herald.create_notification(type="SMS", recipient=f"+1415555010{n}", message="x").id
            for n in range(3)]  # fmt: skip
    wait_for(lambda: herald.list_dead_letters().pagination.total_items == 3, "3 dead letters")
    assert {d.id for d in herald.iter_dead_letters(type="SMS", page_size=2)} == set(made)
    hour = timedelta(hours=1)
    assert herald.list_dead_letters(since=datetime.now(UTC) - hour).pagination.total_items == 3
    assert herald.list_dead_letters(until=datetime.now(UTC) - hour).items == []
    dead = herald.list_dead_letters(error="injected", limit=1).items[0]
    assert dead.status == "FAILED" and dead.queue == "dlq"

    replayed = herald.replay_dead_letters([made[0]])
    assert replayed.ids == [made[0]]
    logs = herald.get_notification(made[0]).logs
    assert any(log.status == "QUEUED" and "replay" in log.message.lower() for log in logs)
    herald.delete_dead_letter(made[1])
    with pytest.raises(NotFound):
        herald.delete_dead_letter(made[1])
    wait_for(lambda: herald.list_dead_letters().pagination.total_items == 2, "the replay to fail")
    assert herald.replay_dead_letters(type="SMS").replayed == 2


def test_operations_keys_suppressions_and_seed_routes(herald: Herald, admin: Herald) -> None:
    assert admin.pause_queue("mail").lanes == ["email"]  # lanes are every tenant's: admin
    assert herald.queue_health().queues["email"].paused
    assert not admin.resume_queue("email").paused
    assert herald.stats().total == 0
    assert {p.name for p in herald.providers()} == {"capture", "fault"}
    assert "notifications_created_total" in admin.metrics()

    assert herald.add_suppression("Ann@Example.com", detail="asked by phone").added == 1
    assert [s.recipient for s in herald.iter_suppressions()] == ["ann@example.com"]
    assert herald.remove_suppression("ann@example.com") == 1
    assert herald.put_category("newsletter", unsubscribable=True).unsubscribable
    assert [c.name for c in herald.list_categories()] == ["newsletter"]

    made = herald.create_key("ci", ["read"], rate_limit="100/s")
    assert made.key.startswith("hk_") and made.scopes == ["read"]
    herald.revoke_key(made.id)
    assert made.id not in {k.id for k in herald.list_keys()}

    assert herald.notify("email", "bob@example.com", "Hello", subject="Hi").status == "queued"
    signup = herald.create_signup("ada", "ada@example.com", 42, first_name="Ada")
    status = herald.welcome_email_status(signup.id).welcome_email
    assert status.notification_id == signup.welcome_email.notification_id
    assert herald.signup_statistics().total_signups == 1


def test_an_admin_key_acts_for_a_tenant(live: Live, admin: Herald) -> None:
    theirs = tenant_key(admin)
    with Herald(live.process.url, theirs.key) as tenant:
        made = tenant.create_notification(type="SMS", recipient="+14155550100", message="x",
                                          delay_seconds=LATER)  # fmt: skip
    with Herald(live.process.url, ADMIN_KEY, tenant=theirs.tenant) as acting:
        assert [n.id for n in acting.list_notifications().items] == [made.id]
    with pytest.raises(NotFound):
        admin.get_notification(made.id)  # the admin key's own tenant holds no such id


def test_a_create_whose_answer_is_lost_is_stored_once(live: Live, admin: Herald) -> None:
    key = tenant_key(admin).key
    with (
        LossyRelay(live.process.port or 0, lose=first("POST", "/api/notifications")) as relay,
        Herald(relay.url, key) as herald,
    ):
        made = herald.create_notification(type="EMAIL", recipient="ada@example.com",
                                          subject="Once", message="only once")  # fmt: skip
    posts = [r for r in relay.requests if r.method == "POST"]
    assert [p.answered for p in posts] == [False, True], "the first answer was lost, then retried"
    assert posts[0].headers["idempotency-key"] == posts[1].headers["idempotency-key"]
    with Herald(live.process.url, key) as direct:
        stored = direct.list_notifications()
    assert [n.id for n in stored.items] == [made.id], "one notification, the one answered"


async def test_the_async_client_retries_pages_and_refuses(live: Live, admin: Herald) -> None:
    key = tenant_key(admin).key
    with LossyRelay(live.process.port or 0, lose=first("POST", "/api/events")) as relay:
        async with AsyncHerald(relay.url, key) as herald:
            accepted = await herald.create_event(
                "signup", {"username": "ada", "email": "ada@example.com", "firstName": "Ada"}
            )
            made = [
                await herald.create_notification(type="EMAIL", recipient=f"u{n}@example.com",
                                                 subject="Hi", message="x", delay_seconds=LATER)
                for n in range(3)
            ]  # fmt: skip
            walked = [n.id async for n in herald.iter_notifications(page_size=2)]
            assert walked == [n.id for n in reversed(made)] + accepted.notification_ids
            with pytest.raises(ValidationFailed) as refused:
                await herald.create_notification(type="SMS", recipient="12", message="x")
            assert list(refused.value.fields) == ["recipient"]
            events = [e async for e in herald.iter_events()]
            assert [e.id for e in events] == [accepted.event.id], "the lost answer stored once"
            await poll(
                lambda: _is_sent(herald, accepted.notification_ids[0]), 30, "the welcome email"
            )
    posts = [r for r in relay.requests if (r.method, r.path) == ("POST", "/api/events")]
    assert [p.answered for p in posts] == [False, True]


async def _is_sent(herald: AsyncHerald, notification_id: str) -> bool:
    return (await herald.get_notification(notification_id)).notification.status == "SENT"


def test_a_rate_limited_key_waits_out_retry_after(live: Live, admin: Herald) -> None:
    key, eager = tenant_key(admin, "read", rate_limit="1/s").key, RetryPolicy(backoff=0.0)
    with Herald(live.process.url, key, retry=eager) as limited:  # waits only as told
        started = time.monotonic()
        for _ in range(3):  # at least two fall in one second's window: one 429 is waited out
            limited.stats()
        assert time.monotonic() - started >= 0.95
    once = RetryPolicy(attempts=1)
    key = tenant_key(admin, "read", rate_limit="1/min").key
    with Herald(live.process.url, key, retry=once) as limited, pytest.raises(RateLimited) as hit:
        for _ in range(3):  # a minute's window: the second or the third is refused
            limited.stats()
    assert hit.value.status == 429 and hit.value.retry_after and hit.value.retry_after >= 1


def test_the_readme_examples_run_as_written(live: Live, tmp_path: Path) -> None:
    block = re.search(r"<!-- python-client -->\n(.*?)<!-- /python-client -->",
                      README.read_text(), re.DOTALL)  # fmt: skip
    assert block, "README lost its Python client examples"
    examples = re.findall(r"```python\n(.*?)```", block.group(1), re.DOTALL)
    assert len(examples) == 2
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin.key").write_text(ADMIN_KEY + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    printed = []
    for example in examples:
        code = example.replace("http://127.0.0.1:8000", live.process.url)
        ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        printed.append(ran.stdout)
    assert "\n1 1 [FieldError(field='recipient'" in printed[0]
    assert "\n422 {'subject': 'is required for EMAIL'}\n" in printed[0]
    assert re.match(r"\['\w+'\]\n", printed[1]), "the signup's notification id"

"""The Receipts and Suppressions ports, on every store (SQLite, PostgreSQL, memory)."""

from __future__ import annotations

import time

import pytest

from herald.errors import ReceiptReplayed
from herald.models import Channel, NewNotification, Sent, Status, Suppressed
from herald.receipts.base import ReceiptEvent, ReceiptKind
from herald.store.base import Store
from herald.store.receipts import Category, Suppression


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def event(
    message_id: str, kind: ReceiptKind, provider: str = "sendgrid", **kw: object
) -> ReceiptEvent:
    return ReceiptEvent(provider, message_id, kind, kind.value, time.time(), **kw)  # type: ignore[arg-type]


async def sent(
    store: Store, recipient: str, message_id: str, tenant: str = "default", **kw: object
) -> str:
    """A notification the provider accepted as ``message_id``; its id."""
    channel = Channel.SMS if message_id.startswith("SM") else Channel.EMAIL
    [n] = await store.create(
        [NewNotification(channel, recipient, "hi", subject="s", tenant_id=tenant, **kw)]
    )  # type: ignore[arg-type]
    [claim] = [c for c in await store.claim(50, 30) if c.id == n.id]
    assert await store.complete([Sent(claim, "smtp", message_id, 1.0, time.time())]) == 1
    return n.id


async def status(store: Store, note_id: str, tenant: str = "default") -> Status:
    found = await store.get(tenant, note_id)
    assert found is not None
    return found.status


async def test_a_receipt_moves_the_status_forward_and_is_a_history_entry(store: Store) -> None:
    note = await sent(store, "a@example.com", "<m1@x>")
    applied = await store.apply_receipts([event("<m1@x>", ReceiptKind.DELIVERED)])
    assert (applied.matched, applied.changed, applied.unknown) == (1, 1, 0)
    assert await status(store, note) is Status.DELIVERED
    last = (await store.audit("default", note))[-1]
    assert last.status is Status.DELIVERED
    assert last.message == "Delivered: sendgrid reported delivered"
    assert last.metadata["receipt"]["provider"] == "sendgrid"
    assert last.metadata["receipt"]["providerMessageId"] == "<m1@x>"


async def test_statuses_never_move_backwards(store: Store) -> None:
    note = await sent(store, "b@example.com", "<m2@x>")
    await store.apply_receipts([event("<m2@x>", ReceiptKind.BOUNCED)])
    late = await store.apply_receipts([event("<m2@x>", ReceiptKind.DELIVERED)])
    assert late.changed == 0 and late.matched == 1
    assert await status(store, note) is Status.BOUNCED
    history = await store.audit("default", note)
    assert history[-1].message.endswith("; status unchanged")
    assert history[-1].status is Status.BOUNCED
    # In one batch too: the highest rank wins whatever the order.
    other = await sent(store, "c@example.com", "<m3@x>")
    await store.apply_receipts([event("<m3@x>", ReceiptKind.COMPLAINED),
                                event("<m3@x>", ReceiptKind.DELIVERED)])  # fmt: skip
    assert await status(store, other) is Status.COMPLAINED


async def test_soft_bounces_are_history_only(store: Store) -> None:
    note = await sent(store, "soft@example.com", "<m4@x>")
    applied = await store.apply_receipts([event("<m4@x>", ReceiptKind.SOFT_BOUNCE)])
    assert (applied.matched, applied.changed, applied.suppressed) == (1, 0, 0)
    assert await status(store, note) is Status.SENT
    assert (await store.suppressions("default"))[1] == 0
    assert "Soft bounce" in (await store.audit("default", note))[-1].message


async def test_unknown_ids_and_other_channels_are_counted_not_applied(store: Store) -> None:
    note = await sent(store, "d@example.com", "<m5@x>")
    applied = await store.apply_receipts([
        event("<nobody@x>", ReceiptKind.DELIVERED),
        event("<m5@x>", ReceiptKind.UNDELIVERED, provider="twilio"),  # an SMS receipt
    ])  # fmt: skip
    assert (applied.events, applied.matched, applied.unknown) == (2, 0, 2)
    assert await status(store, note) is Status.SENT


async def test_hard_bounce_and_complaint_suppress_in_their_tenant(store: Store) -> None:
    bounced = await sent(store, "Bounce@Example.com", "<m6@x>", tenant="acme")
    applied = await store.apply_receipts([event("<m6@x>", ReceiptKind.BOUNCED, detail="550")])
    assert applied.suppressed == 1
    entries, total = await store.suppressions("acme")
    assert total == 1
    [entry] = entries
    assert (entry.recipient, entry.category, entry.reason) == ("bounce@example.com", "", "bounce")
    assert entry.notification_id == bounced and entry.detail == "550"
    assert (await store.suppressions("default"))[1] == 0  # another tenant's list is untouched

    # The next notification to the address is claimed as suppressed; the other tenant's is not.
    [mine] = await store.create([NewNotification(Channel.EMAIL, "bounce@example.com", "x",
                                                 tenant_id="acme")])  # fmt: skip
    [theirs] = await store.create([NewNotification(Channel.EMAIL, "bounce@example.com", "x")])
    claims = {c.id: c for c in await store.claim(10, 30)}
    assert claims[mine.id].suppressed == "bounce"
    assert claims[theirs.id].suppressed is None
    await store.complete([Suppressed(claims[mine.id], "bounce", time.time())])
    assert await status(store, mine.id, "acme") is Status.SUPPRESSED
    assert "suppression list (bounce)" in (await store.audit("acme", mine.id))[-1].message


async def test_ignore_suppression_and_categories(store: Store) -> None:
    await store.suppress([
        Suppression("default", "e@example.com", "", "manual"),
        Suppression("default", "f@example.com", "newsletter", "unsubscribe"),
    ])  # fmt: skip
    await store.save_category(Category("default", "newsletter", True, "Monthly news"))
    items = [
        NewNotification(Channel.EMAIL, "e@example.com", "reset", ignore_suppression=True),
        NewNotification(Channel.EMAIL, "e@example.com", "promo"),
        NewNotification(Channel.EMAIL, "f@example.com", "news", category="newsletter"),
        NewNotification(Channel.EMAIL, "f@example.com", "alert", category="security"),
    ]
    created = await store.create(items)
    claims = {c.id: c for c in await store.claim(10, 30)}
    reset, promo, news, alert = (claims[n.id] for n in created)
    assert reset.suppressed is None
    assert promo.suppressed == "manual"
    assert news.suppressed == "unsubscribe" and news.category == "newsletter"
    assert news.unsubscribable and not alert.unsubscribable
    assert alert.suppressed is None and alert.category == "security"
    stored = await store.get("default", created[0].id)
    assert stored is not None and stored.ignore_suppression and stored.category is None


async def test_suppression_list_operations(store: Store) -> None:
    added = await store.suppress([
        Suppression("default", "g@example.com", "", "manual", detail="asked by phone"),
        Suppression("default", "G@EXAMPLE.com", "", "manual"),  # the same entry
        Suppression("default", "g@example.com", "newsletter", "unsubscribe"),
        Suppression("default", "+15550001111", "", "complaint"),
    ])  # fmt: skip
    assert added == 3
    page, total = await store.suppressions("default", limit=2)
    assert total == 3 and len(page) == 2
    assert (await store.suppressions("default", recipient="G@example.com"))[1] == 2
    assert (await store.suppressions("default", reason="complaint"))[1] == 1
    assert await store.unsuppress("default", "g@example.com", "newsletter") == 1
    assert await store.unsuppress("default", "g@example.com") == 1
    assert await store.unsuppress("other", "+15550001111") == 0
    assert (await store.suppressions("default"))[1] == 1


async def test_categories_are_saved_per_tenant(store: Store) -> None:
    first = await store.save_category(Category("default", "newsletter", True))
    again = await store.save_category(Category("default", "newsletter", False, "quiet"))
    assert again.created_at == first.created_at and not again.unsubscribable
    assert [c.name for c in await store.categories("default")] == ["newsletter"]
    assert await store.categories("acme") == []
    assert await store.delete_category("default", "newsletter")
    assert not await store.delete_category("default", "newsletter")


async def test_replayed_keys_refuse_the_whole_batch(store: Store) -> None:
    note = await sent(store, "h@example.com", "<m7@x>")
    until = time.time() + 600
    await store.apply_receipts([event("<m7@x>", ReceiptKind.OTHER)], seen=[("k1", until)])
    before = len(await store.audit("default", note))
    with pytest.raises(ReceiptReplayed):
        await store.apply_receipts([event("<m7@x>", ReceiptKind.DELIVERED)],
                                   seen=[("k2", until), ("k1", until)])  # fmt: skip
    assert await status(store, note) is Status.SENT
    assert len(await store.audit("default", note)) == before
    # k2 was not kept either: the batch was not applied, so its retry is taken.
    await store.apply_receipts([event("<m7@x>", ReceiptKind.DELIVERED)], seen=[("k2", until)])
    assert await status(store, note) is Status.DELIVERED
    assert await store.forget_receipts_seen() == 0  # none past its time yet


async def test_a_moved_status_is_reported_to_the_callback(store: Store) -> None:
    note = await sent(store, "i@example.com", "<m8@x>", callback_url="https://hooks.example/cb")
    await store.apply_receipts([event("<m8@x>", ReceiptKind.DELIVERED)])
    webhooks = await store.find("default", _webhooks(), 1, 10)
    [callback] = webhooks.items
    assert callback.recipient == "https://hooks.example/cb"
    assert callback.metadata["event"]["event"] == "notification.delivered"
    assert callback.metadata["callbackFor"] == note
    # A default URL is used for a notification without its own.
    plain = await sent(store, "j@example.com", "<m9@x>")
    await store.apply_receipts([event("<m9@x>", ReceiptKind.BOUNCED)],
                               callback_url="https://hooks.example/all")  # fmt: skip
    found = {n.recipient: n for n in (await store.find("default", _webhooks(), 1, 10)).items}
    assert found["https://hooks.example/all"].metadata["event"]["event"] == "notification.bounced"
    assert found["https://hooks.example/all"].metadata["callbackFor"] == plain


async def test_sms_receipts_match_sms_notifications(store: Store) -> None:
    note = await sent(store, "+15550002222", "SM" + "a" * 32)
    applied = await store.apply_receipts(
        [event("SM" + "a" * 32, ReceiptKind.UNDELIVERED, provider="twilio")]
    )
    assert applied.changed == 1
    assert await status(store, note) is Status.UNDELIVERED


def _webhooks():  # type: ignore[no-untyped-def]
    from herald.store.base import ListFilter

    return ListFilter(channel=Channel.WEBHOOK)

"""The access port on every store: keys, users, sessions, lockouts, secrets, retention."""

from __future__ import annotations

import time

import pytest

from herald.access import Role, Scope, hash_password, key_hash, verify_password
from herald.store.access import LOCK_AFTER, LOCK_SECONDS, UserExists
from herald.store.base import Store


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_keys_are_stored_as_hashes_and_scoped_by_tenant(store: Store) -> None:
    access = store.access
    secret, key = await access.create_key("acme", {Scope.SEND, Scope.READ}, name="ci",
                                          rate_limit="10/s")  # fmt: skip
    assert await access.key_by_secret(secret) == key
    assert await access.key_by_hash(key_hash(secret)) == key
    assert await access.key_by_secret(secret + "x") is None
    assert [k.id for k in await access.keys("acme")] == [key.id]
    assert await access.keys("other") == []
    assert await access.usable_keys() == 1

    assert await access.revoke_key(key.prefix, "other") == [], "not across tenants"
    assert await access.revoke_key(key.prefix, "acme") == [key.id]
    assert await access.revoke_key(key.id, None) == [], "revoked once"
    found = await access.key_by_secret(secret)
    assert found is not None and found.revoked_at is not None and not found.usable(time.time())
    assert await access.keys("acme") == []
    assert [k.id for k in await access.keys("acme", revoked=True)] == [key.id]
    assert await access.usable_keys() == 0


async def test_users_sessions_and_their_end(store: Store) -> None:
    access = store.access
    user = await access.create_user("acme", "Ops@Example.com", Role.OPERATOR, hash_password("pw"))
    assert user.email == "ops@example.com"
    with pytest.raises(UserExists):
        await access.create_user("acme", "ops@example.com", Role.VIEWER, "x")
    stored = await access.user("OPS@example.com")
    assert stored is not None and verify_password("pw", stored.password_hash)
    assert not verify_password("wrong", stored.password_hash)

    token, csrf = await access.open_session(user)
    found = await access.session(token)
    assert found is not None and found[0].id == user.id and found[1] == csrf
    assert await access.session(token + "x") is None

    assert await access.set_password("ops@example.com", hash_password("new"))
    assert await access.session(token) is None, "a new password ends every session"
    token, _ = await access.open_session(user)
    assert await access.set_disabled("ops@example.com", True)
    assert await access.session(token) is None, "disabling ends every session"
    assert (await access.user("ops@example.com")).disabled  # type: ignore[union-attr]
    assert not await access.set_disabled("nobody@example.com", True)


async def test_five_failures_lock_and_success_clears(store: Store) -> None:
    access = store.access
    now = time.time()
    for n in range(LOCK_AFTER - 1):
        assert await access.login_failed("address:10.0.0.1", now + n) is None
    until = await access.login_failed("address:10.0.0.1", now + LOCK_AFTER)
    assert until == pytest.approx(now + LOCK_AFTER + LOCK_SECONDS)
    assert await access.locked_until("address:10.0.0.1") == until
    assert await access.locked_until("account:a@b.c") == 0.0
    await access.login_failed("account:a@b.c", now)
    await access.login_succeeded("account:a@b.c")
    for n in range(LOCK_AFTER - 1):
        assert await access.login_failed("account:a@b.c", now + n) is None, "the count restarted"
    # Failures older than the window do not add up to a lock.
    assert await access.login_failed("account:old@b.c", now - 2 * LOCK_SECONDS) is None
    for n in range(LOCK_AFTER - 1):
        assert await access.login_failed("account:old@b.c", now + n) is None


async def test_retention_forgets_what_has_ended(store: Store) -> None:
    access = store.access
    user = await access.create_user("acme", "a@example.com", Role.VIEWER, "h")
    token, _ = await access.open_session(user)
    assert (await store.take_tokens("key:k1@1", 1e-9, 10, 10))[0] == 10
    assert (await store.take_tokens("key:k1@1", 1e-9, 10, 10))[0] == 0, "the window is spent"
    assert (await store.take_tokens("smtp", 1e-9, 5, 5))[0] == 5
    now = time.time()
    await access.expire(now, idle=3600, lifetime=86_400)
    assert await access.session(token) is not None, "a live session stays"
    await access.expire(now + 3 * 3600, idle=3600, lifetime=86_400)
    assert await access.session(token) is None, "an idle session goes"
    # The budget of a past window goes (a new one is full); a provider's bucket stays.
    assert (await store.take_tokens("key:k1@1", 1e-9, 10, 10))[0] == 10
    assert (await store.take_tokens("smtp", 1e-9, 5, 5))[0] == 0
    assert await access.server_secret("s") == await access.server_secret("s")

"""Scopes, roles, rates, tenant names and the secrets behind keys and passwords."""

from __future__ import annotations

import pytest

from herald.access import (
    DUMMY_HASH,
    Rate,
    Role,
    Scope,
    check_tenant,
    grantable,
    hash_password,
    key_hash,
    key_prefix,
    new_key,
    parse_rate,
    parse_scopes,
    verify_password,
)

ALL = frozenset(Scope)


def test_keys_are_256_random_bits_with_a_visible_prefix() -> None:
    one, two = new_key(), new_key()
    assert one != two and one.startswith("hk_") and len(one) == 3 + 43
    assert key_prefix(one) == one[:12] and key_hash(one) != key_hash(two)
    assert len(key_hash(one)) == 64


def test_passwords_are_salted_scrypt() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$32768$8$1$") and stored != hash_password("correct horse")
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong horse", stored)
    assert not verify_password("anything", DUMMY_HASH)
    assert not verify_password("x", "md5$abc")
    assert not verify_password("x" * 5000, stored), "overlong passwords are never hashed"


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("100/s", Rate(100, 1.0)),
        ("100/min", Rate(100, 60.0)),
        (" 5000 / h ", Rate(5000, 3600.0)),
        ("6000/minute", Rate(6000, 60.0)),
    ],
)
def test_rates(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["", "100", "0/s", "-1/s", "1e3/s", "100/day", "x/s"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_scopes_and_grants() -> None:
    assert parse_scopes("send, READ") == {Scope.SEND, Scope.READ}
    with pytest.raises(ValueError, match="'root'"):
        parse_scopes("send,root")
    with pytest.raises(ValueError):
        parse_scopes(" , ")
    manage = frozenset({Scope.MANAGE, Scope.READ})
    assert grantable(manage, frozenset({Scope.READ})) is None
    assert "admin" in (grantable(manage, frozenset({Scope.ADMIN})) or "")
    assert "send" in (grantable(manage, frozenset({Scope.SEND})) or "")
    assert grantable(frozenset({Scope.ADMIN}), ALL) is None


def test_only_the_home_tenants_admins_reach_every_tenant() -> None:
    assert Role.ADMIN.scopes_in("default", "default") == ALL
    assert Scope.ADMIN not in Role.ADMIN.scopes_in("acme", "default")
    assert Role.ADMIN.scopes_in("acme", "default") == Role.OPERATOR.scopes
    assert Role.VIEWER.scopes_in("default", "default") == {Scope.READ}


@pytest.mark.parametrize("name", ["default", "acme", "a.b-c_d", "A1", "x" * 64])
def test_tenant_names(name: str) -> None:
    assert check_tenant(name) == name


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 65, "a/b", "ü"])
def test_bad_tenant_names(name: str) -> None:
    with pytest.raises(ValueError, match="tenant"):
        check_tenant(name)

"""What the receipt verifiers share: the request, the seen-set, bounds and normalisation."""

from __future__ import annotations

import pytest

from herald.receipts import Inbound, ReceiptRefused, ReceiptReplayed, SeenSet, base


def test_header_lookups_ignore_case_and_are_bounded() -> None:
    inbound = Inbound("https://h.example/r", {"X-Some-Header": "v", "LONG": "x" * 100}, b"")
    assert inbound.header("x-some-header") == inbound.header("X-SOME-HEADER") == "v"
    assert inbound.header("absent") is None
    with pytest.raises(ReceiptRefused, match="LONG is longer than 10"):
        inbound.header("LONG", limit=10)
    with pytest.raises(ReceiptRefused, match="absent is missing"):
        inbound.require("absent")


def test_a_request_with_too_many_headers_or_too_long_a_url_is_refused() -> None:
    with pytest.raises(ReceiptRefused, match="more than 128 headers"):
        Inbound("https://h.example/r", {f"h{i}": "v" for i in range(129)}, b"")
    with pytest.raises(ReceiptRefused, match="URL is longer"):
        Inbound("https://h.example/" + "a" * base.MAX_URL, {}, b"")


def test_the_seen_set_refuses_a_second_claim_until_it_expires() -> None:
    seen = SeenSet()
    assert seen.claim("a", now=100.0, ttl=10.0)
    assert not seen.claim("a", now=109.0, ttl=10.0)
    assert seen.claim("a", now=110.5, ttl=10.0)
    seen.release("a")
    assert seen.claim("a", now=111.0, ttl=10.0)
    with pytest.raises(ReceiptReplayed, match="this thing was already received"):
        base.claim(seen, "a", 112.0, 10.0, "this thing")


def test_the_seen_set_is_bounded_and_forgets_the_oldest_first() -> None:
    seen = SeenSet(capacity=3)
    for key in "abcd":
        assert seen.claim(key, now=0.0, ttl=100.0)
    assert seen.claim("a", now=1.0, ttl=100.0)  # pushed out by "d"
    assert not seen.claim("d", now=1.0, ttl=100.0)
    assert len(seen._until) == 3


@pytest.mark.parametrize(
    "given", ["abc@h.example", "<abc@h.example>", "  <abc@h.example> ", "<abc@h.example"]
)
def test_message_ids_are_bracketed_as_the_smtp_provider_keeps_them(given: str) -> None:
    assert base.bracketed(given, "test") == "<abc@h.example>"


@pytest.mark.parametrize("given", ["", "<>", "a\nb", "x" * (base.MAX_ID + 1)])
def test_empty_multiline_or_huge_message_ids_are_refused(given: str) -> None:
    with pytest.raises(ReceiptRefused, match="message id"):
        base.bracketed(given, "test")


def test_details_are_joined_cleaned_and_cut() -> None:
    assert base.detail(None, "", "550", "no\nsuch user") == "550 no such user"
    assert base.detail(None, "") is None
    long = base.detail("x" * 5000)
    assert long is not None and len(long) == base.MAX_DETAIL and long.endswith("…")


@pytest.mark.parametrize("value", [True, "soon", float("nan"), 10.0, 9e12, [1], "1" * 40])
def test_timestamps_that_are_not_one_are_refused(value: object) -> None:
    with pytest.raises(ReceiptRefused, match="when"):
        base.epoch(value, "when")


def test_iso_times_without_a_zone_are_utc() -> None:
    assert base.iso_epoch("2025-10-09T08:53:20", "t") == base.iso_epoch("2025-10-09T08:53:20Z", "t")
    assert base.epoch("1760000000", "t") == 1_760_000_000.0

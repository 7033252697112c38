"""Domain values: ids, queue names."""

from __future__ import annotations

from herald.models import canonical_queue, new_id


def test_ids_sort_in_creation_order_within_a_millisecond() -> None:
    ids = [new_id(1_700_000_000.0) for _ in range(1000)]
    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(len(i) == 32 for i in ids)


def test_queue_names_and_aliases() -> None:
    assert canonical_queue("mail") == "email"
    assert canonical_queue("EMAIL") == "email"
    assert canonical_queue("retry-2") == "retry-2"
    assert canonical_queue("nowhere") is None

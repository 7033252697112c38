"""What an ``Idempotency-Key`` is compared by: the request's path, query and JSON document."""

from __future__ import annotations

from herald.api.idempotency import fingerprint

SCOPE = {"path": "/api/events", "query_string": b""}


def test_the_same_document_in_other_bytes_is_the_same_request() -> None:
    one = fingerprint(SCOPE, b'{"type":"signup","data":{"a":1,"b":[{"y":2,"x":3}]}}')
    other = fingerprint(SCOPE, b'{ "data" : {"b": [{"x": 3, "y": 2}], "a": 1},\n "type": "signup"}')
    assert one == other


def test_any_value_that_reads_differently_is_another_request() -> None:
    def of(body: bytes) -> str:
        return fingerprint(SCOPE, body)

    # Integers of any size keep every digit (a float would make these two equal).
    assert of(b'{"n": 123456789012345678901234567890}') != of(
        b'{"n": 123456789012345678901234567891}'
    )
    assert of(b'{"n": 1}') != of(b'{"n": "1"}')
    assert of(b'{"a": [1, 2]}') != of(b'{"a": [2, 1]}'), "arrays keep their order"
    assert of(b'{"a": 1}') != fingerprint({**SCOPE, "path": "/api/signups"}, b'{"a": 1}')
    assert of(b'{"a": 1}') != fingerprint({**SCOPE, "query_string": b"x=1"}, b'{"a": 1}')


def test_a_body_that_is_not_json_counts_byte_for_byte() -> None:
    assert fingerprint(SCOPE, b"{not json") == fingerprint(SCOPE, b"{not json")
    assert fingerprint(SCOPE, b"{not json") != fingerprint(SCOPE, b"{not json ")
    assert fingerprint(SCOPE, b"[1e400]") != fingerprint(SCOPE, b"[1e401]")

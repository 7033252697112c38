"""Schema-based fuzzing of every route: no 5xx, and every answer matches the OpenAPI document.

Two passes: bodies and parameters the document describes, and, for every
operation that takes a body, bodies that are not JSON at all (broken JSON,
bytes that are not UTF-8, text, forms) under JSON's media type and others.
Either way an answer whose status the document does not list fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests import pg
from tests.conftest import ADMIN_KEY, AUTH, free_port


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def herald_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real `herald up` (API and worker) on each store, as the fuzzer's target."""
    with contextlib.ExitStack() as stack:
        folder: Path = tmp_path_factory.mktemp("fuzz")
        database = f"sqlite:///{folder / 'fuzz.db'}"
        if request.param == "postgres":
            database = stack.enter_context(pg.throwaway_database())
        yield from _serve(folder, database)


def _serve(folder: Path, database: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATABASE_URL=database, HERALD_PORT=str(port),
               HERALD_LOG_LEVEL="warning", HERALD_ADMIN_KEY=ADMIN_KEY)  # fmt: skip
    log = open(folder / "herald.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([sys.executable, "-m", "herald.cli", "up"], cwd=folder, env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, (
                folder / "herald.log"
            ).read_text()
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        failures = (folder / "herald.log").read_text()
        assert "Traceback" not in failures, failures


#: No 5xx; status codes, content types and bodies as documented. (Not
#: "schema-valid data is accepted": the document cannot say that an SMS
#: recipient must be a phone number, so such data is rightly a 422.)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_no_route_fails_or_breaks_its_schema(herald_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{herald_url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 15, "the document lists every route"
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case: Any) -> None:
            case.call_and_validate(base_url=herald_url, checks=CHECKS, headers=AUTH)

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label}: {exc}") from exc


#: Bodies a client may send that are not JSON, and the media types it may claim for them.
NOT_JSON = st.one_of(
    st.sampled_from([b"{not json", b"", b"\xff\xfe\x00", b"[1, 2", b'{"a": 1}}', b"null x"]),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
)
CLAIMED = st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                           "application/octet-stream", "application/problem+json"])  # fmt: skip


def test_bodies_that_are_not_json_get_documented_answers(herald_url: str) -> None:
    api = schemathesis.openapi.from_url(f"{herald_url}/openapi.json", headers=AUTH)
    operations = [result.ok() for result in api.get_all_operations()]
    writes = [o for o in operations if o.method.upper() in ("POST", "PUT", "PATCH")]
    assert len(writes) >= 13, "every operation that takes a body"
    for operation in writes:

        @given(case=operation.as_strategy(), body=NOT_JSON, claimed=CLAIMED)
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        def check(case: Any, body: bytes, claimed: str) -> None:
            headers = {**AUTH, "Content-Type": claimed}
            case.call_and_validate(base_url=herald_url, checks=CHECKS, headers=headers, data=body)

        try:
            check()
        except Exception as exc:
            raise AssertionError(f"{operation.label} with a body that is not JSON: {exc}") from exc

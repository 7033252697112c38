"""The README's curl examples work as written, against a live `herald up`.

Every fenced ``sh`` block of the README that calls Herald with curl runs, in
the README's order, in one bash session (``set -eo pipefail``) in the folder
of a first-started Herald, so ``cat var/admin.key`` reads the key it wrote.
Only the address changes: ``127.0.0.1:8000`` becomes the test's port. Herald
runs with the Mailgun signing key the receipts example names. The blocks that
install packages with ``sudo`` (HAProxy's layout, tested with its own
configuration in ``test_haproxy.py``) are left out.

``curl`` is wrapped to keep each answer's headers and body: every answer must
be 2xx (or the ``304`` of the example that sends ``If-None-Match``), and every
JSON answer must parse. Then each row of the README's tables that says what a
``GET`` answers in ``data: {…}`` is asked, and ``data`` must hold those keys.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Herald, _running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
#: A table row of a GET route that says what its answer's ``data`` holds.
DATA_ROW = re.compile(r"^\| `GET (/api/[^`]*)` .*?`data: \{([^}]*)\}`", re.MULTILINE)

#: Records each call: its arguments, headers and body, numbered in order (the count is
#: kept in a file, since a call inside ``$(...)`` runs in a subshell).
WRAPPER = r"""
curl() {
  local calls=$(( $(cat "$RECORD/count" 2>/dev/null || echo 0) + 1 ))
  echo "$calls" > "$RECORD/count"
  printf '%s\n' "$@" > "$RECORD/$calls.args"
  command curl --silent --show-error --dump-header "$RECORD/$calls.head" \
    --output "$RECORD/$calls.body" "$@" || return
  cat "$RECORD/$calls.body"
}
"""


class FirstStart(Herald):
    """A Herald given no admin key: on its first start it writes ``var/admin.key``."""

    def base_env(self) -> dict[str, str]:
        env = super().base_env()
        del env["HERALD_ADMIN_KEY"]
        return env


def blocks() -> list[str]:
    """The README's shell blocks that call Herald with curl, in order."""
    found = FENCE.findall(README.read_text(encoding="utf-8"))
    return [b for b in found if "curl" in b and "127.0.0.1:8000" in b and "sudo" not in b]


def test_the_readme_has_curl_examples() -> None:
    assert len(blocks()) >= 5, "the README's examples were not found"


@pytest.fixture
def first_start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Herald]:
    yield from _running(request, FirstStart(tmp_path, None))


async def test_every_curl_example_of_the_readme_works(first_start: Herald, tmp_path: Path) -> None:
    herald = await first_start.start_http("up", HERALD_MAILGUN_SIGNING_KEY="key-example-0123")
    record = tmp_path / "answers"
    record.mkdir()
    script = [WRAPPER]
    for number, block in enumerate(blocks(), 1):
        script.append(block.replace("127.0.0.1:8000", f"127.0.0.1:{herald.port}"))
        script.append(f"echo 'block {number} done' >&2\n")
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-eo", "pipefail", "-c", "\n".join(script)],
        cwd=tmp_path, env={**herald.env, "RECORD": str(record)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, f"{done.stderr}\n{done.stdout}\n{first_start.describe()}"
    assert f"block {len(blocks())} done" in done.stderr
    calls = sorted(record.glob("*.args"), key=lambda p: int(p.stem))
    assert len(calls) == sum(b.count("curl ") for b in blocks()), "every call was made"
    for call in calls:
        check(call, record)
    await answers_as_the_tables_say(herald.url, tmp_path)


async def answers_as_the_tables_say(url: str, folder: Path) -> None:
    """Each GET row's ``data: {…}`` names the keys of ``data`` (``{id}``: the quick start's)."""
    key = (folder / "var" / "admin.key").read_text().strip()
    created = json.loads((folder / "answer.json").read_text())["data"]["_id"]
    rows = DATA_ROW.findall(README.read_text(encoding="utf-8"))
    assert len(rows) >= 8, "the tables' rows were not found"
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
        for path, said in rows:
            answer = await c.get(path.replace("{id}", created))
            assert answer.status_code == 200, f"GET {path}: {answer.status_code}"
            body = answer.json()
            assert body["success"] is True, path
            keys = {name.strip() for name in said.split(",")}
            assert set(body["data"]) == keys, f"GET {path}: data holds {sorted(body['data'])}"


def check(call: Path, record: Path) -> None:
    """The answer to one call is a success, and JSON when it says it is."""
    args = call.read_text()
    head = (record / f"{call.stem}.head").read_text(errors="replace")
    status = int(re.findall(r"^HTTP/\S+ (\d{3})", head, re.MULTILINE)[-1])
    allowed = {304} if "If-None-Match" in args else set()
    assert 200 <= status < 300 or status in allowed, f"{status} for curl {args}\n{head}"
    body = (record / f"{call.stem}.body").read_bytes()
    if body.startswith(b"HTTP/"):  # curl -i puts the head before the body
        body = body.partition(b"\r\n\r\n")[2]
    if "application/json" in head.lower() and body:
        json.loads(body)  # raises on anything else

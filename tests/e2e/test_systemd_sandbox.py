"""Herald under the systemd units' MemoryDenyWriteExecute: nothing it runs needs W+X memory.

systemd enforces that setting with the kernel's PR_SET_MDWE (Linux 6.3 and
later) or an equivalent seccomp filter. Here each Herald process sets
PR_SET_MDWE itself, first thing at start (a ``sitecustomize`` module on its
path), and render processes inherit it: ``herald up`` must still answer,
render built-in and stored templates, send through SMTP and serve the dashboard.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1
SITECUSTOMIZE = f"""\
import ctypes, os
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0):
    raise SystemExit("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()))
"""
PROBE = f"""\
import ctypes, mmap
assert ctypes.CDLL(None).prctl({PR_GET_MDWE}, 0, 0, 0, 0) == {PR_MDWE_REFUSE_EXEC_GAIN}
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    print("refused")
"""
TEMPLATE = {"name": "sandboxed", "channel": "EMAIL", "locale": "en", "subject": "Hello {{ name }}",
            "text": "Hi {{ name }}, {{ items | join(', ') }}."}  # fmt: skip
SIGNUP = {"username": "mdwe", "email": "mdwe@example.com", "firstName": "Mem",
          "lastName": "Guard", "userId": 4343}  # fmt: skip


@pytest.fixture
def mdwe_path(tmp_path: Path) -> str:
    """A PYTHONPATH whose ``sitecustomize`` puts each process under PR_SET_MDWE."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    folder = tmp_path / "mdwe"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    probe = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, "PYTHONPATH": path},
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    assert probe.stdout.strip() == "refused", probe.stderr  # the guard is on and works
    return path


async def test_herald_up_runs_with_memory_deny_write_execute(
    herald, smtp_server, mdwe_path: str
) -> None:
    up = await herald.start_http("up", PYTHONPATH=mdwe_path)
    async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
        signup = await client.post("/api/signups", json=SIGNUP)  # a built-in template
        assert signup.status_code == 201, signup.text
        sent = signup.json()["data"]["welcomeEmail"]["notificationId"]
        await herald.poll(lambda: smtp_server.sink.received[sent] == 1, 20,
                          "the welcome email at the SMTP server", watch=[up])  # fmt: skip

        saved = await client.post("/api/templates", json=TEMPLATE)  # in a render process
        assert saved.status_code == 201, saved.text
        data = {"name": "Ada", "items": ["a", "b"]}
        preview = await client.post("/api/templates/sandboxed/render", json={"data": data})
        assert preview.status_code == 200, preview.text
        assert "Hi Ada, a, b." in preview.text

        page = await client.get(f"/dashboard/notifications/{sent}")
        assert page.status_code == 200 and sent in page.text
    up.assert_running()

"""Herald from its wheel, outside the source tree: everything read at run time ships.

The wheel is built with the project's own backend (hatchling, no network),
installed into a folder of its own, and run from a working directory that is
not the repository: its ``herald`` command migrates (the SQL ships), and
``herald up`` answers health, renders a built-in email template and sends it
over real SMTP (the email templates ship), and serves the dashboard (its
templates and static files ship).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.store.sql import migrations
from tests.conftest import AUTH

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "herald"
SIGNUP = {"username": "wheel", "email": "wheel@example.com", "firstName": "Wheel",
          "lastName": "Test", "userId": 4242}  # fmt: skip


def run(*argv: str | Path, **options: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=120, **options
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, REPO)
    [built] = dist.glob("herald-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (run with PYTHONPATH pointing there)."""
    target = tmp_path_factory.mktemp("site")
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    run(*pip, "install", "--no-deps", "--no-index", "--target", target, wheel)
    return target


def test_the_wheel_carries_every_file_of_the_package(wheel: Path) -> None:
    on_disk = {
        "herald/" + path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    shipped = set(zipfile.ZipFile(wheel).namelist())
    assert on_disk - shipped == set()
    assert {"herald/dashboard/static/dashboard.css", "herald/store/sqlite/001_initial.sql",
            "herald/templates/email/en/welcome-email.html"} <= shipped  # fmt: skip


async def test_herald_up_runs_from_the_installed_wheel(site: Path, herald, smtp_server) -> None:
    env = {**herald.base_env(), "PYTHONPATH": str(site)}
    where = run(sys.executable, "-c", "import herald; print(herald.__file__)", env=env,
                cwd=herald.workdir)  # fmt: skip
    assert Path(where.stdout.strip()).is_relative_to(site)
    assert not herald.workdir.is_relative_to(REPO)

    # The console script the wheel installs, from a folder that is not the repository.
    migrated = run(site / "bin" / "herald", "migrate", env=env, cwd=herald.workdir)
    assert "schema is up to date" in migrated.stdout
    applied = [v for (v,) in herald.query("SELECT version FROM schema_migrations ORDER BY 1")]
    assert applied == [m.version for m in migrations("sqlite")] and len(applied) > 1

    up = await herald.start_http("up", PYTHONPATH=str(site))
    async with httpx.AsyncClient(base_url=up.url, headers=AUTH, timeout=10) as client:
        health = await client.get("/api/health")
        assert health.json()["services"] == {"database": "connected", "worker": "running"}

        # A seed signup renders the built-in welcome-email template and sends it.
        signup = await client.post("/api/signups", json=SIGNUP)
        assert signup.status_code == 201, signup.text
        sent = signup.json()["data"]["welcomeEmail"]["notificationId"]
        await herald.poll(lambda: smtp_server.sink.received[sent] == 1, 20,
                          "the welcome email at the SMTP server", watch=[up])  # fmt: skip

        page = await client.get(f"/dashboard/notifications/{sent}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert sent in page.text and "/dashboard/static/dashboard.css" in page.text
        for static in ("dashboard.css", "dashboard.js"):
            served = await client.get(f"/dashboard/static/{static}")
            assert served.status_code == 200
            assert served.content == (PACKAGE / "dashboard" / "static" / static).read_bytes()

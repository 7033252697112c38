"""A seed's ``.env`` just works (issue "Seed fidelity"): Herald started in a directory
holding seed 003's ``.env`` sends SMS through Twilio, says which variables it ignores
and why, and a worker of one channel (``--channels sms``) leaves the others' rows."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from pathlib import Path

import structlog.testing

from herald import seed_env
from herald.models import Channel
from tests.conftest import free_port, make_settings
from tests.integration.fakehttp import fake_server
from tests.integration.test_provider_twilio import SENDER, SID, TOKEN, FakeTwilio
from tests.unit.worker_rig import eventually

#: Seed 003's ``.env`` (README "Environment Configuration"), Twilio's values the fake's.
SEED_003_ENV = f"""\
# API Service & Workers Common Environment
RABBITMQ_URL=amqp://localhost:5672
DATABASE_URL=postgresql://user:password@localhost:5432/notification_db

# Email Configuration
SMTP_HOST=127.0.0.1
SMTP_PORT={free_port()}
SMTP_USER=your-email@gmail.com
SMTP_PASS=your-app-password

# SMS Configuration (Optional)
TWILIO_ACCOUNT_SID={SID}
TWILIO_AUTH_TOKEN={TOKEN}
TWILIO_PHONE_NUMBER={SENDER}

# Push Notification Configuration
FCM_SERVER_KEY=your-fcm-server-key
"""


def _environment(tmp_path: Path, base_url: str) -> dict[str, str]:
    """The test's environment without Herald's or the seeds' variables: the .env speaks."""
    names = {line.partition("=")[0] for line in SEED_003_ENV.splitlines() if "=" in line}
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k not in names}
    env["HERALD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'herald.db'}"
    env["HERALD_TWILIO_BASE_URL"] = base_url
    return env


async def _herald(tmp_path: Path, env: dict[str, str], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "herald.cli", *args, cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def test_seed_003_env_sends_sms_through_twilio_and_names_what_it_ignores(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(SEED_003_ENV)
    fake = FakeTwilio()
    async with fake_server(fake) as server:
        env = _environment(tmp_path, server.url)
        await _herald(tmp_path, env, "send", "--type", "SMS", "--to", "+14155550123",
                      "--message", "code 4321")  # fmt: skip
        await _herald(tmp_path, env, "send", "--to", "ada@example.com", "--subject", "Hi",
                      "--message", "Hello")  # fmt: skip
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "herald.cli", "worker", "--channels", "sms",
            cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            await eventually(lambda: bool(server.seen), timeout=30, what="a call to Twilio")
            await asyncio.sleep(0.5)  # time enough to claim the email, were it served
        finally:
            worker.terminate()
            out, _ = await asyncio.wait_for(worker.communicate(), 30)
    log = out.decode()
    assert worker.returncode == 0, log

    [seen] = server.seen
    assert seen.form()["To"] == "+14155550123" and seen.form()["From"] == SENDER
    with sqlite3.connect(tmp_path / "herald.db") as conn:
        rows = dict(conn.execute("SELECT channel, status || ' ' || provider FROM notifications"
                                 " WHERE channel = 'SMS'").fetchall())  # fmt: skip
        email = conn.execute("SELECT status, attempts FROM notifications "
                             "WHERE channel = 'EMAIL'").fetchall()  # fmt: skip
    assert rows == {"SMS": "SENT twilio"}
    assert email == [("QUEUED", 0)]  # --channels sms: the email lane is not this worker's
    [ignored] = [line for line in log.splitlines() if "seed_variables_ignored" in line]
    for name in ("DATABASE_URL", "FCM_SERVER_KEY", "RABBITMQ_URL"):
        assert name in ignored
    assert "HTTP v1" in ignored and "RabbitMQ" in ignored
    assert "channel_captured" not in log


def test_capture_with_twilio_configured_is_warned_about(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, twilio_account_sid=SID, twilio_auth_token=TOKEN,
                             twilio_from=SENDER, sms_providers="capture")  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        seed_env.announce(settings, environ={})
    [warned] = [e for e in logs if e["event"] == "channel_captured"]
    assert warned["log_level"] == "warning"
    assert (warned["channel"], warned["configured"]) == ("SMS", ["twilio"])

    chosen = make_settings(tmp_path, twilio_account_sid=SID, twilio_auth_token=TOKEN,
                           twilio_from=SENDER)  # fmt: skip
    assert chosen.providers_for(Channel.SMS) == ["twilio"]
    with structlog.testing.capture_logs() as logs:
        seed_env.announce(chosen, environ={})
    assert logs == []


def test_ignored_variables_are_one_line_with_reasons(tmp_path: Path) -> None:
    environ = {"REDIS_HOST": "localhost", "REDIS_DB": "0", "MONGODB_URI": "mongodb://x",
               "DLQ_CONCURRENCY": "1", "EMAIL_HOST": "smtp.example.com"}  # fmt: skip
    with structlog.testing.capture_logs() as logs:
        seed_env.announce(make_settings(tmp_path), environ=environ)
    [line] = logs
    assert line["event"] == "seed_variables_ignored" and line["log_level"] == "warning"
    assert line["variables"] == ["DLQ_CONCURRENCY", "MONGODB_URI", "REDIS_DB", "REDIS_HOST"]
    assert "no Redis" in line["why"]["REDIS_DB, REDIS_HOST"]
    assert "DLQ" in line["why"]["DLQ_CONCURRENCY"]

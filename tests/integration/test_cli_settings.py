"""A setting that cannot work stops every command at once: one line, exit status 2.

Each case runs a real ``herald`` process, as a new user would. Were a check
missing, the serving commands would start and run (the call times out) or die
later with a traceback; a settings command would print pydantic's dump.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.integration.test_cli import herald


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CASES = [
    (("worker",), {"HERALD_EMAIL_PROVIDERS": "nonexistent"},
     "HERALD_EMAIL_PROVIDERS: unknown provider 'nonexistent' (known: apns, apprise, capture"),
    (("api",), {"HERALD_LOG_LEVEL": "loud"},
     "bad setting HERALD_LOG_LEVEL='loud': expected one of debug, info, warning, error, critical"),
    (("up",), {"HERALD_SMTP_FROM": "@@@", "HERALD_SMTP_HOST": "mail.example.com"},
     "bad setting HERALD_SMTP_FROM='@@@': expected an address such as noreply@example.com"),
    (("worker",), {"HERALD_EMAIL_PROVIDERS": "smtp"},
     "HERALD_EMAIL_PROVIDERS names smtp, which needs HERALD_SMTP_HOST"),
    (("stats",), {"HERALD_PORT": "abc"},
     "bad setting HERALD_PORT='abc': expected a whole number from 1 to 65535"),
    (("migrate",), {"EMAIL_SECURE": "sometimes"},
     "bad setting EMAIL_SECURE='sometimes': expected true or false"),
    (("api", "--port", "0"), {}, "bad setting --port='0': expected a whole number from 1 to 65535"),
    (("worker", "--queues", "dlq"), {},
     "bad setting --channels/--queues='dlq': 'dlq' is not a lane"),
    (("dlq", "list"), {"HERALD_DATABASE_URL": "mysql://herald:hunter2@db/herald"},
     "HERALD_DATABASE_URL='mysql://herald:****@db/herald': expected sqlite:///PATH"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "variables", "said"), CASES, ids=lambda c: str(c)[:40])
def test_one_line_naming_the_setting_and_exit_2(
    tmp_path: Path, args: tuple[str, ...], variables: dict[str, str], said: str
) -> None:
    done = herald(tmp_path, *args, **variables)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"Error: {said}"), line
    assert done.stdout == ""


@pytest.mark.parametrize("command", [("up",), ("worker",), ("queues",)])
def test_an_unreachable_database_is_named_within_seconds(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    port = closed_port()
    url = f"postgresql://herald:hunter2@127.0.0.1:{port}/herald"
    started = time.monotonic()
    done = herald(tmp_path, *command, HERALD_DATABASE_URL=url)
    assert time.monotonic() - started < 8, "the store's own patience (15 s) was waited out"
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        f"Error: HERALD_DATABASE_URL='postgresql://herald:****@127.0.0.1:{port}/herald': "
        f"cannot reach 127.0.0.1:{port}: connection refused\n"
    )


def test_a_database_the_server_does_not_have_is_named(tmp_path: Path, pg_url: str) -> None:
    server, _, _ = pg_url.rpartition("/")
    done = herald(tmp_path, "migrate", HERALD_DATABASE_URL=f"{server}/herald_no_such_database")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.splitlines()
    assert line.endswith('database "herald_no_such_database" does not exist'), line
    assert herald(tmp_path, "migrate", HERALD_DATABASE_URL=pg_url).returncode == 0

"""Settings: defaults, the seeds' variable names as aliases, loud failures."""

from __future__ import annotations

import pytest

from herald.config import Settings
from herald.models import Channel


def test_defaults() -> None:
    s = Settings(_env_file=None)
    assert s.database_url == "sqlite:///./var/herald.db"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.providers_for(Channel.EMAIL) == ["capture"]
    assert s.providers_for(Channel.SMS) == ["capture"]
    assert s.sqlite_path == "./var/herald.db"


def test_seed_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": "2525",
        "EMAIL_USER": "bob",
        "EMAIL_PASSWORD": "pw",
        "EMAIL_FROM": "noreply@example.com",
        "MAIL_QUEUE_CONCURRENCY": "12",
        "NOTIFICATION_CLEANUP_DAYS": "7",
        "LOG_LEVEL": "debug",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings(_env_file=None)
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password) == (
        "mail.example.com", 2525, "bob", "pw"
    )  # fmt: skip
    assert s.smtp_from == "noreply@example.com"
    assert s.email_concurrency == 12 and s.lane_caps() == {"email": 12}
    assert s.cleanup_days == 7
    assert s.log_level == "debug"
    assert s.providers_for(Channel.EMAIL) == ["smtp"]


def test_herald_names_win_and_lists_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_HOST", "seed.example.com")
    monkeypatch.setenv("HERALD_SMTP_HOST", "herald.example.com")
    monkeypatch.setenv("HERALD_EMAIL_PROVIDERS", "smtp, fault")
    s = Settings(_env_file=None)
    assert s.smtp_host == "herald.example.com"
    assert s.providers_for(Channel.EMAIL) == ["smtp", "fault"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("HERALD_PORT", "0"), ("HERALD_SMTP_TLS", "maybe"), ("HERALD_FAULT_FAILURE_RATE", "2")],
)
def test_bad_values_fail_loudly(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        Settings(_env_file=None)


def test_smtp_port_follows_tls_mode() -> None:
    assert Settings(_env_file=None, smtp_tls="tls").smtp_port == 465
    assert Settings(_env_file=None, smtp_tls="none").smtp_port == 25
    assert Settings(_env_file=None).smtp_port == 587


def test_seed_000_lane_concurrency_and_secure_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "MAIL_QUEUE_CONCURRENCY": "5",
        "RETRY_1_CONCURRENCY": "3",
        "RETRY_2_CONCURRENCY": "2",
        "DLQ_CONCURRENCY": "1",  # accepted; nothing is sent from the DLQ (seed_env says so)
        "HERALD_SMS_CONCURRENCY": "7",
        "EMAIL_SECURE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings(_env_file=None)
    assert s.lane_caps() == {"email": 5, "sms": 7, "retry-1": 3, "retry-2": 2}
    assert s.worker_concurrency == 1024  # the worker's own bound is not seed 000's mail queue's
    assert (s.smtp_tls, s.smtp_port) == ("tls", 465)
    monkeypatch.setenv("EMAIL_SECURE", "false")
    assert Settings(_env_file=None).smtp_tls == "starttls"
    monkeypatch.setenv("HERALD_SMTP_TLS", "none")
    assert Settings(_env_file=None).smtp_tls == "none"  # Herald's own name wins


def test_worker_queues_are_lanes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None, worker_queues="EMAIL, mail,retry1,sms").worker_queues == [
        "email", "retry-1", "sms"
    ]  # fmt: skip
    for wrong in ("dlq", "nowhere"):
        with pytest.raises(ValueError, match="not a lane a worker claims from"):
            Settings(_env_file=None, worker_queues=wrong)

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
    assert s.worker_concurrency == 12
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

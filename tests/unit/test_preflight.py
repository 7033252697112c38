"""Settings that cannot work are said in one line each: the variable as it was set, its
value (masked when secret) and what would be accepted, for every field of every kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import SecretStr

from herald import preflight
from herald.config import Settings
from herald.errors import ConfigError


def _kinds(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_args(annotation) else (annotation,)


def _fields(kind: Any) -> list[str]:
    """Every field whose type is ``kind`` (alone or beside None)."""
    found = []
    for name, field in Settings.model_fields.items():
        kinds = _kinds(field.annotation)
        if kind in kinds or (kind is Literal and any(get_origin(k) is Literal for k in kinds)):
            found.append(name)
    return found


def _variable(name: str) -> str:
    choices = Settings.model_fields[name].validation_alias.choices  # type: ignore[union-attr]
    return str(choices[0])


def refused(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        preflight.load(env_file=None)
    return str(caught.value)


@pytest.mark.parametrize("name", _fields(int))
def test_every_whole_number_names_its_variable_and_range(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    variable = _variable(name)
    said = refused(monkeypatch, **{variable: "lots"})
    assert said.startswith(f"bad setting {variable}='lots': expected a whole number"), said
    assert "\n" not in said and "pydantic" not in said
    least = next((rule.ge for rule in Settings.model_fields[name].metadata if hasattr(rule, "ge")),
                 None)  # fmt: skip
    if least is not None:  # a value below the least allowed is refused with the same words
        monkeypatch.setenv(variable, str(least - 1))
        low = refused(monkeypatch)
        assert low.startswith(f"bad setting {variable}='{least - 1}': expected a whole number")
        assert f"least {least}" in low or f"from {least} to" in low, low


@pytest.mark.parametrize("name", _fields(float))
def test_every_number_names_its_variable(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    variable = _variable(name)
    said = refused(monkeypatch, **{variable: "soon"})
    assert said.startswith(f"bad setting {variable}='soon': expected a number"), said


@pytest.mark.parametrize("name", _fields(bool))
def test_every_flag_says_true_or_false(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    variable = _variable(name)
    said = refused(monkeypatch, **{variable: "maybe"})
    assert said == (
        f"bad setting {variable}='maybe': expected true or false (also 1/0, yes/no, on/off)"
    )


@pytest.mark.parametrize("name", _fields(Literal))
def test_every_choice_lists_the_choices(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    variable = _variable(name)
    said = refused(monkeypatch, **{variable: "whatever"})
    choices = next(get_args(k) for k in _kinds(Settings.model_fields[name].annotation)
                   if get_origin(k) is Literal)  # fmt: skip
    assert said == f"bad setting {variable}='whatever': expected one of {', '.join(choices)}"


def test_a_seed_alias_is_named_as_it_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    said = refused(monkeypatch, EMAIL_PORT="x")
    assert said == (
        "bad setting EMAIL_PORT (read as HERALD_SMTP_PORT)='x': "
        "expected a whole number from 1 to 65535"
    )
    monkeypatch.delenv("EMAIL_PORT")
    said = refused(monkeypatch, notification_max_attempts="0")  # any case, as pydantic reads it
    assert said.startswith(
        "bad setting notification_max_attempts (read as HERALD_MAX_ATTEMPTS)='0'"
    )


def test_a_rule_of_herald_is_said_in_its_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    assert refused(monkeypatch, HERALD_LOG_LEVEL="loud") == (
        "bad setting HERALD_LOG_LEVEL='loud': expected one of debug, info, warning, error, critical"
    )
    monkeypatch.delenv("HERALD_LOG_LEVEL")
    assert refused(monkeypatch, HERALD_SMTP_FROM="@@@") == (
        "bad setting HERALD_SMTP_FROM='@@@': expected an address such as noreply@example.com "
        "or Herald <noreply@example.com>"
    )
    monkeypatch.delenv("HERALD_SMTP_FROM")
    assert refused(monkeypatch, HERALD_RETRY_BACKOFF="1,-2") == (
        "bad setting HERALD_RETRY_BACKOFF='1,-2': '-2' is not a non-negative number of seconds"
    )


def test_rules_across_variables_and_several_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    said = refused(monkeypatch, HERALD_ALLOWED_HOSTS="*")
    assert said.startswith("HERALD_ALLOWED_HOSTS=* needs HERALD_PUBLIC_URL"), said
    monkeypatch.delenv("HERALD_ALLOWED_HOSTS")
    both = refused(monkeypatch, HERALD_PORT="0", HERALD_SMTP_TLS="maybe").splitlines()
    assert [line.split("=")[0] for line in both] == [
        "bad setting HERALD_PORT", "bad setting HERALD_SMTP_TLS"
    ]  # fmt: skip


def test_secrets_are_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    secret_fields = [name for name, field in Settings.model_fields.items()
                     if SecretStr in _kinds(field.annotation)]  # fmt: skip
    assert secret_fields, "the settings hold secrets"
    for name in [*secret_fields, "smtp_password", "twilio_auth_token", "webhook_secret"]:
        with pytest.raises(ConfigError) as caught:
            preflight.load({name: 12345678}, env_file=None)  # not text: refused
        said = str(caught.value)
        assert "(its value hidden)" in said and "12345678" not in said, said


def test_command_line_options_are_named_as_options() -> None:
    with pytest.raises(ConfigError, match=r"^bad setting --channels/--queues='dlq': 'dlq' is not"):
        preflight.load({"worker_queues": "dlq"}, {"worker_queues": "--channels/--queues"}, None)
    with pytest.raises(ConfigError, match=r"^bad setting --port='0': expected a whole number"):
        preflight.load({"port": 0}, env_file=None)


def test_a_dotenv_value_is_named_like_a_variable(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HERALD_SHUTDOWN_GRACE=-1\n")
    with pytest.raises(ConfigError) as caught:
        preflight.load(env_file=str(env_file))
    assert str(caught.value) == (
        "bad setting HERALD_SHUTDOWN_GRACE='-1': expected a number of at least 0"
    )


def test_database_urls_that_name_no_database(tmp_path: Path) -> None:
    def problem(url: str) -> str:
        with pytest.raises(ConfigError) as caught:
            preflight.reach_database(Settings(_env_file=None, database_url=url), patience=2)
        return str(caught.value)

    assert problem("mysql://herald:hunter2@db/herald") == (
        "HERALD_DATABASE_URL='mysql://herald:****@db/herald': expected sqlite:///PATH (a file) "
        "or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
    )
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    assert problem(f"sqlite:///{blocked}/herald.db").startswith(
        f"HERALD_DATABASE_URL='sqlite:///{blocked}/herald.db': cannot make its folder {blocked}"
    )
    not_sqlite = tmp_path / "notes.db"
    not_sqlite.write_text("not a database, only text " * 100)
    assert "cannot open" in problem(f"sqlite:///{not_sqlite}")
    fine = tmp_path / "var" / "herald.db"
    preflight.reach_database(Settings(_env_file=None, database_url=f"sqlite:///{fine}"))

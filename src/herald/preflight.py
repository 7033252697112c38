"""Settings that cannot work, found before anything starts and said in one line each.

Every ``herald`` command reads its settings through ``load`` and
``reach_database``; the commands that serve or deliver also ``build_providers``.
Each problem becomes a ``ConfigError`` whose text is one line per problem,
naming the variable as it was set (an alias included), its value (masked when
it is a secret, and the password of a URL), and what would be accepted::

    bad setting HERALD_PORT='abc': expected a whole number from 1 to 65535
    bad setting EMAIL_PORT='x' (read as HERALD_SMTP_PORT): expected a whole number ...
    HERALD_DATABASE_URL='postgresql://herald:****@db:5432/herald': cannot reach db:5432 ...

The command line prints it without a traceback and exits with status 2.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo

from .config import Settings
from .errors import ConfigError
from .providers.ssrf import mask_credentials
from .seed_env import environment

#: How long the database may take to answer before Herald says it cannot be reached.
DATABASE_PATIENCE = 3.0
#: Fields whose values are never shown, besides those typed ``SecretStr``.
_SECRET_WORDS = ("password", "secret", "token", "private_key", "signing_key")


def load(overrides: Mapping[str, Any] | None = None, options: Mapping[str, str] | None = None,
         env_file: str | None = ".env") -> Settings:  # fmt: skip
    """The settings, or a ``ConfigError`` describing every refused value, one per line.

    ``overrides`` are values given on the command line by field name; ``options``
    names the option each came from (``{"port": "--port"}``), for the message.
    """
    given = {name: value for name, value in (overrides or {}).items() if value is not None}
    try:
        return Settings(_env_file=env_file, **given)
    except ValidationError as exc:
        environ = environment(env_file)
        lines = [_describe(error, environ, given, options or {}) for error in exc.errors()]
        raise ConfigError("\n".join(dict.fromkeys(lines))) from None


def reach_database(settings: Settings, patience: float = DATABASE_PATIENCE) -> None:
    """Refuse a database URL that names no database Herald can open, within ``patience`` s."""
    shown = f"HERALD_DATABASE_URL={mask_credentials(settings.database_url)!r}"
    if settings.postgres_url is not None:
        problem = asyncio.run(_postgres_problem(settings.postgres_url, patience))
    elif settings.sqlite_path not in (None, "", ":memory:"):
        problem = _sqlite_problem(Path(str(settings.sqlite_path)), patience)
    else:
        problem = (
            "expected sqlite:///PATH (a file) or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    if problem is not None:
        raise ConfigError(f"{shown}: {problem}")


def build_providers(settings: Settings) -> None:
    """Build every channel's provider chain once, as a serving process will, and close it:
    an unknown provider or a missing key file stops the command here, in one line."""
    from .providers import ProviderSet  # imported here: only serving commands need them
    from .store import open_store

    async def build() -> None:
        providers = ProviderSet(settings, open_store(settings))  # the store is never opened
        await providers.close()

    asyncio.run(build())


# -- settings refused ---------------------------------------------------------------------


def _describe(
    error: Any, environ: Mapping[str, str], given: Mapping[str, Any], options: Mapping[str, str]
) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    field_name = _field_of(str(error["loc"][0])) if error["loc"] else None
    if field_name is None:  # a rule across several variables: its text names them
        return message
    field = Settings.model_fields[field_name]
    variables = _variables(field_name, field)
    name, value = variables[0], error.get("input")
    if field_name in given:
        name = options.get(field_name, "--" + field_name.replace("_", "-"))
        value = given[field_name]
    else:
        lowered = {key.lower(): (key, raw) for key, raw in environ.items()}
        for variable in variables:
            if variable.lower() in lowered:
                found, value = lowered[variable.lower()]
                if found.upper() != variables[0]:
                    name = f"{found} (read as {variables[0]})"
                break
    message = message.removeprefix(f"{variables[0]}: ")
    return (
        f"bad setting {_shown(name, value, field_name, field)}: {_accepted(error, field, message)}"
    )


def _field_of(location: str) -> str | None:
    if location in Settings.model_fields:
        return location
    for name, field in Settings.model_fields.items():
        if location.upper() in (v.upper() for v in _variables(name, field)):
            return name
    return None


def _variables(name: str, field: FieldInfo) -> list[str]:
    """The variables a field is read from, Herald's own name first."""
    choices = getattr(field.validation_alias, "choices", None) or [f"HERALD_{name.upper()}"]
    return list(dict.fromkeys(str(choice) for choice in choices))


def _shown(name: str, value: Any, field_name: str, field: FieldInfo) -> str:
    secret = field.annotation in (SecretStr, SecretStr | None) or any(
        word in field_name for word in _SECRET_WORDS
    )
    if secret:
        return f"{name} (its value hidden)"
    if isinstance(value, list | tuple):
        value = ",".join(str(part) for part in value)
    return f"{name}={mask_credentials(str(value))!r}"


def _accepted(error: Any, field: FieldInfo, message: str) -> str:
    """What would be accepted, in words: the field's type and bounds for a value of the
    wrong kind or out of range, else the rule's own message."""
    kind = str(error["type"])
    if kind == "literal_error":
        return f"expected one of {', '.join(map(str, _literal(field.annotation)))}"
    if kind.startswith("bool"):
        return "expected true or false (also 1/0, yes/no, on/off)"
    numeric = ("int_", "float_", "greater_", "less_", "finite_number")
    if kind.startswith(numeric):
        whole = int in _types(field.annotation)
        return f"expected {'a whole number' if whole else 'a number'}{_bounds(field)}"
    return message


def _types(annotation: Any) -> tuple[Any, ...]:
    return get_args(annotation) if get_args(annotation) else (annotation,)


def _literal(annotation: Any) -> tuple[Any, ...]:
    for option in _types(annotation):
        if get_origin(option) is Literal:
            return get_args(option)
    return get_args(annotation)


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    for rule in field.metadata:
        if isinstance(rule, Ge):
            low = f"{rule.ge:g}" if isinstance(rule.ge, float) else f"{rule.ge}"
        elif isinstance(rule, Gt):
            low = f"above {rule.gt:g}"
        elif isinstance(rule, Le):
            high = f"{rule.le:g}" if isinstance(rule.le, float) else f"{rule.le}"
        elif isinstance(rule, Lt):
            high = f"below {rule.lt:g}"
    if low and high:
        if low.startswith("above") or high.startswith("below"):
            return f" {_at_least(low)} and {_at_most(high)}"
        return f" from {low} to {high}"
    if low:
        return f" {_at_least(low)}"
    return f" {_at_most(high)}" if high else ""


def _at_least(low: str) -> str:
    return low if low.startswith("above") else f"of at least {low}"


def _at_most(high: str) -> str:
    return high if high.startswith("below") else f"of at most {high}"


# -- the database -------------------------------------------------------------------------


async def _postgres_problem(url: str, patience: float) -> str | None:
    import asyncpg

    from .store.postgres.pool import dsn_of

    try:
        parts = urlsplit(url)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError as exc:
        return f"not a URL Herald can read ({exc})"
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn_of(url), timeout=patience), patience)
    except TimeoutError:
        return f"cannot reach {where}: no answer within {patience:g} s"
    except OSError as exc:  # refused, no such host, no route: the text says which
        errno = exc.errno or 0
        why = os.strerror(errno) if errno > 0 else exc.strerror or str(exc)
        return f"cannot reach {where}: {(why or type(exc).__name__).lower()}"
    except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        return f"{where} refused the connection: {exc}"
    await conn.close()
    return None


def _sqlite_problem(path: Path, patience: float) -> str | None:
    """Why the file cannot hold Herald's database, or None; as opening the store would,
    this makes its folder and the file when they are missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=patience)
        try:
            conn.execute("PRAGMA schema_version").fetchone()
        finally:
            conn.close()
    except OSError as exc:
        return f"cannot make its folder {path.parent}: {(exc.strerror or str(exc)).lower()}"
    except sqlite3.Error as exc:
        return f"cannot open {path} as a SQLite database: {exc}"
    if not os.access(path, os.R_OK | os.W_OK):
        return f"cannot write to {path}"
    return None

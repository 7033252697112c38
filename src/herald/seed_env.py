"""What Herald makes of a replaced system's ``.env``, said once at start.

Most of the seeds' variables are read as aliases of Herald's own (``config.py``).
The rest name machinery Herald does not have; set, they are listed in one
``seed_variables_ignored`` line, each with the reason, so nobody believes them
applied. A channel left on ``capture`` while a real provider of it is
configured is warned about too: capture marks notifications SENT without
sending them anywhere.

    seed 000  EMAIL_HOST EMAIL_PORT EMAIL_USER EMAIL_PASSWORD EMAIL_FROM -> HERALD_SMTP_*
              EMAIL_SECURE -> HERALD_SMTP_TLS (true: tls, false: starttls)
              MAIL_QUEUE_CONCURRENCY RETRY_1_CONCURRENCY RETRY_2_CONCURRENCY -> lane caps
              RETRY_1_DELAY RETRY_2_DELAY NOTIFICATION_MAX_ATTEMPTS
              NOTIFICATION_CLEANUP_DAYS LOG_LEVEL -> their HERALD_ names
              MONGODB_URI REDIS_* DLQ_CONCURRENCY *_PORT of the balancer: ignored
    seed 001  as seed 000's (EMAIL_*, REDIS_*, MONGODB_URI, the ports)
    seed 003  SMTP_HOST SMTP_PORT SMTP_USER SMTP_PASS -> HERALD_SMTP_*
              TWILIO_ACCOUNT_SID TWILIO_AUTH_TOKEN TWILIO_PHONE_NUMBER -> Twilio for SMS
              RABBITMQ_URL FCM_SERVER_KEY DATABASE_URL: ignored
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import structlog
from dotenv import dotenv_values

from .config import Settings
from .models import Channel

log = structlog.get_logger("herald.config")

_STORE = "Herald keeps its queue and its records in one database, HERALD_DATABASE_URL"
_PORTS = "Herald is one service on HERALD_PORT; run `herald up --api-workers N` behind a balancer"

#: Variable names (a trailing ``*``: every name so beginning) and why they are ignored.
IGNORED: dict[str, str] = {
    "REDIS_*": f"no Redis: {_STORE}",
    "MONGODB_URI": f"no MongoDB: {_STORE}",
    "RABBITMQ_URL": f"no RabbitMQ: {_STORE}",
    "DATABASE_URL": "read only as HERALD_DATABASE_URL, so that Herald never migrates a "
    "database another program named",
    "FCM_SERVER_KEY": "FCM's legacy server keys were retired by Google: Herald sends through "
    "the HTTP v1 API, with HERALD_FCM_CREDENTIALS_FILE and HERALD_PUSH_PROVIDERS=fcm",
    "DLQ_CONCURRENCY": "nothing is sent from Herald's DLQ: a replay puts notifications back "
    "in their channel's lane, under that lane's concurrency",
    "LOAD_BALANCER_PORT": _PORTS,
    "SERVER1_PORT": _PORTS,
    "SERVER2_PORT": _PORTS,
    "SERVER3_PORT": _PORTS,
}


def environment(env_file: str | os.PathLike[str] | None = ".env") -> dict[str, str]:
    """The variables Settings reads: ``env_file``'s, overridden by the process's."""
    found: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        found.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    found.update(os.environ)
    return found


def ignored(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables in ``environ`` that Herald cannot honour, each with the reason."""
    found = {}
    for name in sorted(environ):
        for pattern, reason in IGNORED.items():
            if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                found[name] = reason
                break
    return found


def captured(settings: Settings) -> dict[str, list[str]]:
    """Channels whose chain has ``capture`` while other providers of theirs are configured."""
    found = {}
    for channel in Channel:
        configured = settings.configured_for(channel)
        if configured and "capture" in settings.providers_for(channel):
            found[channel.value] = configured
    return found


def announce(settings: Settings, environ: Mapping[str, str] | None = None) -> None:
    """Log, at start, the seed variables ignored and every channel captured in silence."""
    if environ is None:
        env_file = settings.model_config.get("env_file")
        environ = environment(env_file if isinstance(env_file, str | os.PathLike) else None)
    skipped = ignored(environ)
    if skipped:
        reasons: dict[str, list[str]] = {}
        for name, reason in skipped.items():
            reasons.setdefault(reason, []).append(name)
        log.warning(
            "seed_variables_ignored",
            variables=sorted(skipped),
            why={", ".join(names): reason for reason, names in reasons.items()},
        )
    for channel, providers in captured(settings).items():
        log.warning(
            "channel_captured",
            channel=channel,
            configured=providers,
            why=f"HERALD_{channel}_PROVIDERS names capture: notifications are marked SENT "
            f"and kept in the capture mailbox, not sent through {', '.join(providers)}",
        )

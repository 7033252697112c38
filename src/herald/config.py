"""One Settings object, read from the environment (prefix ``HERALD_``) and ``.env``.

The replaced systems' own variable names are accepted as aliases, so their
``.env`` files keep working. Note the units: the seeds' ``RETRY_1_DELAY`` and
``RETRY_2_DELAY`` are milliseconds, and so are Herald's ``*_MS`` names.
Bad values fail at start, loudly, naming the variable.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from dataclasses import replace
from email.utils import parseaddr
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigError
from .models import CLAIMED_QUEUES, DLQ, Channel, lanes_of
from .retry import CUSTOM, POLICIES, POLICY_NAMES, Ladder, Policy

CsvList = Annotated[list[str], NoDecode]
PolicyName = Literal["seed000", "seed002", "seed003", "seed004", "custom"]
#: A bare ASCII mailbox, safe inside ``<mailto:...>`` in a header: no spaces, brackets,
#: commas, ``?`` or ``%`` that would need quoting.
_MAILBOX = re.compile(
    r"[A-Za-z0-9!#$&'*+/=^_`{|}~.-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)
#: A sender's address (``HERALD_SMTP_FROM``): a dot-atom, then a host name (letters of
#: any script, as SMTPUTF8 allows), so no relay refuses it at MAIL FROM.
_ATOM = r"[\w!#$%&'*+/=?^`{|}~-]+"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_SENDER = re.compile(rf"(?=.{{1,254}}$){_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _env(name: str, *aliases: str) -> AliasChoices:
    return AliasChoices(f"HERALD_{name}", *aliases)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field("sqlite:///./var/herald.db", validation_alias=_env("DATABASE_URL"))
    host: str = Field("127.0.0.1", validation_alias=_env("HOST"))
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("PORT"))
    instance: str = Field("", validation_alias=_env("INSTANCE"))
    log_level: str = Field("info", validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"))
    #: One line per HTTP request (``api/accesslog.py``), at ``info``.
    access_log: bool = Field(True, validation_alias=_env("ACCESS_LOG"))
    max_body_bytes: int = Field(1_048_576, ge=1024, validation_alias=_env("MAX_BODY_BYTES"))

    smtp_host: str | None = Field(
        None, validation_alias=_env("SMTP_HOST", "EMAIL_HOST", "SMTP_HOST")
    )
    smtp_port: int | None = Field(
        None, ge=1, le=65535, validation_alias=_env("SMTP_PORT", "EMAIL_PORT", "SMTP_PORT")
    )
    smtp_user: str | None = Field(
        None, validation_alias=_env("SMTP_USER", "EMAIL_USER", "SMTP_USER")
    )
    smtp_password: str | None = Field(
        None, validation_alias=_env("SMTP_PASSWORD", "EMAIL_PASSWORD", "SMTP_PASS")
    )
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        "starttls", validation_alias=_env("SMTP_TLS")
    )
    # Seed 000's nodemailer flag: true is implicit TLS (HERALD_SMTP_TLS=tls), false
    # STARTTLS; HERALD_SMTP_TLS, when set, wins.
    email_secure: bool | None = Field(None, validation_alias=AliasChoices("EMAIL_SECURE"))
    smtp_from: str = Field(
        "Herald <noreply@localhost>", validation_alias=_env("SMTP_FROM", "EMAIL_FROM")
    )
    smtp_timeout: float = Field(30.0, gt=0, validation_alias=_env("SMTP_TIMEOUT"))
    smtp_pool_size: int = Field(8, ge=1, le=256, validation_alias=_env("SMTP_POOL_SIZE"))
    smtp_verify_tls: bool = Field(True, validation_alias=_env("SMTP_VERIFY_TLS"))
    smtp_ca_file: str | None = Field(None, validation_alias=_env("SMTP_CA_FILE"))
    smtp_backup_host: str | None = Field(None, validation_alias=_env("SMTP_BACKUP_HOST"))
    smtp_backup_port: int | None = Field(
        None, ge=1, le=65535, validation_alias=_env("SMTP_BACKUP_PORT")
    )
    smtp_backup_user: str | None = Field(None, validation_alias=_env("SMTP_BACKUP_USER"))
    smtp_backup_password: str | None = Field(None, validation_alias=_env("SMTP_BACKUP_PASSWORD"))
    smtp_backup_tls: Literal["starttls", "tls", "none"] | None = Field(
        None, validation_alias=_env("SMTP_BACKUP_TLS")
    )

    email_providers: CsvList = Field(default_factory=list, validation_alias=_env("EMAIL_PROVIDERS"))
    sms_providers: CsvList = Field(default_factory=list, validation_alias=_env("SMS_PROVIDERS"))
    push_providers: CsvList = Field(default_factory=list, validation_alias=_env("PUSH_PROVIDERS"))
    webhook_providers: CsvList = Field(
        default_factory=list, validation_alias=_env("WEBHOOK_PROVIDERS")
    )
    chat_providers: CsvList = Field(default_factory=list, validation_alias=_env("CHAT_PROVIDERS"))

    fault_failure_rate: float = Field(0.0, ge=0, le=1, validation_alias=_env("FAULT_FAILURE_RATE"))
    fault_latency_ms: float = Field(0.0, ge=0, validation_alias=_env("FAULT_LATENCY_MS"))
    fault_error: Literal["transient", "permanent"] = Field(
        "transient", validation_alias=_env("FAULT_ERROR")
    )

    # HTTP channel providers (README "Channels"). Each provider checks its own
    # settings when it is built, so only the providers a chain names need them.
    twilio_account_sid: str | None = Field(
        None, validation_alias=_env("TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: str | None = Field(
        None, validation_alias=_env("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN")
    )
    twilio_from: str | None = Field(
        None, validation_alias=_env("TWILIO_FROM", "TWILIO_PHONE_NUMBER")
    )
    twilio_base_url: str = Field("https://api.twilio.com", validation_alias=_env("TWILIO_BASE_URL"))
    twilio_status_callback: str | None = Field(
        None, validation_alias=_env("TWILIO_STATUS_CALLBACK")
    )
    fcm_credentials_file: str | None = Field(None, validation_alias=_env("FCM_CREDENTIALS_FILE"))
    fcm_project_id: str | None = Field(None, validation_alias=_env("FCM_PROJECT_ID"))
    fcm_base_url: str = Field("https://fcm.googleapis.com", validation_alias=_env("FCM_BASE_URL"))
    apns_key_file: str | None = Field(None, validation_alias=_env("APNS_KEY_FILE"))
    apns_key_id: str | None = Field(None, validation_alias=_env("APNS_KEY_ID"))
    apns_team_id: str | None = Field(None, validation_alias=_env("APNS_TEAM_ID"))
    apns_topic: str | None = Field(None, validation_alias=_env("APNS_TOPIC"))
    apns_base_url: str = Field("https://api.push.apple.com", validation_alias=_env("APNS_BASE_URL"))
    vapid_private_key: str | None = Field(None, validation_alias=_env("VAPID_PRIVATE_KEY"))
    vapid_subject: str | None = Field(None, validation_alias=_env("VAPID_SUBJECT"))
    webpush_allow_hosts: str = Field("", validation_alias=_env("WEBPUSH_ALLOW_HOSTS"))
    webhook_secret: str | None = Field(None, validation_alias=_env("WEBHOOK_SECRET"))
    webhook_timeout: float = Field(10.0, gt=0, validation_alias=_env("WEBHOOK_TIMEOUT"))
    webhook_allow_hosts: str = Field("", validation_alias=_env("WEBHOOK_ALLOW_HOSTS"))
    # Chat through Apprise (providers/chat.py): the services accepted (hosted ones over
    # HTTPS by default), and the non-public hosts they may reach.
    chat_schemes: CsvList = Field(
        default_factory=lambda: [
            "slack", "discord", "tgram", "workflow", "workflows", "matrixs", "ntfy", "ntfys"
        ],
        validation_alias=_env("CHAT_SCHEMES"),
    )  # fmt: skip
    chat_allow_hosts: str = Field("", validation_alias=_env("CHAT_ALLOW_HOSTS"))

    retry_backoff: CsvList = Field(
        default_factory=lambda: ["0", "1", "2", "4"], validation_alias=_env("RETRY_BACKOFF")
    )
    max_attempts: int | None = Field(
        None, ge=1, le=20, validation_alias=_env("MAX_ATTEMPTS", "NOTIFICATION_MAX_ATTEMPTS")
    )
    retry_1_delay_ms: int = Field(
        300_000, ge=0, validation_alias=_env("RETRY_1_DELAY_MS", "RETRY_1_DELAY")
    )
    retry_2_delay_ms: int = Field(
        1_800_000, ge=0, validation_alias=_env("RETRY_2_DELAY_MS", "RETRY_2_DELAY")
    )
    retry_jitter: float = Field(0.1, ge=0, le=1, validation_alias=_env("RETRY_JITTER"))
    # Which ladder (README "Retry ladder"): a seed's, by name, or ``custom``, the one the
    # four settings above describe (their defaults are seed 000's). Each channel may
    # have its own; every ladder's delays are multiplied by HERALD_RETRY_SCALE.
    retry_policy: PolicyName = Field("custom", validation_alias=_env("RETRY_POLICY"))
    email_retry_policy: PolicyName | None = Field(None, validation_alias=_env("EMAIL_RETRY_POLICY"))
    sms_retry_policy: PolicyName | None = Field(None, validation_alias=_env("SMS_RETRY_POLICY"))
    push_retry_policy: PolicyName | None = Field(None, validation_alias=_env("PUSH_RETRY_POLICY"))
    webhook_retry_policy: PolicyName | None = Field(
        None, validation_alias=_env("WEBHOOK_RETRY_POLICY")
    )
    chat_retry_policy: PolicyName | None = Field(None, validation_alias=_env("CHAT_RETRY_POLICY"))
    retry_scale: float = Field(1.0, gt=0, le=1000, validation_alias=_env("RETRY_SCALE"))

    worker_concurrency: int = Field(
        1024, ge=1, le=10_000, validation_alias=_env("WORKER_CONCURRENCY")
    )
    # Sends in flight per lane inside each worker (README "Per-lane concurrency"); unset,
    # a lane shares HERALD_WORKER_CONCURRENCY with the others. Seed 000's queues' names.
    email_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("EMAIL_CONCURRENCY", "MAIL_QUEUE_CONCURRENCY")
    )
    sms_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("SMS_CONCURRENCY")
    )
    push_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("PUSH_CONCURRENCY")
    )
    webhook_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("WEBHOOK_CONCURRENCY")
    )
    chat_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("CHAT_CONCURRENCY")
    )
    retry_1_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("RETRY_1_CONCURRENCY", "RETRY_1_CONCURRENCY")
    )
    retry_2_concurrency: int | None = Field(
        None, ge=1, le=10_000, validation_alias=_env("RETRY_2_CONCURRENCY", "RETRY_2_CONCURRENCY")
    )
    # The lanes this process's worker claims from (`herald worker --channels/--queues`);
    # empty: every lane. Lane names, their aliases (``mail``, ``retry1``) or channels.
    worker_queues: CsvList = Field(default_factory=list, validation_alias=_env("WORKER_QUEUES"))
    reserved_slots: int | None = Field(None, ge=0, validation_alias=_env("RESERVED_SLOTS"))
    claim_batch: int = Field(500, ge=1, le=5000, validation_alias=_env("CLAIM_BATCH"))
    lease_seconds: float = Field(60.0, gt=0, validation_alias=_env("LEASE_SECONDS"))
    # Kept from the end of each lease to record the attempt's outcome (default: a
    # tenth of the lease, at most 5 s); an attempt is cut when the rest is spent.
    lease_margin: float | None = Field(None, ge=0, validation_alias=_env("LEASE_MARGIN"))
    sweep_interval: float = Field(5.0, gt=0, validation_alias=_env("SWEEP_INTERVAL"))
    # A worker run on its own answers GET /metrics there (``scrape.py``); None: it does not.
    metrics_port: int | None = Field(None, ge=1, le=65535, validation_alias=_env("METRICS_PORT"))
    metrics_host: str = Field("127.0.0.1", validation_alias=_env("METRICS_HOST"))
    poll_interval: float = Field(0.05, gt=0, validation_alias=_env("POLL_INTERVAL"))
    shutdown_grace: float = Field(10.0, ge=0, validation_alias=_env("SHUTDOWN_GRACE"))
    cleanup_days: int = Field(
        30, ge=1, validation_alias=_env("CLEANUP_DAYS", "NOTIFICATION_CLEANUP_DAYS")
    )
    # Retention beyond the days (seed 002's removeOnFail / removeOnComplete): FAILED rows
    # (the DLQ) go after this many days, unset keeps them until replayed or deleted; and
    # each tenant keeps at most this many sent ones, unset keeps every one.
    failed_retention_days: int | None = Field(
        None, ge=1, validation_alias=_env("FAILED_RETENTION_DAYS")
    )
    keep_sent: int | None = Field(None, ge=0, validation_alias=_env("KEEP_SENT"))
    breaker_threshold: int = Field(10, ge=1, validation_alias=_env("BREAKER_THRESHOLD"))
    breaker_reset_seconds: float = Field(30.0, gt=0, validation_alias=_env("BREAKER_RESET_SECONDS"))
    rate_limits: CsvList = Field(default_factory=list, validation_alias=_env("RATE_LIMITS"))
    callback_url: str | None = Field(None, validation_alias=_env("CALLBACK_URL"))
    cleanup_interval: float = Field(3600.0, gt=0, validation_alias=_env("CLEANUP_INTERVAL"))
    idempotency_ttl_hours: float = Field(
        24.0, ge=24.0, validation_alias=_env("IDEMPOTENCY_TTL_HOURS")
    )
    sqlite_busy_timeout_ms: int = Field(5000, ge=0, validation_alias=_env("SQLITE_BUSY_TIMEOUT_MS"))
    # PostgreSQL: connections per process (each process also holds one for LISTEN when
    # it delivers), and how often an idle worker looks for rows that fell due, since a
    # commit that makes work due wakes it at once.
    database_pool_size: int = Field(10, ge=2, le=200, validation_alias=_env("DATABASE_POOL_SIZE"))
    idle_poll_interval: float = Field(1.0, gt=0, validation_alias=_env("IDLE_POLL_INTERVAL"))
    # Access (README "Security"): every route but the public ones needs a credential.
    auth: Literal["on", "off"] = Field("on", validation_alias=_env("AUTH"))
    admin_key: SecretStr | None = Field(None, validation_alias=_env("ADMIN_KEY"))
    admin_key_file: str = Field("./var/admin.key", validation_alias=_env("ADMIN_KEY_FILE"))
    allowed_hosts: CsvList = Field(default_factory=list, validation_alias=_env("ALLOWED_HOSTS"))
    public_url: str | None = Field(None, validation_alias=_env("PUBLIC_URL"))
    # Also offered in List-Unsubscribe, as mailto:<address>?subject=unsubscribe (README
    # "Categories and one-click unsubscribe"); the link at HERALD_PUBLIC_URL is the main way.
    unsubscribe_mailto: str | None = Field(None, validation_alias=_env("UNSUBSCRIBE_MAILTO"))
    cors_origins: CsvList = Field(default_factory=list, validation_alias=_env("CORS_ORIGINS"))
    api_rate_limit: str = Field("100/s", validation_alias=_env("API_RATE_LIMIT"))
    # Callers without a valid credential (guessing keys) and logins, per client address.
    anonymous_rate_limit: str = Field("30/min", validation_alias=_env("ANONYMOUS_RATE_LIMIT"))
    key_cache_seconds: float = Field(2.0, gt=0, le=5, validation_alias=_env("KEY_CACHE_SECONDS"))
    session_idle_minutes: float = Field(30.0, gt=0, validation_alias=_env("SESSION_IDLE_MINUTES"))
    session_max_hours: float = Field(12.0, gt=0, validation_alias=_env("SESSION_MAX_HOURS"))
    # Addresses whose X-Forwarded-For / -Proto uvicorn believes (a reverse proxy's).
    forwarded_allow_ips: str = Field("127.0.0.1", validation_alias=_env("FORWARDED_ALLOW_IPS"))
    shed_backlog: int = Field(100_000, ge=1, validation_alias=_env("SHED_BACKLOG"))
    # HTTP server limits (httpserver.py): head size, head and body read times, connections.
    max_header_bytes: int = Field(65_536, ge=4096, le=1_048_576,
                                  validation_alias=_env("MAX_HEADER_BYTES"))  # fmt: skip
    header_timeout: float = Field(10.0, gt=0, le=300, validation_alias=_env("HEADER_TIMEOUT"))
    body_timeout: float = Field(30.0, gt=0, le=3600, validation_alias=_env("BODY_TIMEOUT"))
    max_connections: int = Field(1000, ge=16, validation_alias=_env("MAX_CONNECTIONS"))
    # Email domains mixing Latin, Cyrillic or Greek letters in one label (homographs).
    allow_mixed_script: bool = Field(False, validation_alias=_env("ALLOW_MIXED_SCRIPT"))
    # How far ahead a notification may be scheduled (scheduledAt), in days.
    max_schedule_days: int = Field(365, ge=1, le=3650, validation_alias=_env("MAX_SCHEDULE_DAYS"))
    # Operators' event types (README "Event types"): a JSON file read once, at start.
    event_types_file: str | None = Field(None, validation_alias=_env("EVENT_TYPES_FILE"))
    # What one template render may spend in its render process (README "Templates"):
    # CPU time (compiling may take ten times as much), memory beyond the process's own,
    # and rendered output (UTF-8 bytes, every part together).
    template_cpu_ms: int = Field(100, ge=10, le=60_000, validation_alias=_env("TEMPLATE_CPU_MS"))
    template_memory_mb: int = Field(128, ge=32, le=16_384,
                                    validation_alias=_env("TEMPLATE_MEMORY_MB"))  # fmt: skip
    template_max_output: int = Field(262_144, ge=1024, le=64 * 1_048_576,
                                     validation_alias=_env("TEMPLATE_MAX_OUTPUT"))  # fmt: skip

    # --- Delivery receipts (README "Delivery receipts"; api/receipts.py) -------------------
    # Each provider's endpoint exists only once its secret is set (Twilio's is
    # HERALD_TWILIO_AUTH_TOKEN). SendGrid: the verification key from its settings
    # (base64 DER or PEM). Postmark: the Basic credentials put in its webhook URL.
    sendgrid_webhook_public_key: str | None = Field(
        None, validation_alias=_env("SENDGRID_WEBHOOK_PUBLIC_KEY")
    )
    postmark_webhook_user: str | None = Field(None, validation_alias=_env("POSTMARK_WEBHOOK_USER"))
    postmark_webhook_password: SecretStr | None = Field(
        None, validation_alias=_env("POSTMARK_WEBHOOK_PASSWORD")
    )
    mailgun_signing_key: SecretStr | None = Field(
        None, validation_alias=_env("MAILGUN_SIGNING_KEY")
    )
    # SES through SNS: on, it takes messages from these topics only.
    ses_receipts: bool = Field(False, validation_alias=_env("SES_RECEIPTS"))
    ses_topic_arns: CsvList = Field(default_factory=list, validation_alias=_env("SES_TOPIC_ARNS"))
    # Hosts (``name`` or ``name:port``, exactly) that SNS certificates and subscription
    # confirmations are fetched from, instead of sns.<region>.amazonaws.com. Named hosts
    # are admitted by the destination guard even on private or loopback addresses, and
    # HERALD_SNS_CA_FILE adds trusted roots: both for a local test server.
    sns_cert_hosts: CsvList = Field(default_factory=list, validation_alias=_env("SNS_CERT_HOSTS"))
    sns_ca_file: str | None = Field(None, validation_alias=_env("SNS_CA_FILE"))
    # Receipt routes have their own budget per client address, not the anonymous one:
    # providers post in bursts from a few addresses.
    receipts_rate_limit: str = Field("100/s", validation_alias=_env("RECEIPTS_RATE_LIMIT"))

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _sendgrid_key(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        from .receipts.sendgrid import public_key  # imported here: most settings never need it

        try:
            public_key(value)
        except ConfigError as exc:
            raise ValueError(f"HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY: {exc}") from None
        return value

    @field_validator("sns_cert_hosts")
    @classmethod
    def _sns_hosts(cls, value: list[str]) -> list[str]:
        for host in value:  # a name or IPv4 address, and maybe a port
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?", host):
                raise ValueError(f"{host!r} is not a host name or host:port")
        return [host.lower() for host in value]

    @field_validator("receipts_rate_limit")
    @classmethod
    def _receipts_rate(cls, value: str) -> str:
        from .access import parse_rate

        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _receipts_complete(self) -> Settings:
        if bool(self.postmark_webhook_user) != bool(self.postmark_webhook_password):
            raise ValueError(
                "HERALD_POSTMARK_WEBHOOK_USER and HERALD_POSTMARK_WEBHOOK_PASSWORD go together"
            )
        if self.ses_receipts and not self.ses_topic_arns:
            raise ValueError("HERALD_SES_RECEIPTS=on needs HERALD_SES_TOPIC_ARNS (the SNS topics)")
        for arn in self.ses_topic_arns:
            if not arn.startswith("arn:") or ":sns:" not in arn:
                raise ValueError(f"HERALD_SES_TOPIC_ARNS: {arn!r} is not an SNS topic ARN")
        if self.sns_ca_file:
            try:
                ssl.create_default_context(cafile=self.sns_ca_file)
            except (OSError, ssl.SSLError) as exc:
                message = f"HERALD_SNS_CA_FILE: cannot load {self.sns_ca_file}: {exc}"
                raise ValueError(message) from None
        return self

    # --- end of delivery receipts ----------------------------------------------------------

    @field_validator(
        "email_providers",
        "sms_providers",
        "push_providers",
        "webhook_providers",
        "chat_providers",
        "chat_schemes",
        "retry_backoff",
        "rate_limits",
        "allowed_hosts",
        "cors_origins",
        "ses_topic_arns",
        "sns_cert_hosts",
        "worker_queues",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("retry_backoff")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        for part in value:
            try:
                if float(part) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{part!r} is not a non-negative number of seconds") from None
        if not value:
            raise ValueError("needs at least one delay")
        return value

    @field_validator("worker_queues")
    @classmethod
    def _lanes(cls, value: list[str]) -> list[str]:
        lanes: list[str] = []
        for name in value:
            found = lanes_of(name)
            if not found or DLQ in found:
                raise ValueError(
                    f"{name!r} is not a lane a worker claims from: "
                    f"{', '.join(CLAIMED_QUEUES)} (the DLQ is never sent from)"
                )
            lanes.extend(lane for lane in found if lane not in lanes)
        return lanes

    @field_validator("event_types_file")
    @classmethod
    def _event_types(cls, value: str | None) -> str | None:
        if value:
            from .events import load_file  # imported here: most settings never need it

            load_file(value)  # a bad file stops Herald at start, naming the problem
        return value or None

    @field_validator("rate_limits")
    @classmethod
    def _rates(cls, value: list[str]) -> list[str]:
        for part in value:
            name, _, rate = part.partition("=")
            try:
                if not name or float(rate) <= 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{part!r} is not PROVIDER=CALLS_PER_SECOND") from None
        return value

    @field_validator("api_rate_limit", "anonymous_rate_limit")
    @classmethod
    def _api_rate(cls, value: str) -> str:
        from .access import parse_rate

        parse_rate(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.strip().lower() not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return value.strip().lower()

    @field_validator("smtp_from")
    @classmethod
    def _sender(cls, value: str) -> str:
        if _SENDER.fullmatch(parseaddr(value)[1]) is None:
            raise ValueError(
                "expected an address such as noreply@example.com or Herald <noreply@example.com>"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")) or "?" in value or "#" in value:
            raise ValueError(f"{value!r} is not a base URL such as https://herald.example.com")
        return value.rstrip("/")

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if not value:
            return None
        if _MAILBOX.fullmatch(value) is None:
            raise ValueError(
                f"{value!r} is not a plain email address such as unsubscribe@example.com"
            )
        return value

    def rate_for(self, provider: str) -> float | None:
        """Calls per second allowed to ``provider`` (HERALD_RATE_LIMITS), or None."""
        for part in self.rate_limits:
            name, _, rate = part.partition("=")
            if name.strip() == provider:
                return float(rate)
        return None

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if not self.instance:
            self.instance = f"{socket.gethostname()}:{self.port}"
        if self.postgres_url is not None:
            # Claims and completions are round trips to the server there: a deeper
            # pipeline of smaller claims keeps the worker busy (bench/drain.py).
            if "worker_concurrency" not in self.model_fields_set:
                self.worker_concurrency = 2048
            if "claim_batch" not in self.model_fields_set:
                self.claim_batch = 250
        if self.reserved_slots is None:
            self.reserved_slots = max(1, self.worker_concurrency // 4)
        if self.reserved_slots >= self.worker_concurrency and self.worker_concurrency > 1:
            raise ValueError("HERALD_RESERVED_SLOTS must be below HERALD_WORKER_CONCURRENCY")
        if "*" in self.allowed_hosts and not self.public_url:
            raise ValueError(
                "HERALD_ALLOWED_HOSTS=* needs HERALD_PUBLIC_URL: links Herald builds (verifyUrl) "
                "would otherwise come from whatever Host a request names"
            )
        if self.auth == "off" and not _loopback(self.host):
            raise ValueError(
                "HERALD_AUTH=off is for local experiments: it needs HERALD_HOST on a loopback "
                f"address, not {self.host!r}"
            )
        if self.email_secure is not None and "smtp_tls" not in self.model_fields_set:
            self.smtp_tls = "tls" if self.email_secure else "starttls"
        if self.smtp_port is None:
            self.smtp_port = {"tls": 465, "none": 25}.get(self.smtp_tls, 587)
        self._check_attempt_fits()
        self._check_retry_policy()
        return self

    def _check_attempt_fits(self) -> None:
        """Refuse provider timeouts that cannot fit in one attempt (a lease less its margin).

        Past its lease a row goes to another worker: a call allowed to take
        longer than the attempt is cut every time, and retried for ever.
        """
        if self.lease_margin is None:
            self.lease_margin = min(5.0, self.lease_seconds / 10)
        budget = self.attempt_seconds
        lease = f"HERALD_LEASE_SECONDS ({self.lease_seconds:g}s)"
        if budget <= 0:
            raise ValueError(f"HERALD_LEASE_MARGIN ({self.lease_margin:g}s) must be below {lease}")
        in_use = {name for channel in Channel for name in self.providers_for(channel)}
        timeouts = {
            "HERALD_SMTP_TIMEOUT": self.smtp_timeout if in_use & {"smtp", "smtp_backup"} else 0,
            "HERALD_WEBHOOK_TIMEOUT": self.webhook_timeout if "webhook" in in_use else 0,
        }
        for name, timeout in timeouts.items():
            if timeout >= budget:
                raise ValueError(
                    f"{name} ({timeout:g}s) does not fit in one delivery attempt: {lease} "
                    f"less HERALD_LEASE_MARGIN ({self.lease_margin:g}s) leaves {budget:g}s. "
                    f"Raise HERALD_LEASE_SECONDS or lower {name}."
                )

    @property
    def attempt_seconds(self) -> float:
        """How long one attempt may take: the lease less the margin to record it."""
        margin = self.lease_margin if self.lease_margin is not None else 0.0
        return self.lease_seconds - margin

    def hosts(self) -> frozenset[str]:
        """Host names a request may carry (HERALD_ALLOWED_HOSTS; ``*`` allows any)."""
        if self.allowed_hosts:
            return frozenset(h.lower() for h in self.allowed_hosts)
        bound = self.host.lower()
        names = {"localhost", "127.0.0.1", "[::1]"}
        if bound not in ("0.0.0.0", "::", ""):
            names.add(f"[{bound}]" if ":" in bound else bound)
        return frozenset(names)

    def ladder(self, channel: Channel | None = None) -> Ladder:
        """The ladder ``channel`` climbs (None: the default), scaled, with the jitter set."""
        name = self._policy_name(channel)
        if name != CUSTOM:
            base = POLICIES[name]
        elif self.max_attempts is not None:
            backoff = (0.0, *(float(2**i) for i in range(self.max_attempts - 1)))
            base = Ladder(backoff, (self.retry_1_delay_ms / 1000, self.retry_2_delay_ms / 1000))
        else:
            backoff = tuple(float(v) for v in self.retry_backoff)
            base = Ladder(backoff, (self.retry_1_delay_ms / 1000, self.retry_2_delay_ms / 1000))
        return replace(base.scaled(self.retry_scale), jitter=self.retry_jitter)

    def policy(self) -> Policy:
        """Every channel's ladder: the default, and those HERALD_<CHANNEL>_RETRY_POLICY name."""
        own = {c: self.ladder(c) for c in Channel if self._policy_name(c, own=True)}
        return Policy(self.ladder(), own)

    def _policy_name(self, channel: Channel | None, own: bool = False) -> str:
        """The policy ``channel`` names (or "" if ``own`` and it names none), else the default."""
        name: str | None = None
        if channel is not None:
            name = getattr(self, f"{channel.value.lower()}_retry_policy")
        if own:
            return name or ""
        return name or self.retry_policy

    def _check_retry_policy(self) -> None:
        """Refuse custom-ladder settings that no ladder in use would read: they would be
        ignored in silence, and the operator believe them applied."""
        in_use = {self._policy_name(None), *(self._policy_name(c) for c in Channel)}
        if CUSTOM in in_use:
            return
        custom = {
            "retry_backoff": "HERALD_RETRY_BACKOFF",
            "max_attempts": "HERALD_MAX_ATTEMPTS (NOTIFICATION_MAX_ATTEMPTS)",
            "retry_1_delay_ms": "HERALD_RETRY_1_DELAY_MS (RETRY_1_DELAY)",
            "retry_2_delay_ms": "HERALD_RETRY_2_DELAY_MS (RETRY_2_DELAY)",
        }
        given = [env for name, env in custom.items() if name in self.model_fields_set]
        if given:
            raise ValueError(
                f"{', '.join(given)} describe the custom retry ladder, but "
                f"HERALD_RETRY_POLICY={self.retry_policy} and no channel's policy is custom: "
                f"unset them, or choose HERALD_RETRY_POLICY=custom (policies: "
                f"{', '.join(POLICY_NAMES)})"
            )

    def providers_for(self, channel: Channel) -> list[str]:
        """The channel's provider chain, in failover order."""
        chosen: list[str] = getattr(self, f"{channel.value.lower()}_providers")
        if chosen:
            return chosen
        if channel is Channel.EMAIL and self.smtp_host:
            return ["smtp"]
        if channel is Channel.SMS and self.twilio_account_sid and self.twilio_auth_token:
            return ["twilio"]  # seed 003's .env: its SMS went out through Twilio
        return ["capture"]

    def configured_for(self, channel: Channel) -> list[str]:
        """Providers of ``channel`` whose settings are given, chosen or not.

        A channel left on ``capture`` while one of these is configured is marked
        SENT without leaving the machine: the start-up warning names them.
        """
        given = {
            Channel.EMAIL: {"smtp": self.smtp_host, "smtp_backup": self.smtp_backup_host},
            Channel.SMS: {"twilio": self.twilio_account_sid or self.twilio_auth_token},
            Channel.PUSH: {"fcm": self.fcm_credentials_file, "apns": self.apns_key_file,
                           "webpush": self.vapid_private_key},
            Channel.WEBHOOK: {"webhook": self.webhook_secret},
        }.get(channel, {})  # fmt: skip
        return [name for name, value in given.items() if value]

    def lane_caps(self) -> dict[str, int]:
        """Each capped lane's sends in flight per worker (HERALD_<LANE>_CONCURRENCY)."""
        caps = {c.queue: getattr(self, f"{c.value.lower()}_concurrency") for c in Channel}
        caps["retry-1"], caps["retry-2"] = self.retry_1_concurrency, self.retry_2_concurrency
        return {lane: cap for lane, cap in caps.items() if cap is not None}

    @property
    def postgres_url(self) -> str | None:
        """The URL when it names PostgreSQL (``postgresql://``, ``postgres://``)."""
        scheme = self.database_url.partition("://")[0].split("+")[0]
        return self.database_url if scheme in ("postgresql", "postgres") else None

    @property
    def sqlite_path(self) -> str | None:
        """The file of a ``sqlite:///`` URL (``sqlite:///:memory:`` is refused)."""
        prefix = "sqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        return self.database_url[len(prefix) :]


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

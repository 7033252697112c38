"""Who may do what: API keys, dashboard users, scopes and the caller a request acts as.

Domain values and the cryptography behind them, nothing else: the store keeps
the records (``store/access.py``), the API's guard decides per request
(``api/guard.py``).

- An API key is 256 random bits shown once; the store keeps only its SHA-256
  (a fast hash is right for a secret that cannot be guessed) and a short prefix
  by which people recognise it in lists.
- A dashboard password is hashed with scrypt, memory-hard, from the standard
  library, so no extra dependency is needed for it.
- Scopes: ``send`` creates, ``read`` sees, ``manage`` changes, ``admin`` is
  everything, in every tenant. A dashboard role is a set of scopes.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, replace

KEY_MARK = "hk_"
#: How many characters of a key (its mark included) stay visible in lists.
PREFIX_LENGTH = 12


class Scope(enum.StrEnum):
    SEND = "send"
    READ = "read"
    MANAGE = "manage"
    ADMIN = "admin"


class Role(enum.StrEnum):
    """A dashboard user's role: a viewer sees, an operator acts, an admin also manages."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def scopes(self) -> frozenset[Scope]:
        return _ROLE_SCOPES[self]

    def scopes_in(self, tenant_id: str, home: str) -> frozenset[Scope]:
        """What the role allows a user of ``tenant_id``: ``admin`` reaches every tenant and
        the shared queues, so only an admin of the installation's own tenant (``home``)
        holds it; another tenant's admin manages that tenant alone."""
        scopes = _ROLE_SCOPES[self]
        return scopes if tenant_id == home else scopes - {Scope.ADMIN}


_ROLE_SCOPES = {
    Role.VIEWER: frozenset({Scope.READ}),
    Role.OPERATOR: frozenset({Scope.READ, Scope.SEND, Scope.MANAGE}),
    Role.ADMIN: frozenset(Scope),
}


def parse_scopes(text: str) -> frozenset[Scope]:
    """``send,read`` → the scopes; an unknown word raises ``ValueError`` naming it."""
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if not words:
        raise ValueError("at least one scope is needed (send, read, manage, admin)")
    found = set()
    for word in words:
        try:
            found.add(Scope(word))
        except ValueError:
            raise ValueError(f"unknown scope {word!r}; one of send, read, manage, admin") from None
    return frozenset(found)


_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_tenant(name: str) -> str:
    """A tenant name: 1-64 letters, digits, ``_``, ``.`` or ``-``; else ``ValueError``."""
    if not _TENANT.match(name):
        raise ValueError(f"{name[:80]!r} is not a tenant name (1-64 letters, digits, _ . -)")
    return name


def grantable(caller: frozenset[Scope], wanted: frozenset[Scope]) -> str | None:
    """Why a caller holding ``caller`` may not hand out ``wanted``; None when it may.

    Nobody grants more than they hold, and only ``admin`` grants ``admin``:
    a ``manage`` key must not mint the admin key it was never given.
    """
    if Scope.ADMIN in caller:
        return None
    if Scope.ADMIN in wanted:
        return "only a credential with the 'admin' scope can grant 'admin'"
    missing = wanted - caller
    if missing:
        return f"a credential cannot grant scopes it lacks: {scopes_text(frozenset(missing))}"
    return None


def scopes_text(scopes: frozenset[Scope]) -> str:
    return ",".join(s.value for s in Scope if s in scopes)


@dataclass(frozen=True, slots=True)
class Rate:
    """Requests allowed per period; the bucket holds ``count`` (its burst) at most."""

    count: int
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.period)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.period:g}s"


_RATE = re.compile(r"^\s*(\d{1,9})\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$", re.IGNORECASE)
_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
            "h": 3600.0, "hour": 3600.0}  # fmt: skip


def parse_rate(text: str) -> Rate:
    """``100/s``, ``100/min``, ``5000/h``; anything else raises ``ValueError``."""
    match = _RATE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not a rate such as 100/s, 100/min or 5000/h")
    return Rate(int(match.group(1)), _PERIODS[match.group(2).lower()])


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: everything but the secret, which is never kept."""

    id: str
    tenant_id: str
    name: str
    prefix: str
    scopes: frozenset[Scope]
    rate_limit: str | None
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    role: Role
    password_hash: str
    disabled: bool
    created_at: float
    last_login_at: float | None


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a request acts as: its tenant, what it may do, and its name for the audit."""

    tenant_id: str
    scopes: frozenset[Scope]
    actor: str
    key_id: str | None = None
    rate: Rate | None = None
    #: How the access log names the key: a stored key's public prefix (``key_prefix``),
    #: ``HERALD_ADMIN_KEY`` for that one (whose first characters may be most of it);
    #: None for a dashboard session or with authentication off.
    prefix: str | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def acting_for(self, tenant_id: str) -> Principal:
        """The same caller on another tenant's data (only ``admin`` may ask for it)."""
        return replace(self, tenant_id=tenant_id)


def new_key() -> str:
    """A fresh key: the mark, then 256 random bits in URL-safe base64 (43 characters)."""
    return KEY_MARK + secrets.token_urlsafe(32)


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(secret: str) -> str:
    return secret[:PREFIX_LENGTH]


# scrypt at N=2^15, r=8: 32 MiB and ~50-100 ms per hash on this class of machine,
# the cost OWASP's password storage guidance names for scrypt.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
#: Longer passwords are refused: the hash's cost must not grow with the input.
MAX_PASSWORD = 1024


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return "$".join(
        ("scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest))
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        found = _scrypt(password, _unb64(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, _unb64(digest))


#: Checked against when the account does not exist, so a wrong email costs as
#: much time as a wrong password and does not reveal which accounts exist.
DUMMY_HASH = (
    "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if len(password) > MAX_PASSWORD:
        raise ValueError("password too long")
    return hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
        maxmem=_SCRYPT_MAXMEM, dklen=64,
    )  # fmt: skip


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

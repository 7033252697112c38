"""What a call to Herald can raise. Every answer Herald refuses is an ``APIError``.

::

    HeraldClientError
    ├── ConnectionFailed        no answer: connecting, sending or reading failed (after retries)
    ├── UnexpectedAnswer        a success whose body is not what the client reads (not Herald?)
    └── APIError                Herald answered 4xx or 5xx; status, message and field errors
        ├── BadRequest          400  a body that is not JSON, a Host Herald does not answer to
        ├── Unauthorized        401  no key, or a key Herald does not know
        ├── Forbidden           403  the key lacks the scope the route needs
        ├── NotFound            404  no such id for this tenant
        ├── Conflict            409  exists already, or not in a state that allows it
        ├── Gone                410  a verification token that expired
        ├── PayloadTooLarge     413  a body over HERALD_MAX_BODY_BYTES
        ├── UnsupportedMedia    415  a body that is not JSON
        ├── ValidationFailed    422  ``errors`` names each field
        ├── RateLimited         429  the key's budget is spent (after retries); ``retry_after``
        └── ServerError         5xx
            └── Unavailable     503  the store cannot commit, or load is shed (after retries)

Herald's error body is ``{"success": false, "message": ..., "errors": [{"field", "message"}]}``;
``APIError`` carries each part, and the whole parsed body as ``body`` (the bulk route puts
each item's result in ``body["data"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One invalid field: ``recipient``, ``query.limit``, ``header.idempotency-key``."""

    field: str
    message: str


class HeraldClientError(Exception):
    """Base of everything the client raises on purpose."""


class ConnectionFailed(HeraldClientError):
    """Herald could not be reached, or its answer was lost; the cause is chained."""


class UnexpectedAnswer(HeraldClientError):
    """Herald (or whatever answered) said yes in a shape this client cannot read; the
    ``msgspec`` error is chained."""


class APIError(HeraldClientError):
    """Herald answered with an error status."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[FieldError] | None = None,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.errors = errors or []
        self.body = body
        self.headers = dict(headers or {})
        self.retry_after = retry_after

    @property
    def fields(self) -> dict[str, str]:
        """``{field: message}``; a field refused twice has its messages joined by ``; ``."""
        named: dict[str, str] = {}
        for error in self.errors:
            named[error.field] = (
                f"{named[error.field]}; {error.message}" if error.field in named else error.message
            )
        return named


class BadRequest(APIError):
    pass


class Unauthorized(APIError):
    pass


class Forbidden(APIError):
    pass


class NotFound(APIError):
    pass


class Conflict(APIError):
    pass


class Gone(APIError):
    pass


class PayloadTooLarge(APIError):
    pass


class UnsupportedMedia(APIError):
    pass


class ValidationFailed(APIError):
    pass


class RateLimited(APIError):
    pass


class ServerError(APIError):
    pass


class Unavailable(ServerError):
    pass


BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    415: UnsupportedMedia,
    422: ValidationFailed,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int) -> type[APIError]:
    """The exception class for an error ``status``."""
    return BY_STATUS.get(status, ServerError if status >= 500 else APIError)

"""Template and event errors as HTTP answers, in the error envelope of ``errors.py``.

The domain raises typed errors carrying ``fields``; this table turns each type
into a status code, and ``fields`` into the envelope's ``errors``. Routes catch
``REFUSED`` only: a ``StoreUnavailable`` still reaches the 503 handler.
"""

from __future__ import annotations

from typing import Any

from ..events import (
    BuiltinEventType,
    EventError,
    EventTypeExists,
    TokenExpired,
    TokenUnknown,
    TokenUsed,
    UnknownEventType,
)
from ..templates import TemplateError, TemplateExists
from .errors import error_response
from .json import JSONBody
from .schemas import ErrorBody

REFUSED = (TemplateError, EventError)

#: Most specific first; anything else in ``REFUSED`` is a 422.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (TokenUnknown, 404),
    (TokenUsed, 409),
    (TokenExpired, 410),
    (TemplateExists, 409),
    (EventTypeExists, 409),
    (BuiltinEventType, 409),
    (UnknownEventType, 422),
)


def refusal(exc: TemplateError | EventError) -> JSONBody:
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 422)
    errors = [{"field": f, "message": m} for f, m in exc.fields]
    return error_response(status, str(exc), errors)


#: What each error status means, in the OpenAPI document (``documented``, ``docs.py``).
WORDS = {
    400: "Malformed: a body that is not JSON, or a `Host` or `X-Herald-Tenant` "
    "this server does not accept.",
    401: "No credential, or an API key that is unknown, revoked or expired.",
    403: "The credential lacks the scope this needs.",
    404: "Not found.",
    409: "Conflicts with what exists.",
    410: "Expired.",
    413: "The body exceeds `HERALD_MAX_BODY_BYTES`.",
    415: "The body is not JSON (`Content-Type: application/json`).",
    422: "A field is missing or invalid, or a template cannot render; `errors` names it.",
    429: "Over the request budget; retry after `Retry-After` seconds.",
    503: "The store is unavailable; retry after a moment.",
}


def documented(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error codes, all in the error envelope."""
    return {code: {"model": ErrorBody, "description": WORDS[code]} for code in codes}

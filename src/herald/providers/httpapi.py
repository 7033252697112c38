"""What the HTTP providers share: their client, ``Retry-After``, and error wording.

Each provider owns one ``httpx.AsyncClient`` for its whole life, so
connections (and their TLS sessions) are reused from one send to the next;
``Provider.close`` releases them. Timeouts are bounded: a provider that hangs
must cost a worker slot for seconds, not for the lease.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import __version__
from ..errors import ConfigError, TransientError

#: Connect quickly or not at all; a slow answer gets a little longer.
TIMEOUT = httpx.Timeout(10.0, connect=5.0)
USER_AGENT = f"Herald/{__version__}"
#: A provider's Retry-After is a hint, not an order: a day at most, so a
#: hostile or broken endpoint cannot park a notification for years.
MAX_RETRY_AFTER = 86_400.0


def new_client(*, timeout: httpx.Timeout = TIMEOUT, **options: Any) -> httpx.AsyncClient:
    """One pooled client; redirects are never followed (a provider API does not move)."""
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        **options,
    )


def base_url(value: str, variable: str) -> str:
    """Check an ``http(s)://`` base URL once, at start, and drop its trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{variable}: {value!r} is not an http:// or https:// URL")
    return value.rstrip("/")


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP-date), if usable."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None  # RFC 9110 dates are GMT; a zoneless one is not one of them
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def overloaded(response: httpx.Response) -> bool:
    """429 and 5xx: the provider is busy or broken, not refusing this message."""
    return response.status_code == 429 or response.status_code >= 500


def busy(
    provider: str, what: str, response: httpx.Response, body: bytes | None = None
) -> TransientError:
    return TransientError(
        f"{what} answered {describe(response, body=body)}",
        provider=provider,
        retry_after=retry_after(response),
    )


def unreachable(provider: str, what: str, exc: httpx.HTTPError) -> TransientError:
    """A network failure or timeout: nothing is known about the message, so retry."""
    reason = str(exc) or type(exc).__name__
    return TransientError(f"cannot reach {what}: {reason}", provider=provider)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The reply as a JSON object, or ``{}`` when it is not one (an HTML error page)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def describe(response: httpx.Response, limit: int = 200, body: bytes | None = None) -> str:
    """``503 Service Unavailable: <start of the body>``, for errors and the audit log.

    ``body`` is what was read of a streamed reply.
    """
    text = f"{response.status_code} {response.reason_phrase}".rstrip()
    if body is not None:
        shown = " ".join(body.decode("utf-8", "replace").split())
    else:
        try:
            shown = " ".join(response.text.split())
        except httpx.ResponseNotRead:
            shown = ""
    if shown:
        text += f": {shown[:limit]}" + ("…" if len(shown) > limit else "")
    return text

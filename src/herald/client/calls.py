"""A request to Herald as a value, built once and sent by either transport.

Every route is a function returning a ``Call`` (``routes.py``): its method,
path, query, JSON body, ``Idempotency-Key`` and how to read the answer. The
sync and async clients only send it, again when ``Tries`` says so, and hand
the response back to ``Call.answer``. A key is drawn when the call is built,
so every retry of one logical call carries the same key and Herald runs it
once.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from .errors import APIError, FieldError, UnexpectedAnswer, error_for
from .models import Page, Pagination
from .retrying import RetryPolicy, Tries, retry_after

T = TypeVar("T")
Query = Mapping[str, str | int | float | bool | datetime | None]

OK = frozenset({200, 201, 202})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One logical request and the reading of its answer.

    ``resend_lost``: whether the request may go again when its answer was lost
    (see ``retrying``). ``accept``: the statuses whose body is the answer.
    """

    method: str
    path: str
    read: Callable[[bytes], T]
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    key: str | None = None
    resend_lost: bool = True
    accept: frozenset[int] = OK

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        if self.key is not None:
            headers["Idempotency-Key"] = self.key
        return headers

    def tries(self, policy: RetryPolicy) -> Tries:
        keyed = self.key is not None
        return Tries(policy, resend_lost=self.resend_lost, keyed=keyed, accept=self.accept)

    def answer(self, response: httpx.Response) -> T:
        """The answer's value, or the ``APIError`` its status calls for."""
        if response.status_code not in self.accept:
            raise refusal(response)
        try:
            return self.read(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as error:
            where = f"{self.method} {self.path}"
            raise UnexpectedAnswer(f"{where} answered {response.status_code}: {error}") from error


def refusal(response: httpx.Response) -> APIError:
    """The exception for an error answer, from Herald's error envelope when there is one."""
    status = response.status_code
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    message = response.reason_phrase or f"HTTP {status}"
    errors: list[FieldError] = []
    if isinstance(body, dict):
        if isinstance(body.get("message"), str):
            message = body["message"]
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                errors.append(
                    FieldError(str(error.get("field", "")), str(error.get("message", "")))
                )
    return error_for(status)(
        status,
        message,
        errors,
        body=body,
        headers=response.headers,
        retry_after=retry_after(response.headers.get("retry-after")),
    )


# -- building calls ---------------------------------------------------------------


def path(template: str, *segments: str) -> str:
    """``template`` with each ``{}`` replaced by a segment, percent-encoded whole."""
    return template.format(*(quote(s, safe="") for s in segments))


def given(**fields: Any) -> dict[str, Any]:
    """The body's fields that were given: None leaves a field to Herald's default."""
    return {name: value for name, value in fields.items() if value is not None}


def query(params: Query) -> dict[str, str]:
    shown = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            shown[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            shown[name] = value.isoformat()
        else:
            shown[name] = str(value)
    return shown


def get(where: str, read: Callable[[bytes], T], params: Query | None = None) -> Call[T]:
    return Call("GET", where, read, query(params or {}))


def delete(where: str, read: Callable[[bytes], T], params: Query | None = None) -> Call[T]:
    return Call("DELETE", where, read, query(params or {}))


def put(where: str, body: Any, read: Callable[[bytes], T], *, resend_lost: bool = True) -> Call[T]:
    return Call("PUT", where, read, body=msgspec.json.encode(body), resend_lost=resend_lost)


def post(
    where: str,
    body: Any,
    read: Callable[[bytes], T],
    idempotency_key: str | None = None,
    params: Query | None = None,
) -> Call[T]:
    """A POST that changes something: it carries ``idempotency_key`` or a fresh one."""
    return Call(
        "POST",
        where,
        read,
        query(params or {}),
        body=None if body is None else msgspec.json.encode(body),
        key=idempotency_key or str(uuid.uuid4()),
    )


def post_safe(where: str, body: Any, read: Callable[[bytes], T]) -> Call[T]:
    """A POST that may be sent twice (a preview, a pause): no key needed."""
    encoded = None if body is None else msgspec.json.encode(body)
    return Call("POST", where, read, body=encoded)


# -- reading answers ----------------------------------------------------------------


def enveloped(kind: type[T]) -> Callable[[bytes], T]:
    """Read ``{"success": true, "data": ...}`` as ``kind``."""
    decoder = _decoder(_wire(("data", kind)))

    def read(content: bytes) -> T:
        value: T = decoder.decode(content).data
        return value

    return read


def inner(kind: type[T], name: str) -> Callable[[bytes], T]:
    """Read ``{"success": true, "data": {name: ...}}``'s one field as ``kind``."""
    decoder = _decoder(_wire(("data", _wire((name, kind)))))

    def read(content: bytes) -> T:
        value: T = getattr(decoder.decode(content).data, name)
        return value

    return read


def paged(kind: type[T], items: str) -> Callable[[bytes], Page[T]]:
    """Read a list answer, ``{"data": {items: [...], "pagination": {...}}}``, as a ``Page``."""
    listed = list.__class_getitem__(kind)
    decoder = _decoder(_wire(("data", _wire((items, listed), ("pagination", Pagination)))))

    def read(content: bytes) -> Page[T]:
        found = decoder.decode(content).data
        return Page(items=getattr(found, items), pagination=found.pagination)

    return read


def bare(kind: type[T]) -> Callable[[bytes], T]:
    """Read a body that has no envelope (health, seed 003's notify)."""
    decoder = msgspec.json.Decoder(kind)
    return decoder.decode


def nothing(content: bytes) -> None:
    """An answer whose ``data`` is null: a deletion."""


def text(content: bytes) -> str:
    return content.decode()


@functools.cache
def _wire(*fields: tuple[str, Any]) -> Any:
    """A struct of ``fields`` (name and type): how an answer's value sits in its JSON."""
    return msgspec.defstruct("Wire_" + "_".join(name for name, _ in fields), list(fields))


@functools.cache
def _decoder(shape: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(shape)


@dataclass(frozen=True)
class Pager(Generic[T]):
    """Every item of a list, page after page: ``fetch(n)`` is the call for page ``n``.

    Pages are numbered and newest first, so an item created while a list is
    walked pushes the others down and one may show twice; one deleted pulls
    them up and one may be skipped. Collect ids first to act on each.
    """

    fetch: Callable[[int], Call[Page[T]]]

    def first(self) -> Call[Page[T]]:
        return self.fetch(1)

    def after(self, found: Page[T]) -> Call[Page[T]] | None:
        at = found.pagination
        if not found.items or at.current_page >= at.total_pages:
            return None
        return self.fetch(at.current_page + 1)

"""Definitions a tenant keeps by name (templates, event types): one set of routes for each kind.

Both kinds are managed alike: listed with the built-in ones, created (409 when
the name is taken), read, replaced by ``PUT`` (404 for a name nobody defined),
deleted (a built-in is uncovered or outranked, never removed). What differs
is each kind's rules, written as the five methods of a ``Catalog``;
``Catalog.declare`` gives them their routes, each with its scope and its
OpenAPI models, and one way to answer: the success envelope, or the refusal
(``refusals.py``) of a typed error the rules raised. A ``StoreUnavailable``
still reaches the 503 handler.

Usage::

    class Widgets(Catalog):
        singular, plural = "widget", "widgets"
        ...
        async def list_all(self, request: Request) -> Answer: ...

    Widgets().declare(router)

No ``from __future__ import annotations`` here: the routes ``declare`` builds
annotate their parameters with the catalog's own models, which FastAPI must
see as classes, not as names local to ``declare``.
"""

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from typing import Annotated, Any, ClassVar

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from ..access import Scope
from .authz import requires
from .envelope import ok
from .json import JSONBody
from .refusals import REFUSED, documented, refusal
from .schemas import Envelope

#: What a rule answers: the envelope's ``data`` and ``message``.
Answer = tuple[Any, str | None]
#: A definition's name in a path.
Name = Annotated[str, Path(min_length=1, max_length=200)]


def no_options() -> None:
    """The query parameters of a route that takes none."""


async def _answer(rule: Awaitable[Answer], status: int = 200) -> JSONBody:
    try:
        data, message = await rule
    except REFUSED as exc:
        return refusal(exc)
    return ok(data, message, status)


class Catalog(ABC):
    """One kind of named definition: its models, its summaries, and its rules."""

    singular: ClassVar[str]  # route names: ``create_template``
    plural: ClassVar[str]  # ``list_templates``
    create_in: ClassVar[type[BaseModel]]  # POST body: the name and the definition
    replace_in: ClassVar[type[BaseModel]]  # PUT body: the definition
    listed: ClassVar[type[BaseModel]]
    saved: ClassVar[type[BaseModel]]
    detail: ClassVar[type[BaseModel]]
    deleted: ClassVar[type[BaseModel]]
    #: One line for each rule, by its name: ``list_all``, ``create``, ``read``, ``replace``…
    summaries: ClassVar[dict[str, str]]

    #: FastAPI dependencies: the query parameters ``read`` and ``delete`` take.
    read_options: Any = staticmethod(no_options)
    delete_options: Any = staticmethod(no_options)

    @abstractmethod
    async def list_all(self, request: Request) -> Answer: ...

    @abstractmethod
    async def create(self, request: Request, body: Any) -> Answer: ...

    @abstractmethod
    async def read(self, request: Request, name: str, options: Any) -> Answer: ...

    @abstractmethod
    async def replace(self, request: Request, name: str, body: Any) -> Answer: ...

    @abstractmethod
    async def delete(self, request: Request, name: str, options: Any) -> Answer: ...

    def declare(self, router: APIRouter) -> None:
        """The five routes, on ``router`` (whose prefix names the kind)."""
        catalog = self
        read_options = Annotated[Any, Depends(self.read_options)]
        delete_options = Annotated[Any, Depends(self.delete_options)]

        # The models are this catalog's: real classes to FastAPI, variables to a type checker.
        async def list_all(request: Request) -> JSONBody:
            return await _answer(catalog.list_all(request))

        async def create(
            body: catalog.create_in,  # type: ignore[name-defined]
            request: Request,
        ) -> JSONBody:
            return await _answer(catalog.create(request, body), status=201)

        async def read(name: Name, request: Request, options: read_options) -> JSONBody:
            return await _answer(catalog.read(request, name, options))

        async def replace(
            name: Name,
            body: catalog.replace_in,  # type: ignore[name-defined]
            request: Request,
        ) -> JSONBody:
            return await _answer(catalog.replace(request, name, body))

        async def delete(name: Name, request: Request, options: delete_options) -> JSONBody:
            return await _answer(catalog.delete(request, name, options))

        routes = (
            ("", "GET", list_all, f"list_{self.plural}", Scope.READ, self.listed, (503,)),
            ("", "POST", create, f"create_{self.singular}", Scope.MANAGE, self.saved,
             (409, 422, 503)),
            ("/{name}", "GET", read, f"get_{self.singular}", Scope.READ, self.detail,
             (404, 422, 503)),
            ("/{name}", "PUT", replace, f"put_{self.singular}", Scope.MANAGE, self.saved,
             (404, 422, 503)),
            ("/{name}", "DELETE", delete, f"delete_{self.singular}", Scope.MANAGE, self.deleted,
             (404, 409, 422, 503)),
        )  # fmt: skip
        for path, method, endpoint, name, scope, model, codes in routes:
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                name=name,
                dependencies=[requires(scope)],
                status_code=201 if method == "POST" else 200,
                response_model=Envelope[model],  # type: ignore[valid-type]
                responses=documented(*codes),
                summary=self.summaries[endpoint.__name__],
            )

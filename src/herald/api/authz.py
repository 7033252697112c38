"""What each route needs: the public list, and one scope declared by every other route.

The guard (``guard.py``) authenticates every request that is not public; each
route then says which scope it needs with ``requires(Scope.X)``. ``verify``
runs when the app is built and refuses a route that declares nothing, so a
route added later without a check cannot start, and the authorization matrix
test (``tests/integration/test_authz_matrix.py``) walks the same table.

Usage::

    @router.get("/things", dependencies=[requires(Scope.READ)])
    async def things(request: Request) -> ...:
        tenant = tenant_of(request)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount

from ..access import Principal, Scope

log = structlog.get_logger("herald.audit")

#: Routes anyone may call, by method and path: the one place they are listed.
PUBLIC_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/api/health"),
        ("HEAD", "/api/health"),
        ("GET", "/"),  # a redirect to the dashboard
        ("GET", "/dashboard/login"),
        ("POST", "/dashboard/login"),
        # Delivery receipts (receipts.py): each checked by its provider's own signature.
        ("POST", "/api/receipts/twilio"),
        ("POST", "/api/receipts/sendgrid"),
        ("POST", "/api/receipts/ses"),
        ("POST", "/api/receipts/postmark"),
        ("POST", "/api/receipts/mailgun"),
        # The button of the page a verification link opens (verification.py): the
        # one-time token it posts is the credential.
        ("POST", "/api/signups/verify"),
    }
)
#: Routes whose body is what a provider sends (Twilio's form, SNS's text/plain), so
#: the guard does not require JSON of them. Their size is bounded all the same.
PROVIDER_BODIES = "/api/receipts/"
#: Routes under ``/api/`` that take a browser's urlencoded form instead of JSON.
FORM_ROUTES: frozenset[str] = frozenset({"/api/signups/verify"})
#: Path prefixes anyone may read: the dashboard's stylesheet and script, and the
#: API docs' scripts (``docs.ASSETS``; the pages and the document need ``read``).
PUBLIC_PREFIXES: tuple[str, ...] = ("/dashboard/static/", "/docs/assets/")
#: Routes anyone may call whose path ends in one value (``/u/{token}``, a signed
#: unsubscribe link): by method and the path before that last segment. Any one
#: non-empty segment matches, and so does the route's own template.
PUBLIC_TEMPLATES: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/u/"),
        ("HEAD", "/u/"),
        ("POST", "/u/"),
        # The page a verification link opens: it shows a button, and spends nothing.
        ("GET", "/api/signups/verify/"),
    }
)


def is_public(method: str, path: str) -> bool:
    if (method, path) in PUBLIC_ROUTES or (
        method in ("GET", "HEAD") and path.startswith(PUBLIC_PREFIXES)
    ):
        return True
    head, slash, last = path.rpartition("/")
    return bool(last) and (method, head + slash) in PUBLIC_TEMPLATES


class _Requirement:
    """A dependency that refuses a caller without ``scope`` (403 naming it)."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, request: Request) -> Principal:
        caller = principal(request)
        if not caller.allows(self.scope):
            raise HTTPException(403, f"This credential lacks the {self.scope.value!r} scope.")
        return caller


def requires(scope: Scope) -> Any:
    return Depends(_Requirement(scope))


def require_for(request: Request, scope: Scope, what: str) -> None:
    """Refuse (403 naming ``scope``) a caller who asks for ``what``, which needs ``scope``
    beyond the route's own (``ignoreSuppression`` on a notification)."""
    if not principal(request).allows(scope):
        raise HTTPException(403, f"{what} needs a credential with the {scope.value!r} scope.")


def principal(request: Request) -> Principal:
    """The caller the guard authenticated (never absent on a route that is not public)."""
    found: Principal | None = request.scope.get("state", {}).get("principal")
    if found is None:  # only reachable if the guard were removed: fail closed
        raise HTTPException(401, "A credential is required.", {"WWW-Authenticate": "Bearer"})
    return found


def tenant_of(request: Request) -> str:
    return principal(request).tenant_id


def actor_of(request: Request) -> str:
    """The name audit rows give the caller: its key's name or its user's email."""
    return principal(request).actor


def record(request: Request, action: str, **target: Any) -> None:
    """Log an operator's change under the authenticated caller's name (never a header's)."""
    caller = principal(request)
    log.info("operator_action", action=action, actor=caller.actor, tenant=caller.tenant_id,
             **target)  # fmt: skip


def route_scope(route: BaseRoute) -> Scope | None:
    """The scope a route declared with ``requires``, or None."""
    if not isinstance(route, APIRoute):
        return None
    for dependency in route.dependant.dependencies:
        if isinstance(dependency.call, _Requirement):
            return dependency.call.scope
    return None


def endpoints(app: FastAPI) -> Iterator[tuple[str, str, BaseRoute]]:
    """Every (method, path, route) the app serves, through included routers; mounts excluded.

    FastAPI keeps included routers as lazy branches of ``app.routes``;
    ``iter_route_contexts`` walks them to the routes with their full paths.
    """
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount) or context.path is None:
            continue
        for method in sorted(context.methods or ()):
            yield method, context.path, route


def verify(app: FastAPI) -> None:
    """Refuse to build an app with a route that neither is public nor declares a scope."""
    for method, path, route in endpoints(app):
        if not is_public(method, path) and route_scope(route) is None:
            raise RuntimeError(
                f"{method} {path} declares no scope (authz.requires) and is not public"
            )

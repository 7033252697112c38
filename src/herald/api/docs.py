"""The OpenAPI document and its browsable pages, behind a credential like every other route.

FastAPI's own ``/docs`` and ``/openapi.json`` are plain routes that could not
declare a scope, so the app is built without them and they are added here as
routes that need ``read`` (a key, or a dashboard session in a browser):
``/docs`` (Swagger UI) and ``/redoc`` (ReDoc).

FastAPI's pages load their scripts from a CDN, so they are blank on a host
with no way out. Herald serves them from the files the ``fastapi-offline``
package ships (swagger-ui-dist and ReDoc's standalone bundle, kept current
by that package), under ``/docs/assets/``: public, like the dashboard's own
stylesheet, since they are the same files for everyone.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..access import Scope
from .authz import PROVIDER_BODIES, is_public, requires
from .guard import WRITES
from .json import JSONBody
from .refusals import WORDS

#: The error envelope (``schemas.ErrorBody``), as the document names it.
ERROR_BODY = "#/components/schemas/ErrorBody"
#: Where the vendored Swagger UI and ReDoc files are served (``authz.PUBLIC_PREFIXES``).
ASSETS = "/docs/assets"
#: Swagger UI's defaults, less its online validator badge (an image from swagger.io).
SWAGGER_PARAMETERS = {
    "dom_id": "#swagger-ui",
    "layout": "BaseLayout",
    "deepLinking": True,
    "showExtensions": True,
    "showCommonExtensions": True,
    "validatorUrl": None,
}
#: The pages' scripts, styles and the document come from here alone. ReDoc shows
#: its maker's logo from their CDN; refused, the image hides itself, and no viewer's
#: visit is announced to a third party.
POLICY = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def refusals(path: str, method: str, operation: dict[str, Any]) -> None:
    """Add to ``operation``'s responses every refusal that comes from before its route.

    The guard answers for every route (``guard.py``): a ``Host`` or
    ``X-Herald-Tenant`` it does not accept or a body that is not JSON is a 400,
    and a store it cannot reach a 503; a route that is not public also answers
    401 (no credential), 403 (a scope it lacks) and 429 (over its budget). A
    write under ``/api/`` may meet the body limit (413) and the JSON rule (415),
    and any route with a parameter or a body the framework's validation (422).
    What a route documents itself is kept as it is.
    """
    codes = {400, 503}
    if not is_public(method.upper(), path):
        codes |= {401, 403, 429}
    if method.upper() in WRITES and path.startswith("/api/"):
        codes.add(413)
        if not path.startswith(PROVIDER_BODIES):
            codes.add(415)
    if operation.get("parameters") or "requestBody" in operation:
        codes.add(422)
    responses = operation.setdefault("responses", {})
    for code in codes:
        responses.setdefault(str(code), {
            "description": WORDS[code],
            "content": {"application/json": {"schema": {"$ref": ERROR_BODY}}},
        })  # fmt: skip
    operation["responses"] = dict(sorted(responses.items()))


def install(app: FastAPI) -> None:
    generate = app.openapi

    def with_security() -> dict[str, Any]:
        """The document, saying how to authenticate (Swagger UI's Authorize button)."""
        document = generate()
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer",
                             "description": "An API key: `Authorization: Bearer hk_…`"}  # fmt: skip
        schemes["apiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        document["security"] = [{"bearer": []}, {"apiKey": []}]
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                if is_public(method.upper(), path):
                    operation["security"] = []
                refusals(path, method, operation)
        return document

    app.openapi = with_security  # type: ignore[method-assign]

    async def openapi(request: Request) -> JSONBody:
        return JSONBody(app.openapi())

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = POLICY
        return page

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} API",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = POLICY
        return page

    read = [requires(Scope.READ)]
    app.add_api_route("/openapi.json", openapi, include_in_schema=False, dependencies=read)
    app.add_api_route("/docs", swagger, include_in_schema=False, dependencies=read)
    app.add_api_route("/redoc", redoc, include_in_schema=False, dependencies=read)
    app.mount(ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

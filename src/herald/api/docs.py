"""The OpenAPI document and its browsable page, behind a credential like every other route.

FastAPI's own ``/docs`` and ``/openapi.json`` are plain routes that could not
declare a scope, so the app is built without them and they are added here as
routes that need ``read`` (a key, or a dashboard session in a browser).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from ..access import Scope
from .authz import requires
from .json import JSONBody


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
        health = document.get("paths", {}).get("/api/health", {}).get("get")
        if health is not None:
            health["security"] = []  # the one public route
        return document

    app.openapi = with_security  # type: ignore[method-assign]

    async def openapi(request: Request) -> JSONBody:
        return JSONBody(app.openapi())

    async def page(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    read = [requires(Scope.READ)]
    app.add_api_route("/openapi.json", openapi, include_in_schema=False, dependencies=read)
    app.add_api_route("/docs", page, include_in_schema=False, dependencies=read)

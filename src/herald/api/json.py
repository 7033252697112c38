"""JSON responses serialised with orjson: the hot path builds plain dicts."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSONBody(JSONResponse):
    """A JSONResponse (so OpenAPI documents the route's model) rendered by orjson."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

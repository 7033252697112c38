"""The success envelope the seeds answered with: ``{"success": true, "data": …, "message": …}``.

Errors have their own envelope (``errors.py``); every route that succeeds
answers this one, built here so that its shape is written once.
"""

from __future__ import annotations

from typing import Any

from .json import JSONBody


def ok(data: Any, message: str | None = None, status: int = 200) -> JSONBody:
    return JSONBody({"success": True, "data": data, "message": message}, status_code=status)

"""Pages of a list: the ``page`` and ``limit`` query parameters, and a page of notifications.

Every list route takes the same two parameters within the same bounds (a page
of at most 100, so one request cannot ask for the whole table), and every list
of notifications answers seed 004's envelope: ``notifications`` and its
``pagination`` block.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from ..models import Page
from . import present
from .json import JSONBody

PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
PageLimit = Annotated[int, Query(ge=1, le=100)]


def notification_page(request: Request, found: Page) -> JSONBody:
    """``found`` in the list envelope, each notification shown as ``GET`` shows it."""
    policy = request.app.state.engine.policy
    data = {
        "notifications": [present.notification(n, policy) for n in found.items],
        "pagination": present.pagination(found),
    }
    return JSONBody({"success": True, "data": data})

"""The in-memory store: every port in plain Python, a test double and the fast path for
unit tests (see ``store.py``). Not reachable from ``HERALD_DATABASE_URL``."""

from __future__ import annotations

from .store import MemoryStore
from .tables import Tables

__all__ = ["MemoryStore", "Tables"]

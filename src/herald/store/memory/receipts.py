"""The memory dialect of the receipts rules: ``receipts.sql`` in Python.

Each method answers the statement of the same name in ``store/*/receipts.sql``,
with the same parameters and columns, over ``Tables`` (``MemoryDialect``
inherits them).
"""

from __future__ import annotations

from typing import Any

import orjson

from ...models import Status
from .tables import Tables

Rows = list[tuple[Any, ...]]


class ReceiptStatements:
    t: Tables

    def receipt_seen_claim(self, keys: list[list[Any]], now: float) -> Rows:
        claimed = []
        for key, until in keys:
            held = self.t.receipt_seen.get(key)
            if held is None or held <= now:
                self.t.receipt_seen[key] = until
                claimed.append((key,))
        return claimed

    def receipt_seen_expire(self, now: float) -> int:
        gone = [k for k, until in self.t.receipt_seen.items() if until <= now]
        for key in gone:
            del self.t.receipt_seen[key]
        return len(gone)

    def receipt_targets(self, message_ids: list[str]) -> Rows:
        wanted = set(message_ids)
        return [
            (r.id, r.tenant_id, r.channel.value, r.recipient, r.status.value, r.category,
             r.callback_url, r.attempts, r.provider, r.provider_message_id)
            for r in self.t.notifications.values()
            if r.provider_message_id in wanted
        ]  # fmt: skip

    def receipt_audit(self, rows: list[list[Any]]) -> int:
        for note_id, _tenant, status, message, at, metadata in rows:
            self.t.audit(note_id, status, message, at, orjson.loads(metadata))
        return len(rows)

    def receipt_statuses(self, rows: list[list[str]], now: float) -> int:
        for note_id, status in rows:
            row = self.t.notifications[note_id]
            row.status, row.updated_at = Status(status), now
        return len(rows)

    def suppressions_insert(self, rows: list[list[Any]]) -> int:
        added = 0
        for tenant, recipient, category, reason, detail, note_id, at in rows:
            if (tenant, recipient, category) not in self.t.suppressions:
                self.t.suppressions[tenant, recipient, category] = (reason, detail, note_id, at)
                added += 1
        return added

    def suppressions_delete(self, tenant: str, recipient: str, category: str | None) -> int:
        gone = [k for k in self._suppressions(tenant, recipient, None) if category in (None, k[2])]
        for key in gone:
            del self.t.suppressions[key]
        return len(gone)

    def suppressions_count(self, tenant: str, recipient: str | None, reason: str | None) -> Rows:
        return [(len(self._suppressions(tenant, recipient, reason)),)]

    def suppressions_list(
        self, tenant: str, recipient: str | None, reason: str | None, limit: int, offset: int
    ) -> Rows:
        keys = self._suppressions(tenant, recipient, reason)
        rows = [(*k, *self.t.suppressions[k]) for k in keys]
        rows.sort(key=lambda r: (-r[6], r[1], r[2]))
        return rows[offset : offset + limit]

    def _suppressions(
        self, tenant: str, recipient: str | None, reason: str | None
    ) -> list[tuple[str, str, str]]:
        return [
            k for k, v in self.t.suppressions.items()
            if k[0] == tenant and recipient in (None, k[1]) and reason in (None, v[0])
        ]  # fmt: skip

    def categories_list(self, tenant: str) -> Rows:
        found = [(t, name, *v) for (t, name), v in self.t.categories.items() if t == tenant]
        return sorted(found, key=lambda r: r[1])

    def category_upsert(
        self, tenant: str, name: str, unsubscribable: bool, description: str | None, now: float
    ) -> Rows:
        before = self.t.categories.get((tenant, name))
        created = now if before is None else before[2]
        self.t.categories[tenant, name] = (unsubscribable, description, created, now)
        return [(tenant, name, unsubscribable, description, created, now)]

    def category_delete(self, tenant: str, name: str) -> int:
        return 0 if self.t.categories.pop((tenant, name), None) is None else 1

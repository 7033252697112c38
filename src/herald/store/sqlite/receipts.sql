-- Receipts, suppressions and categories (migration 008): the statements the shared
-- rules of store/receipts.py run, under the same names and parameters as
-- PostgreSQL's receipts.sql. Lists arrive as JSON text, rows as JSON arrays.

-- name: receipt_seen_claim
-- Claim replay keys ([[key, until], ...]) not held, or held only until ?2 or before;
-- answers the keys claimed (a key missing from the answer is a replay).
INSERT INTO receipt_seen (key, until)
SELECT value ->> 0, value ->> 1 FROM json_each(?1) WHERE true
ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE receipt_seen.until <= ?2
RETURNING key;

-- name: receipt_seen_expire
DELETE FROM receipt_seen WHERE until <= ?1;

-- name: receipt_targets
SELECT id, tenant_id, channel, recipient, status, category, callback_url, attempts, provider,
       provider_message_id
FROM notifications
WHERE provider_message_id IN (SELECT value FROM json_each(?1));

-- name: receipt_audit
-- [[notification id, tenant, status, message, at, metadata JSON], ...]
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5
FROM json_each(?1);

-- name: receipt_statuses
-- [[notification id, status], ...]
UPDATE notifications SET status = c.value ->> 1, updated_at = ?2
FROM json_each(?1) AS c
WHERE notifications.id = c.value ->> 0;

-- name: suppressions_insert
-- [[tenant, recipient, category, reason, detail, notification id, created at], ...]; an
-- entry already there stays as it is (its first reason and source).
INSERT INTO suppressions (tenant_id, recipient, category, reason, detail, notification_id,
                          created_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6
FROM json_each(?1) WHERE true
ON CONFLICT DO NOTHING;

-- name: suppressions_delete
DELETE FROM suppressions
WHERE tenant_id = ?1 AND recipient = ?2 AND (?3 IS NULL OR category = ?3);

-- name: suppressions_count
SELECT count(*) FROM suppressions
WHERE tenant_id = ?1 AND (?2 IS NULL OR recipient = ?2) AND (?3 IS NULL OR reason = ?3);

-- name: suppressions_list
SELECT tenant_id, recipient, category, reason, detail, notification_id, created_at
FROM suppressions
WHERE tenant_id = ?1 AND (?2 IS NULL OR recipient = ?2) AND (?3 IS NULL OR reason = ?3)
ORDER BY created_at DESC, recipient, category
LIMIT ?4 OFFSET ?5;

-- name: categories_list
SELECT tenant_id, name, unsubscribable, description, created_at, updated_at
FROM categories WHERE tenant_id = ?1 ORDER BY name;

-- name: category_upsert
INSERT INTO categories (tenant_id, name, unsubscribable, description, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET unsubscribable = excluded.unsubscribable, description = excluded.description,
    updated_at = excluded.updated_at
RETURNING tenant_id, name, unsubscribable, description, created_at, updated_at;

-- name: category_delete
DELETE FROM categories WHERE tenant_id = ?1 AND name = ?2;

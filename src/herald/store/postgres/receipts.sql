-- Receipts, suppressions and categories (migration 009): the statements the shared
-- rules of store/receipts.py run, under the same names and parameters as SQLite's
-- receipts.sql. Lists arrive as arrays, rows as one jsonb array of arrays.

-- name: receipt_seen_claim
-- Claim replay keys ([[key, until], ...]) not held, or held only until $2 or before;
-- answers the keys claimed (a key missing from the answer is a replay).
INSERT INTO receipt_seen (key, until)
SELECT r ->> 0, (r ->> 1)::float8 FROM jsonb_array_elements($1::jsonb) AS r
ON CONFLICT (key) DO UPDATE SET until = excluded.until WHERE receipt_seen.until <= $2
RETURNING key;

-- name: receipt_seen_expire
DELETE FROM receipt_seen WHERE until <= $1;

-- name: receipt_targets
-- Locked until COMMIT: two batches about one notification take turns, so its status
-- only moves forward.
SELECT id, tenant_id, channel, recipient, status, category, callback_url, attempts, provider,
       provider_message_id
FROM notifications
WHERE provider_message_id = ANY ($1::text[])
FOR UPDATE;

-- name: receipt_audit
-- [[notification id, tenant, status, message, at, metadata JSON], ...]
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, (r ->> 4)::float8, (r ->> 5)::jsonb
FROM jsonb_array_elements($1::jsonb) AS r;

-- name: receipt_statuses
-- [[notification id, status], ...]
UPDATE notifications n SET status = c ->> 1, updated_at = $2
FROM jsonb_array_elements($1::jsonb) AS c
WHERE n.id = c ->> 0;

-- name: suppressions_insert
-- [[tenant, recipient, category, reason, detail, notification id, created at], ...]; an
-- entry already there stays as it is (its first reason and source).
INSERT INTO suppressions (tenant_id, recipient, category, reason, detail, notification_id,
                          created_at)
SELECT r ->> 0, r ->> 1, r ->> 2, r ->> 3, r ->> 4, r ->> 5, (r ->> 6)::float8
FROM jsonb_array_elements($1::jsonb) AS r
ON CONFLICT DO NOTHING;

-- name: suppressions_delete
DELETE FROM suppressions
WHERE tenant_id = $1 AND recipient = $2 AND ($3::text IS NULL OR category = $3);

-- name: suppressions_count
SELECT count(*) FROM suppressions
WHERE tenant_id = $1 AND ($2::text IS NULL OR recipient = $2)
  AND ($3::text IS NULL OR reason = $3);

-- name: suppressions_list
SELECT tenant_id, recipient, category, reason, detail, notification_id, created_at
FROM suppressions
WHERE tenant_id = $1 AND ($2::text IS NULL OR recipient = $2)
  AND ($3::text IS NULL OR reason = $3)
ORDER BY created_at DESC, recipient, category
LIMIT $4 OFFSET $5;

-- name: categories_list
SELECT tenant_id, name, unsubscribable, description, created_at, updated_at
FROM categories WHERE tenant_id = $1 ORDER BY name;

-- name: category_upsert
INSERT INTO categories (tenant_id, name, unsubscribable, description, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (tenant_id, name) DO UPDATE
SET unsubscribable = excluded.unsubscribable, description = excluded.description,
    updated_at = excluded.updated_at
RETURNING tenant_id, name, unsubscribable, description, created_at, updated_at;

-- name: category_delete
DELETE FROM categories WHERE tenant_id = $1 AND name = $2;

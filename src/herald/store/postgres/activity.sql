-- What changed lately, for the dashboard's live view and charts (store/activity.py).
-- Each reads one index; the times are POSIX seconds.

-- name: created
-- Notifications created at or after a time: ids start with it (rows.id_bound).
SELECT id, tenant_id, status, created_at FROM notifications
WHERE id >= $1
ORDER BY id
LIMIT $2;

-- name: claimed
-- Rows being delivered whose attempt started at or after a time (the leased index).
SELECT id, tenant_id, claimed_at FROM notifications
WHERE status = 'PROCESSING' AND claimed_at >= $1
ORDER BY lease_until
LIMIT $2;

-- name: stored
-- History rows stored at or after a time (audit_at).
SELECT id, tenant_id, notification_id, status, at FROM audit
WHERE at >= $1
ORDER BY at
LIMIT $2;

-- name: paused
SELECT name FROM queue_state WHERE paused;

-- name: per_minute
-- A tenant's history rows in some statuses per minute, from audit_at alone.
SELECT floor(at / 60)::bigint AS minute, status, count(*) FROM audit
WHERE at >= $2 AND tenant_id = $1 AND status = ANY ($3::text[])
GROUP BY minute, status;

-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);

-- name: migrations_done
SELECT version FROM schema_migrations;

-- name: migration_applied
INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?);

-- name: insert_notification
INSERT INTO notifications (
    id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
    queue, due_at, idempotency_key, scheduled_at, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_audit
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
VALUES (?, ?, ?, ?, ?, ?);

-- name: by_idempotency_key
SELECT * FROM notifications WHERE tenant_id = ? AND idempotency_key = ?;

-- name: get
SELECT * FROM notifications WHERE tenant_id = ? AND id = ?;

-- name: audit
SELECT id, notification_id, status, message, at, metadata
FROM audit WHERE notification_id = ? AND tenant_id = ? ORDER BY id;

-- name: claim
UPDATE notifications
SET status = 'PROCESSING', claim_token = :token, lease_until = :lease_until,
    attempts = attempts + 1, updated_at = :now
WHERE id IN (
    SELECT id FROM notifications
    WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
      AND due_at <= :now
      AND priority >= :min_priority
      AND queue NOT IN (SELECT name FROM queue_state WHERE paused = 1)
    ORDER BY priority DESC, due_at
    LIMIT :limit
)
RETURNING id, tenant_id, channel, recipient, subject, body, html, metadata, priority, attempts;

-- name: tokens
SELECT id, claim_token FROM notifications WHERE id IN (SELECT value FROM json_each(?));

-- name: mark_sent
UPDATE notifications
SET status = 'SENT', provider = ?, provider_message_id = ?, processing_ms = ?, sent_at = ?,
    updated_at = ?, last_error = NULL, lease_until = NULL, claim_token = NULL
WHERE id = ?;

-- name: mark_retry
UPDATE notifications
SET status = 'RETRYING', provider = ?, last_error = ?, due_at = ?, stage = ?, queue = ?,
    updated_at = ?, lease_until = NULL, claim_token = NULL
WHERE id = ?;

-- name: mark_dead
UPDATE notifications
SET status = 'FAILED', provider = ?, last_error = ?, queue = 'dlq', failed_at = ?,
    updated_at = ?, lease_until = NULL, claim_token = NULL
WHERE id = ?;

-- name: release
UPDATE notifications
SET status = 'QUEUED', attempts = attempts - 1, lease_until = NULL, claim_token = NULL,
    updated_at = ?
WHERE id = ? AND claim_token = ?;

-- name: expired
SELECT id, tenant_id, attempts FROM notifications
WHERE status = 'PROCESSING' AND lease_until < ?;

-- name: requeue_stalled
UPDATE notifications
SET status = 'QUEUED', due_at = ?, lease_until = NULL, claim_token = NULL, updated_at = ?
WHERE id = ? AND status = 'PROCESSING' AND lease_until < ?;

-- name: bury_stalled
UPDATE notifications
SET status = 'FAILED', queue = 'dlq', last_error = ?, failed_at = ?, lease_until = NULL,
    claim_token = NULL, updated_at = ?
WHERE id = ? AND status = 'PROCESSING' AND lease_until < ?;

-- name: count_filtered
SELECT count(*) FROM notifications
WHERE tenant_id = :tenant
  AND (:status IS NULL OR status = :status)
  AND (:channel IS NULL OR channel = :channel)
  AND (:priority IS NULL OR priority = :priority);

-- name: list_filtered
SELECT * FROM notifications
WHERE tenant_id = :tenant
  AND (:status IS NULL OR status = :status)
  AND (:channel IS NULL OR channel = :channel)
  AND (:priority IS NULL OR priority = :priority)
ORDER BY id DESC
LIMIT :limit OFFSET :offset;

-- name: breakdown
SELECT status, channel, priority, count(*), sum(processing_ms), count(processing_ms)
FROM notifications WHERE tenant_id = ? GROUP BY status, channel, priority;

-- name: queue_counts
SELECT queue,
       sum(status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= :now),
       sum(status = 'PROCESSING'),
       sum(status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at > :now),
       sum(status = 'SENT'),
       sum(status = 'FAILED')
FROM notifications WHERE tenant_id = :tenant GROUP BY queue;

-- name: paused
SELECT name FROM queue_state WHERE paused = 1;

-- name: set_paused
INSERT INTO queue_state (name, paused, updated_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at;

-- name: capture
INSERT INTO mailbox (id, notification_id, tenant_id, channel, recipient, subject, body, html, at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: mailbox
SELECT id, notification_id, tenant_id, channel, recipient, subject, body, html, at
FROM mailbox
WHERE tenant_id = :tenant AND (:channel IS NULL OR channel = :channel)
ORDER BY at DESC LIMIT :limit;

-- name: cancel
UPDATE notifications
SET status = 'CANCELLED', updated_at = :now, lease_until = NULL, claim_token = NULL
WHERE tenant_id = :tenant AND id = :id AND status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
RETURNING id;

-- name: dlq_filtered
SELECT * FROM notifications
WHERE tenant_id = :tenant AND status = 'FAILED' AND queue = 'dlq'
  AND (:channel IS NULL OR channel = :channel)
  AND (:error IS NULL OR instr(lower(coalesce(last_error, '')), lower(:error)) > 0)
  AND (:since IS NULL OR failed_at >= :since)
  AND (:until IS NULL OR failed_at < :until)
ORDER BY failed_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: dlq_count
SELECT count(*) FROM notifications
WHERE tenant_id = :tenant AND status = 'FAILED' AND queue = 'dlq'
  AND (:channel IS NULL OR channel = :channel)
  AND (:error IS NULL OR instr(lower(coalesce(last_error, '')), lower(:error)) > 0)
  AND (:since IS NULL OR failed_at >= :since)
  AND (:until IS NULL OR failed_at < :until);

-- name: dlq_ids
SELECT id FROM notifications
WHERE tenant_id = :tenant AND status = 'FAILED' AND queue = 'dlq'
  AND (:channel IS NULL OR channel = :channel)
  AND (:error IS NULL OR instr(lower(coalesce(last_error, '')), lower(:error)) > 0)
  AND (:since IS NULL OR failed_at >= :since)
  AND (:until IS NULL OR failed_at < :until)
ORDER BY failed_at
LIMIT :limit;

-- name: replay
UPDATE notifications
SET status = 'QUEUED', queue = lower(channel), attempts = 0, stage = 0, due_at = :now,
    failed_at = NULL, updated_at = :now, lease_until = NULL, claim_token = NULL
WHERE tenant_id = :tenant AND id = :id AND status = 'FAILED' AND queue = 'dlq';

-- name: dlq_delete
DELETE FROM notifications
WHERE tenant_id = :tenant AND id = :id AND status = 'FAILED' AND queue = 'dlq';

-- name: old_sent
SELECT id, tenant_id FROM notifications WHERE id < ? AND status = 'SENT' LIMIT ?;

-- name: delete_notification
DELETE FROM notifications WHERE id = ?;

-- name: delete_audit
DELETE FROM audit WHERE notification_id = ?;

-- name: delete_mailbox
DELETE FROM mailbox WHERE notification_id = ?;

-- name: idempotency_get
SELECT request_hash, status_code, response, created_at FROM idempotency
WHERE tenant_id = ? AND key = ?;

-- name: idempotency_claim
INSERT INTO idempotency (tenant_id, key, request_hash, status_code, response, created_at)
VALUES (?, ?, ?, NULL, NULL, ?);

-- name: idempotency_finish
UPDATE idempotency SET status_code = ?, response = ?
WHERE tenant_id = ? AND key = ? AND status_code IS NULL;

-- name: idempotency_abandon
DELETE FROM idempotency WHERE tenant_id = ? AND key = ? AND status_code IS NULL;

-- name: idempotency_forget
DELETE FROM idempotency WHERE tenant_id = ? AND key = ?;

-- name: idempotency_expire
DELETE FROM idempotency WHERE created_at < ?;

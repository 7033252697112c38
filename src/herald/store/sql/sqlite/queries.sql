-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);

-- name: migrations_done
SELECT version FROM schema_migrations;

-- name: migration_applied
INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?);

-- name: insert_notification
INSERT INTO notifications (
    id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
    queue, due_at, idempotency_key, scheduled_at, created_at, updated_at, callback_url
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

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
RETURNING id, tenant_id, channel, recipient, subject, body, html, metadata, priority, attempts,
    callback_url,
    EXISTS (SELECT 1 FROM unregistered u WHERE u.channel = notifications.channel
                                          AND u.recipient = notifications.recipient);

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

-- name: defer
UPDATE notifications
SET status = 'QUEUED', attempts = attempts - 1, due_at = ?, updated_at = ?,
    lease_until = NULL, claim_token = NULL
WHERE id = ?;

-- name: remember_unregistered
INSERT INTO unregistered (channel, recipient, provider, reason, at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (channel, recipient) DO UPDATE
SET provider = excluded.provider, reason = excluded.reason, at = excluded.at;

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

-- name: template_last_version
SELECT max(version) FROM templates
WHERE tenant_id = ? AND name = ? AND channel = ? AND locale = ?;

-- name: template_insert
INSERT INTO templates (tenant_id, name, channel, locale, version, subject, body, html, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: templates_latest
SELECT name, channel, locale, version, body, subject, html, created_at FROM templates t
WHERE tenant_id = :tenant AND (:name IS NULL OR name = :name)
  AND version = (
    SELECT max(version) FROM templates l
    WHERE l.tenant_id = t.tenant_id AND l.name = t.name AND l.channel = t.channel
      AND l.locale = t.locale
  )
ORDER BY name, channel, locale;

-- name: templates_at_version
SELECT name, channel, locale, version, body, subject, html, created_at FROM templates
WHERE tenant_id = ? AND name = ? AND version = ?
ORDER BY channel, locale;

-- name: templates_delete
DELETE FROM templates
WHERE tenant_id = :tenant AND name = :name
  AND (:channel IS NULL OR channel = :channel) AND (:locale IS NULL OR locale = :locale);

-- name: event_types_stored
SELECT definition FROM event_types WHERE tenant_id = ? ORDER BY name;

-- name: event_type_exists
SELECT 1 FROM event_types WHERE tenant_id = ? AND name = ?;

-- name: event_type_upsert
INSERT INTO event_types (tenant_id, name, definition, created_at, updated_at)
VALUES (:tenant, :name, :definition, :now, :now)
ON CONFLICT (tenant_id, name) DO UPDATE
SET definition = excluded.definition, updated_at = excluded.updated_at;

-- name: event_type_delete
DELETE FROM event_types WHERE tenant_id = ? AND name = ?;

-- name: event_insert
INSERT INTO events (id, tenant_id, type, recipient, data, hashed, verify_hash, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: event_link
INSERT INTO event_notifications (event_id, position, notification_id) VALUES (?, ?, ?);

-- name: event_get
SELECT id, tenant_id, type, recipient, data, verify_hash IS NOT NULL, verified_at, created_at
FROM events WHERE tenant_id = ? AND id = ?;

-- name: event_links
SELECT event_id, notification_id FROM event_notifications
WHERE event_id IN (SELECT value FROM json_each(?))
ORDER BY event_id, position;

-- name: events_filtered
SELECT id, tenant_id, type, recipient, data, verify_hash IS NOT NULL, verified_at, created_at
FROM events e
WHERE tenant_id = :tenant
  AND (:type IS NULL OR type = :type)
  AND (:user_id IS NULL OR CAST(json_extract(data, '$.userId') AS TEXT) = :user_id)
  AND (:primary_status IS NULL OR EXISTS (
    SELECT 1 FROM event_notifications l JOIN notifications n ON n.id = l.notification_id
    WHERE l.event_id = e.id AND l.position = 0 AND n.status = :primary_status
  ))
ORDER BY id DESC
LIMIT :limit OFFSET :offset;

-- name: events_count
SELECT count(*) FROM events e
WHERE tenant_id = :tenant
  AND (:type IS NULL OR type = :type)
  AND (:user_id IS NULL OR CAST(json_extract(data, '$.userId') AS TEXT) = :user_id)
  AND (:primary_status IS NULL OR EXISTS (
    SELECT 1 FROM event_notifications l JOIN notifications n ON n.id = l.notification_id
    WHERE l.event_id = e.id AND l.position = 0 AND n.status = :primary_status
  ));

-- name: events_notifications
SELECT l.event_id AS event_id, n.* FROM event_notifications l
JOIN notifications n ON n.id = l.notification_id
WHERE l.event_id IN (SELECT value FROM json_each(:ids)) AND n.tenant_id = :tenant
ORDER BY l.event_id, l.position;

-- name: event_counts
SELECT count(*), coalesce(sum(verified_at IS NOT NULL), 0), coalesce(sum(created_at >= :since), 0)
FROM events WHERE tenant_id = :tenant AND type = :type;

-- name: event_primary_statuses
SELECT n.status, count(*) FROM events e
JOIN event_notifications l ON l.event_id = e.id AND l.position = 0
JOIN notifications n ON n.id = l.notification_id
WHERE e.tenant_id = :tenant AND e.type = :type
GROUP BY n.status;

-- name: event_by_verify_hash
SELECT id, verified_at, created_at FROM events WHERE tenant_id = ? AND verify_hash = ?;

-- name: event_verified
UPDATE events SET verified_at = ? WHERE id = ? AND verified_at IS NULL;

-- name: notifications_sensitive
SELECT id FROM notifications
WHERE tenant_id = ? AND id IN (SELECT value FROM json_each(?))
  AND json_extract(metadata, '$.sensitive') = 1;

-- name: bucket
SELECT tokens, updated_at, paused_until FROM rate_buckets WHERE provider = ?;

-- name: bucket_save
INSERT INTO rate_buckets (provider, tokens, updated_at, paused_until) VALUES (?, ?, ?, ?)
ON CONFLICT (provider) DO UPDATE
SET tokens = excluded.tokens, updated_at = excluded.updated_at, paused_until = excluded.paused_until;

-- name: bucket_pause
INSERT INTO rate_buckets (provider, tokens, updated_at, paused_until) VALUES (?, 0, ?, ?)
ON CONFLICT (provider) DO UPDATE SET paused_until = max(paused_until, excluded.paused_until);

-- name: breaker_save
INSERT INTO provider_state (instance, provider, state, failures, changed_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (instance, provider) DO UPDATE
SET state = excluded.state, failures = excluded.failures, changed_at = excluded.changed_at;

-- name: breakers
SELECT instance, provider, state, failures, changed_at FROM provider_state
ORDER BY provider, instance;

-- name: backlog
SELECT count(*) FROM notifications
WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= ?;

-- name: final_delete
DELETE FROM notifications
WHERE tenant_id = :tenant AND id = :id AND status IN ('SENT', 'FAILED', 'CANCELLED');

-- name: heartbeat
INSERT INTO heartbeats (instance, at) VALUES (?, ?)
ON CONFLICT (instance) DO UPDATE SET at = excluded.at;

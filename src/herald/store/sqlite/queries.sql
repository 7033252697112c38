-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);

-- name: migrations_done
SELECT version FROM schema_migrations;

-- name: migration_applied
INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?);

-- name: insert_notification
INSERT INTO notifications (
    id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
    queue, due_at, idempotency_key, scheduled_at, created_at, updated_at, callback_url,
    category, ignore_suppression, max_retries, request_id, creation_derived
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1);

-- name: insert_audit
-- started_at and attempt: set on a row that ends an attempt, NULL on an operator's.
INSERT INTO audit (
    notification_id, tenant_id, status, message, at, metadata, started_at, attempt
) VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: by_idempotency_key
SELECT * FROM notifications WHERE tenant_id = ? AND idempotency_key = ?;

-- name: get
SELECT * FROM notifications WHERE tenant_id = ? AND id = ?;

-- name: history
-- The notification's own columns (history.Origin), then each stored row's (history.Kept),
-- in the order they were stored; one row of NULLs for the latter when none is.
SELECT n.status, n.created_at, n.scheduled_at, n.claimed_at, n.attempts, n.creation_derived,
       a.status, a.message, a.at, a.metadata, a.started_at, a.attempt
FROM notifications n LEFT JOIN audit a ON a.notification_id = n.id
WHERE n.tenant_id = ? AND n.id = ?
ORDER BY a.id;

-- name: claim_pick
-- The due rows to claim: their rowids, and the rows, each as one JSON array. A claim
-- is this and claim_mark, one step each: every row a statement answers is a step of
-- its own, around which the writer thread gives the GIL away and then waits for the
-- event loop's thread to hand it back. With RETURNING (a step per row) the drain's
-- writer spent 30 us of wall time per notification claiming, so 11 (instrumented).
SELECT json_group_array(n.rowid), json_group_array(json_array(
    n.id, n.tenant_id, n.channel, n.recipient, n.subject, n.body, n.html, n.metadata,
    n.priority, n.attempts + 1, n.callback_url,
    EXISTS (SELECT 1 FROM unregistered u WHERE u.channel = n.channel
                                          AND u.recipient = n.recipient),
    n.category,
    CASE WHEN NOT n.ignore_suppression THEN (
        SELECT s.reason FROM suppressions s
        WHERE s.tenant_id = n.tenant_id AND s.recipient = lower(trim(n.recipient))
          AND s.category IN ('', coalesce(n.category, ''))
        ORDER BY s.category LIMIT 1) END,
    n.category IS NOT NULL AND EXISTS (
        SELECT 1 FROM categories k
        WHERE k.tenant_id = n.tenant_id AND k.name = n.category AND k.unsubscribable),
    n.max_retries, n.queue))
FROM (
    SELECT rowid, * FROM notifications
    WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
      AND due_at <= :now
      AND priority >= :min_priority
      AND queue NOT IN (SELECT name FROM queue_state WHERE paused = 1)
      -- The lanes a worker serves (a JSON array), or NULL for all of them: NULL costs
      -- nothing measurable (500 of 100,000 queued: 2.9 ms with the test or without).
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
    ORDER BY priority DESC, due_at
    LIMIT :limit
) AS n;

-- name: claim_mark
-- The rows claim_pick chose (a JSON array of rowids), in the same transaction.
UPDATE notifications
SET status = 'PROCESSING', claim_token = :token, lease_until = :lease_until,
    attempts = attempts + 1, claimed_at = :now, updated_at = :now
WHERE rowid IN (SELECT value FROM json_each(:rowids));

-- name: mark_sent
-- Completions: each changes only the rows that still hold the claim's token (a stale
-- completion changes nothing), after insert_attempts. The values row is repeated to
-- take many outcomes at once; bound values, not a JSON document: json_extract on
-- every value cost 2 us more per outcome (measured, 500 at a time).
WITH o(id, token, provider, message_id, processing_ms, at) AS (VALUES (?, ?, ?, ?, ?, ?))
UPDATE notifications AS n
SET status = 'SENT', provider = o.provider, provider_message_id = o.message_id,
    processing_ms = o.processing_ms, sent_at = o.at, updated_at = o.at, last_error = NULL,
    lease_until = NULL, claim_token = NULL
FROM o
WHERE n.id = o.id AND n.claim_token = o.token;

-- name: mark_suppressed
WITH o(id, token, reason, at) AS (VALUES (?, ?, ?, ?))
UPDATE notifications AS n
SET status = 'SUPPRESSED', last_error = o.reason, updated_at = o.at, lease_until = NULL,
    claim_token = NULL
FROM o
WHERE n.id = o.id AND n.claim_token = o.token;

-- name: mark_retry
WITH o(id, token, provider, error, due_at, stage, queue, at) AS (
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
)
UPDATE notifications AS n
SET status = 'RETRYING', provider = o.provider, last_error = o.error, due_at = o.due_at,
    stage = o.stage, queue = o.queue, updated_at = o.at, lease_until = NULL, claim_token = NULL
FROM o
WHERE n.id = o.id AND n.claim_token = o.token;

-- name: mark_dead
WITH o(id, token, provider, error, at) AS (VALUES (?, ?, ?, ?, ?))
UPDATE notifications AS n
SET status = 'FAILED', provider = o.provider, last_error = o.error, queue = 'dlq',
    failed_at = o.at, updated_at = o.at, lease_until = NULL, claim_token = NULL
FROM o
WHERE n.id = o.id AND n.claim_token = o.token;

-- name: defer
WITH o(id, token, due_at, at) AS (VALUES (?, ?, ?, ?))
UPDATE notifications AS n
SET status = 'QUEUED', attempts = n.attempts - 1, due_at = o.due_at, updated_at = o.at,
    lease_until = NULL, claim_token = NULL
FROM o
WHERE n.id = o.id AND n.claim_token = o.token;

-- name: insert_attempts
-- The rows that end attempts, each written only while its notification still holds the
-- claim's token: run before the change that clears it. When the attempt started is
-- the row's (a row claimed before migration 007 has none, and its history holds that
-- claim's entry already). Rows of NULLs pad the statement (jobs.COMPLETE_CHUNK).
WITH a(id, token, status, message, at, metadata) AS (VALUES (?, ?, ?, ?, ?, ?))
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at, attempt)
SELECT n.id, n.tenant_id, a.status, a.message, a.at, a.metadata, n.claimed_at, n.attempts
FROM a JOIN notifications n ON n.id = a.id AND n.claim_token = a.token;

-- name: claim_tokens
SELECT id, claim_token FROM notifications WHERE id IN (SELECT value FROM json_each(?));

-- name: remember_unregistered
INSERT INTO unregistered (channel, recipient, provider, reason, at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (channel, recipient) DO UPDATE
SET provider = excluded.provider, reason = excluded.reason, at = excluded.at;

-- name: release
UPDATE notifications
SET status = 'QUEUED', attempts = attempts - 1, lease_until = NULL, claim_token = NULL,
    updated_at = ?
WHERE id = ? AND claim_token = ?
RETURNING claimed_at;

-- name: expired
SELECT id, tenant_id, attempts, claimed_at, channel FROM notifications
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
       sum(status IN ('SENT', 'DELIVERED', 'BOUNCED', 'UNDELIVERED', 'COMPLAINED', 'SUPPRESSED')),
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

-- name: dlq_matching
-- The one DLQ filter (channel, error substring in any case, failed since / until): a page
-- of the dead letters it matches, by id, each with how many match in all. Latest failure
-- first, or with :oldest_first the oldest first (replay by filter takes those).
SELECT id, count(*) OVER () FROM notifications
WHERE tenant_id = :tenant AND status = 'FAILED' AND queue = 'dlq'
  AND (:channel IS NULL OR channel = :channel)
  AND (:error IS NULL OR instr(lower(coalesce(last_error, '')), lower(:error)) > 0)
  AND (:since IS NULL OR failed_at >= :since)
  AND (:until IS NULL OR failed_at < :until)
ORDER BY CASE WHEN :oldest_first THEN failed_at END, failed_at DESC, id DESC
LIMIT :limit OFFSET :offset;

-- name: by_ids
SELECT * FROM notifications WHERE tenant_id = ? AND id IN (SELECT value FROM json_each(?));

-- name: replay
UPDATE notifications
SET status = 'QUEUED', queue = lower(channel), attempts = 0, stage = 0, due_at = :now,
    failed_at = NULL, updated_at = :now, lease_until = NULL, claim_token = NULL
WHERE tenant_id = :tenant AND id = :id AND status = 'FAILED' AND queue = 'dlq';

-- name: dlq_delete
DELETE FROM notifications
WHERE tenant_id = :tenant AND id = :id AND status = 'FAILED' AND queue = 'dlq';

-- name: old_final
-- Rows created before :bound (ids start with their creation time) whose status is in the
-- JSON list :statuses, oldest first: of tenant :tenant in lane :queue, or of all (NULL).
SELECT id FROM notifications
WHERE id < :bound AND status IN (SELECT value FROM json_each(:statuses))
  AND (:tenant IS NULL OR tenant_id = :tenant) AND (:queue IS NULL OR queue = :queue)
ORDER BY id LIMIT :limit;

-- name: count_old
-- How many rows old_final would pick, without a limit.
SELECT count(*) FROM notifications
WHERE id < :bound AND status IN (SELECT value FROM json_each(:statuses))
  AND (:tenant IS NULL OR tenant_id = :tenant) AND (:queue IS NULL OR queue = :queue);

-- name: ids_starting
-- The tenant's ids from :low up to :high (excluded): those beginning with a prefix.
SELECT id FROM notifications
WHERE id >= :low AND id < :high AND tenant_id = :tenant
ORDER BY id LIMIT :limit;

-- name: beyond_newest
-- Each tenant's rows in :statuses but its :keep newest.
SELECT id FROM (
    SELECT id, row_number() OVER (PARTITION BY tenant_id ORDER BY id DESC) AS newer
    FROM notifications WHERE status IN (SELECT value FROM json_each(:statuses))
) WHERE newer > :keep
LIMIT :limit;

-- name: delete_notification
DELETE FROM notifications WHERE id = ?;

-- name: delete_audit
DELETE FROM audit WHERE notification_id = ?;

-- name: delete_mailbox
DELETE FROM mailbox WHERE notification_id = ?;

-- name: delete_links
DELETE FROM event_notifications WHERE notification_id = ?;

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
INSERT INTO breakers (instance, provider, state, failures, changed_at, process)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (process, provider) DO UPDATE
SET state = excluded.state, failures = excluded.failures, changed_at = excluded.changed_at;

-- name: breakers
SELECT b.instance, b.provider, b.state, b.failures, b.changed_at, b.process
FROM breakers b JOIN heartbeats h ON h.instance = b.process
WHERE h.at >= ?
ORDER BY b.provider, b.instance, b.process;

-- name: process_breakers_delete
DELETE FROM breakers WHERE process = ?;

-- name: process_heartbeat_delete
DELETE FROM heartbeats WHERE instance = ?;

-- name: heartbeats_prune
DELETE FROM heartbeats WHERE at < ?;

-- name: breakers_prune
DELETE FROM breakers WHERE process NOT IN (SELECT instance FROM heartbeats WHERE at >= ?);

-- name: backlog
SELECT count(*) FROM notifications
WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= ?;

-- name: final_delete
DELETE FROM notifications
WHERE tenant_id = :tenant AND id = :id AND status IN ('SENT', 'DELIVERED', 'BOUNCED', 'UNDELIVERED', 'COMPLAINED', 'SUPPRESSED',
                                                  'FAILED', 'CANCELLED');

-- name: heartbeat
INSERT INTO heartbeats (instance, at) VALUES (?, ?)
ON CONFLICT (instance) DO UPDATE SET at = excluded.at;

-- name: gauges
-- Every tenant's rows by status, lane and priority: how many, how many of them are due,
-- and the earliest due time, which is a due row's whenever one is (rows.gauges_from).
-- One pass over the table per scrape, as the tenant's statistics take.
SELECT status, queue, priority, count(*), sum(due_at <= :now), min(due_at)
FROM notifications GROUP BY status, queue, priority;

-- name: workers_alive
SELECT count(*) FROM workers WHERE seen_at >= ?;

-- name: worker_seen
INSERT INTO workers (name, seen_at) VALUES (?, ?)
ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at;

-- name: workers_forget
DELETE FROM workers WHERE seen_at < ?;

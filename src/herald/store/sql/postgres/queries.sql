-- The PostgreSQL store's named queries. Batches travel as arrays (unnest), so a
-- burst of rows is one statement; a statement that changes rows writes their
-- audit entries in the same statement (data-modifying CTEs). A write that makes
-- work due notifies the listeners with the earliest due time (POSIX seconds as
-- text; empty for "now"); it is delivered at COMMIT.

-- name: migrations_lock
SELECT pg_advisory_xact_lock(hashtextextended('herald:migrations', 0));

-- name: migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, applied_at double precision NOT NULL
);

-- name: migrations_done
SELECT version FROM schema_migrations;

-- name: migration_applied
INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2);

-- name: ping
SELECT 1;

-- name: notify
SELECT pg_notify($1, $2);

-- name: create
WITH new AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::int2[], $10::text[], $11::text[], $12::float8[], $13::text[],
        $14::float8[], $15::float8[], $16::text[]
    ) AS t(id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
           queue, due_at, idempotency_key, scheduled_at, created_at, callback_url)
), inserted AS (
    INSERT INTO notifications (
        id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
        queue, due_at, idempotency_key, scheduled_at, created_at, updated_at, callback_url
    )
    SELECT id, tenant_id, channel, recipient, subject, body, html, metadata::jsonb, priority,
           status, queue, due_at, idempotency_key, scheduled_at, created_at, created_at,
           callback_url
    FROM new
    ON CONFLICT DO NOTHING
    RETURNING id, due_at
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at)
    SELECT a.id, a.tenant_id, a.status, a.message, a.at
    FROM unnest($17::text[], $18::text[], $19::text[], $20::text[], $21::float8[])
         WITH ORDINALITY AS a(id, tenant_id, status, message, at, n)
    WHERE a.id IN (SELECT id FROM inserted)
    ORDER BY a.n
)
SELECT coalesce(array_agg(id), '{}') AS inserted,
       pg_notify($22, coalesce(min(due_at)::text, '')) AS woken
FROM inserted;

-- name: create_many
-- create for items without idempotency keys, the rows sent as ONE JSON array of
-- objects (for the client much cheaper to encode than an array per column) and
-- the audit rows made here: $3..$6 list, per first status, its entries in order.
WITH inserted AS (
    INSERT INTO notifications (
        id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
        queue, due_at, scheduled_at, created_at, updated_at, callback_url
    )
    SELECT id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
           queue, due_at, scheduled_at, $2, $2, callback_url
    FROM jsonb_to_recordset($1::text::jsonb) AS t(
        id text, tenant_id text, channel text, recipient text, subject text, body text,
        html text, metadata jsonb, priority int2, status text, queue text, due_at float8,
        scheduled_at float8, callback_url text)
    ON CONFLICT DO NOTHING
    RETURNING id, tenant_id, status, due_at
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at)
    SELECT i.id, i.tenant_id, e.status, e.message, $2
    FROM inserted i
    JOIN unnest($3::text[], $4::text[], $5::text[], $6::int4[]) AS e(first, status, message, n)
      ON e.first = i.status
    ORDER BY i.id, e.n
)
SELECT count(*) AS inserted, pg_notify($7, coalesce(min(due_at)::text, '')) AS woken
FROM inserted;

-- name: by_idempotency_keys
SELECT n.* FROM notifications n
JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, key)
  ON n.tenant_id = k.tenant_id AND n.idempotency_key = k.key;

-- name: insert_audit
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
SELECT a.id, a.tenant_id, a.status, a.message, a.at, a.metadata::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[])
     WITH ORDINALITY AS a(id, tenant_id, status, message, at, metadata, n)
ORDER BY a.n;

-- name: get
SELECT * FROM notifications WHERE tenant_id = $1 AND id = $2;

-- name: audit
SELECT id, notification_id, status, message, at, metadata
FROM audit WHERE notification_id = $1 AND tenant_id = $2 ORDER BY id;

-- name: claim
-- The locked rows are updated by their physical address (ctid, stable while the
-- lock is held): a TID scan, not a second index lookup per row.
WITH picked AS (
    SELECT ctid FROM notifications
    WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
      AND due_at <= $3
      AND priority >= $4
      AND queue NOT IN (SELECT name FROM queue_state WHERE paused)
    ORDER BY priority DESC, due_at
    LIMIT $5
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE notifications n
    SET status = 'PROCESSING', claim_token = $1, lease_until = $2, attempts = n.attempts + 1,
        updated_at = $3
    WHERE n.ctid = ANY (ARRAY (SELECT ctid FROM picked))
    RETURNING n.id, n.tenant_id, n.channel, n.recipient, n.subject, n.body, n.html, n.metadata,
              n.priority, n.attempts, n.callback_url
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT id, tenant_id, 'PROCESSING', $6, $3, jsonb_build_object('attempt', attempts)
    FROM claimed
)
SELECT c.*, EXISTS (
    SELECT 1 FROM unregistered u WHERE u.channel = c.channel AND u.recipient = c.recipient
) AS unregistered
FROM claimed c;

-- name: mark_sent
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                         $6::float8[], $7::text[], $8::text[])
        AS o(id, token, provider, message_id, processing_ms, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'SENT', provider = o.provider, provider_message_id = o.message_id,
        processing_ms = o.processing_ms, sent_at = o.at, updated_at = o.at, last_error = NULL,
        lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = o.id AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT done.id, done.tenant_id, 'SENT', o.message, o.at, o.metadata::jsonb
    FROM done JOIN o ON o.id = done.id
)
SELECT id FROM done;

-- name: mark_retry
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                         $6::int4[], $7::text[], $8::float8[], $9::text[], $10::text[])
        AS o(id, token, provider, error, due_at, stage, queue, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'RETRYING', provider = o.provider, last_error = o.error, due_at = o.due_at,
        stage = o.stage, queue = o.queue, updated_at = o.at, lease_until = NULL,
        claim_token = NULL
    FROM o WHERE n.id = o.id AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT done.id, done.tenant_id, 'RETRYING', o.message, o.at, o.metadata::jsonb
    FROM done JOIN o ON o.id = done.id
)
SELECT id FROM done;

-- name: mark_dead
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                         $6::text[], $7::text[])
        AS o(id, token, provider, error, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'FAILED', provider = o.provider, last_error = o.error, queue = 'dlq',
        failed_at = o.at, updated_at = o.at, lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = o.id AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT done.id, done.tenant_id, 'FAILED', o.message, o.at, o.metadata::jsonb
    FROM done JOIN o ON o.id = done.id
)
SELECT id FROM done;

-- name: defer
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[],
                         $6::text[])
        AS o(id, token, due_at, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'QUEUED', attempts = n.attempts - 1, due_at = o.due_at, updated_at = o.at,
        lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = o.id AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT done.id, done.tenant_id, 'QUEUED', o.message, o.at, o.metadata::jsonb
    FROM done JOIN o ON o.id = done.id
)
SELECT id FROM done;

-- name: remember_unregistered
INSERT INTO unregistered (channel, recipient, provider, reason, at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[])
ON CONFLICT (channel, recipient) DO UPDATE
SET provider = excluded.provider, reason = excluded.reason, at = excluded.at;

-- name: release
WITH released AS (
    UPDATE notifications n
    SET status = 'QUEUED', attempts = n.attempts - 1, lease_until = NULL, claim_token = NULL,
        updated_at = $3
    FROM unnest($1::text[], $2::text[]) AS c(id, token)
    WHERE n.id = c.id AND n.claim_token = c.token
    RETURNING n.id, n.tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at)
    SELECT id, tenant_id, 'QUEUED', $4, $3 FROM released
)
SELECT id FROM released;

-- name: expired
SELECT id, tenant_id, attempts FROM notifications
WHERE status = 'PROCESSING' AND lease_until < $1
ORDER BY lease_until
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: unstall
UPDATE notifications n
SET status = s.status,
    queue = CASE WHEN s.status = 'FAILED' THEN 'dlq' ELSE n.queue END,
    last_error = coalesce(s.error, n.last_error),
    failed_at = CASE WHEN s.status = 'FAILED' THEN $3 ELSE n.failed_at END,
    due_at = CASE WHEN s.status = 'QUEUED' THEN $3 ELSE n.due_at END,
    lease_until = NULL, claim_token = NULL, updated_at = $3
FROM unnest($1::text[], $2::text[], $4::text[]) AS s(id, status, error)
WHERE n.id = s.id;

-- name: count_filtered
SELECT count(*) FROM notifications
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR channel = $3)
  AND ($4::int2 IS NULL OR priority = $4);

-- name: list_filtered
SELECT * FROM notifications
WHERE tenant_id = $1
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR channel = $3)
  AND ($4::int2 IS NULL OR priority = $4)
ORDER BY id DESC
LIMIT $5 OFFSET $6;

-- name: breakdown
SELECT status, channel, priority, count(*), sum(processing_ms), count(processing_ms)
FROM notifications WHERE tenant_id = $1 GROUP BY status, channel, priority;

-- name: queue_counts
SELECT queue,
       count(*) FILTER (WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= $2),
       count(*) FILTER (WHERE status = 'PROCESSING'),
       count(*) FILTER (WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at > $2),
       count(*) FILTER (WHERE status = 'SENT'),
       count(*) FILTER (WHERE status = 'FAILED')
FROM notifications WHERE tenant_id = $1 GROUP BY queue;

-- name: paused
SELECT name FROM queue_state WHERE paused;

-- name: set_paused
WITH saved AS (
    INSERT INTO queue_state (name, paused, updated_at) VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_at = excluded.updated_at
)
SELECT pg_notify($4, '');

-- name: capture
INSERT INTO mailbox (id, notification_id, tenant_id, channel, recipient, subject, body, html, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: mailbox
SELECT id, notification_id, tenant_id, channel, recipient, subject, body, html, at
FROM mailbox
WHERE tenant_id = $1 AND ($2::text IS NULL OR channel = $2)
ORDER BY at DESC LIMIT $3;

-- name: cancel
WITH done AS (
    UPDATE notifications
    SET status = 'CANCELLED', updated_at = $3, lease_until = NULL, claim_token = NULL
    WHERE tenant_id = $1 AND id = $2 AND status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
    RETURNING id, tenant_id
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at)
    SELECT id, tenant_id, 'CANCELLED', $4, $3 FROM done
)
SELECT id FROM done;

-- name: dlq_filtered
SELECT * FROM notifications
WHERE tenant_id = $1 AND status = 'FAILED' AND queue = 'dlq'
  AND ($2::text IS NULL OR channel = $2)
  AND ($3::text IS NULL OR strpos(lower(coalesce(last_error, '')), lower($3)) > 0)
  AND ($4::float8 IS NULL OR failed_at >= $4)
  AND ($5::float8 IS NULL OR failed_at < $5)
ORDER BY failed_at DESC, id DESC
LIMIT $6 OFFSET $7;

-- name: dlq_count
SELECT count(*) FROM notifications
WHERE tenant_id = $1 AND status = 'FAILED' AND queue = 'dlq'
  AND ($2::text IS NULL OR channel = $2)
  AND ($3::text IS NULL OR strpos(lower(coalesce(last_error, '')), lower($3)) > 0)
  AND ($4::float8 IS NULL OR failed_at >= $4)
  AND ($5::float8 IS NULL OR failed_at < $5);

-- name: dlq_ids
SELECT id FROM notifications
WHERE tenant_id = $1 AND status = 'FAILED' AND queue = 'dlq'
  AND ($2::text IS NULL OR channel = $2)
  AND ($3::text IS NULL OR strpos(lower(coalesce(last_error, '')), lower($3)) > 0)
  AND ($4::float8 IS NULL OR failed_at >= $4)
  AND ($5::float8 IS NULL OR failed_at < $5)
ORDER BY failed_at
LIMIT $6;

-- name: replay
WITH chosen AS (
    SELECT id, ord FROM unnest($2::text[]) WITH ORDINALITY AS c(id, ord)
), done AS (
    UPDATE notifications n
    SET status = 'QUEUED', queue = lower(n.channel), attempts = 0, stage = 0, due_at = $3,
        failed_at = NULL, updated_at = $3, lease_until = NULL, claim_token = NULL
    FROM chosen
    WHERE n.tenant_id = $1 AND n.id = chosen.id AND n.status = 'FAILED' AND n.queue = 'dlq'
    RETURNING n.id, chosen.ord
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata)
    SELECT id, $1, 'QUEUED', $4, $3, $5::jsonb FROM done ORDER BY ord
)
SELECT id, pg_notify($6, '') FROM done ORDER BY ord;

-- name: rows_delete
-- A notification with its history, if its status is one of $3 (and, unless $4 is
-- NULL, it sits in the queue $4): a dead letter, or any final row.
WITH gone AS (
    DELETE FROM notifications
    WHERE tenant_id = $1 AND id = $2 AND status = ANY($3::text[])
      AND ($4::text IS NULL OR queue = $4)
    RETURNING id
), history AS (
    DELETE FROM audit WHERE notification_id IN (SELECT id FROM gone)
), kept AS (
    DELETE FROM mailbox WHERE notification_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: clean
WITH old AS (
    SELECT id FROM notifications WHERE id < $1 AND status = 'SENT'
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), history AS (
    DELETE FROM audit WHERE notification_id IN (SELECT id FROM old)
), kept AS (
    DELETE FROM mailbox WHERE notification_id IN (SELECT id FROM old)
), gone AS (
    DELETE FROM notifications WHERE id IN (SELECT id FROM old) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: idempotency_claim
INSERT INTO idempotency (tenant_id, key, request_hash, status_code, response, created_at)
VALUES ($1, $2, $3, NULL, NULL, $4)
ON CONFLICT (tenant_id, key) DO NOTHING
RETURNING 1;

-- name: idempotency_locked
SELECT request_hash, status_code, response, created_at FROM idempotency
WHERE tenant_id = $1 AND key = $2
FOR UPDATE;

-- name: idempotency_reclaim
UPDATE idempotency SET request_hash = $3, status_code = NULL, response = NULL, created_at = $4
WHERE tenant_id = $1 AND key = $2;

-- name: idempotency_finish
UPDATE idempotency SET status_code = $1, response = $2
WHERE tenant_id = $3 AND key = $4 AND status_code IS NULL;

-- name: idempotency_abandon
DELETE FROM idempotency WHERE tenant_id = $1 AND key = $2 AND status_code IS NULL;

-- name: idempotency_expire
DELETE FROM idempotency WHERE created_at < $1;

-- name: bucket_ensure
INSERT INTO rate_buckets (provider, tokens, updated_at, paused_until) VALUES ($1, $2, $3, 0)
ON CONFLICT (provider) DO NOTHING;

-- name: bucket_locked
SELECT tokens, updated_at, paused_until FROM rate_buckets WHERE provider = $1 FOR UPDATE;

-- name: bucket_save
UPDATE rate_buckets SET tokens = $2, updated_at = $3 WHERE provider = $1;

-- name: bucket_pause
INSERT INTO rate_buckets (provider, tokens, updated_at, paused_until) VALUES ($1, 0, $2, $3)
ON CONFLICT (provider) DO UPDATE
SET paused_until = greatest(rate_buckets.paused_until, excluded.paused_until);

-- name: breaker_save
INSERT INTO provider_state (instance, provider, state, failures, changed_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (instance, provider) DO UPDATE
SET state = excluded.state, failures = excluded.failures, changed_at = excluded.changed_at;

-- name: breakers
SELECT instance, provider, state, failures, changed_at FROM provider_state
ORDER BY provider, instance;

-- name: template_lock
SELECT pg_advisory_xact_lock(hashtextextended($1 || E'\n' || $2 || E'\n' || $3 || E'\n' || $4, 0));

-- name: template_last_version
SELECT max(version) FROM templates
WHERE tenant_id = $1 AND name = $2 AND channel = $3 AND locale = $4;

-- name: template_insert
INSERT INTO templates (tenant_id, name, channel, locale, version, subject, body, html, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: templates_latest
SELECT DISTINCT ON (name, channel, locale)
       name, channel, locale, version, body, subject, html, created_at
FROM templates
WHERE tenant_id = $1 AND ($2::text IS NULL OR name = $2)
ORDER BY name, channel, locale, version DESC;

-- name: templates_at_version
SELECT name, channel, locale, version, body, subject, html, created_at FROM templates
WHERE tenant_id = $1 AND name = $2 AND version = $3
ORDER BY channel, locale;

-- name: templates_delete
DELETE FROM templates
WHERE tenant_id = $1 AND name = $2
  AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR locale = $4);

-- name: event_types_stored
SELECT definition FROM event_types WHERE tenant_id = $1 ORDER BY name;

-- name: event_type_insert
INSERT INTO event_types (tenant_id, name, definition, created_at, updated_at)
VALUES ($1, $2, $3::jsonb, $4, $4)
ON CONFLICT (tenant_id, name) DO NOTHING
RETURNING 1;

-- name: event_type_upsert
INSERT INTO event_types (tenant_id, name, definition, created_at, updated_at)
VALUES ($1, $2, $3::jsonb, $4, $4)
ON CONFLICT (tenant_id, name) DO UPDATE
SET definition = excluded.definition, updated_at = excluded.updated_at;

-- name: event_type_delete
DELETE FROM event_types WHERE tenant_id = $1 AND name = $2;

-- name: event_insert
WITH event AS (
    INSERT INTO events (id, tenant_id, type, recipient, data, hashed, verify_hash, created_at)
    VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)
)
INSERT INTO event_notifications (event_id, position, notification_id)
SELECT $1, n - 1, id FROM unnest($9::text[]) WITH ORDINALITY AS l(id, n);

-- name: event_get
SELECT id, tenant_id, type, recipient, data, verify_hash IS NOT NULL, verified_at, created_at
FROM events WHERE tenant_id = $1 AND id = $2;

-- name: event_links
SELECT event_id, notification_id FROM event_notifications
WHERE event_id = ANY($1::text[])
ORDER BY event_id, position;

-- name: events_filtered
SELECT id, tenant_id, type, recipient, data, verify_hash IS NOT NULL, verified_at, created_at
FROM events e
WHERE tenant_id = $1
  AND ($2::text IS NULL OR type = $2)
  AND ($3::text IS NULL OR data ->> 'userId' = $3)
  AND ($4::text IS NULL OR EXISTS (
    SELECT 1 FROM event_notifications l JOIN notifications n ON n.id = l.notification_id
    WHERE l.event_id = e.id AND l.position = 0 AND n.status = $4
  ))
ORDER BY id DESC
LIMIT $5 OFFSET $6;

-- name: events_count
SELECT count(*) FROM events e
WHERE tenant_id = $1
  AND ($2::text IS NULL OR type = $2)
  AND ($3::text IS NULL OR data ->> 'userId' = $3)
  AND ($4::text IS NULL OR EXISTS (
    SELECT 1 FROM event_notifications l JOIN notifications n ON n.id = l.notification_id
    WHERE l.event_id = e.id AND l.position = 0 AND n.status = $4
  ));

-- name: events_notifications
SELECT l.event_id AS event_id, n.* FROM event_notifications l
JOIN notifications n ON n.id = l.notification_id
WHERE l.event_id = ANY($2::text[]) AND n.tenant_id = $1
ORDER BY l.event_id, l.position;

-- name: event_counts
SELECT count(*), count(verified_at), count(*) FILTER (WHERE created_at >= $3)
FROM events WHERE tenant_id = $1 AND type = $2;

-- name: event_primary_statuses
SELECT n.status, count(*) FROM events e
JOIN event_notifications l ON l.event_id = e.id AND l.position = 0
JOIN notifications n ON n.id = l.notification_id
WHERE e.tenant_id = $1 AND e.type = $2
GROUP BY n.status;

-- name: event_by_verify_hash
SELECT id, verified_at, created_at FROM events WHERE tenant_id = $1 AND verify_hash = $2
FOR UPDATE;

-- name: event_verified
UPDATE events SET verified_at = $1 WHERE id = $2 AND verified_at IS NULL;

-- name: notifications_sensitive
SELECT id FROM notifications
WHERE tenant_id = $1 AND id = ANY($2::text[])
  AND metadata -> 'sensitive' IN ('true'::jsonb, '1'::jsonb);

-- name: backlog
SELECT count(*) FROM notifications
WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= $1;

-- name: heartbeat
INSERT INTO heartbeats (instance, at) VALUES ($1, $2)
ON CONFLICT (instance) DO UPDATE SET at = excluded.at;

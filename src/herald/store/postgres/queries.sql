-- The PostgreSQL store's named queries. Batches travel as arrays (unnest), so a
-- burst of rows is one statement; a statement that ends an attempt writes its
-- audit row in the same statement (data-modifying CTEs). What is not written is
-- read back by store/history.py (a new row's creation, a running claim). A write that makes
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
        $14::float8[], $15::float8[], $16::text[], $17::text[], $18::bool[], $19::int4[],
        $20::text[]
    ) AS t(id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
           queue, due_at, idempotency_key, scheduled_at, created_at, callback_url, category,
           ignore_suppression, max_retries, request_id)
), inserted AS (
    INSERT INTO notifications (
        id, tenant_id, channel, recipient, subject, body, html, metadata, priority, status,
        queue, due_at, idempotency_key, scheduled_at, created_at, updated_at, callback_url,
        category, ignore_suppression, max_retries, request_id, creation_derived
    )
    SELECT id, tenant_id, channel, recipient, subject, body, html, metadata::jsonb, priority,
           status, queue, due_at, idempotency_key, scheduled_at, created_at, created_at,
           callback_url, category, ignore_suppression, max_retries, request_id, true
    FROM new
    ON CONFLICT DO NOTHING
    RETURNING id, due_at
)
SELECT coalesce(array_agg(id), '{}') AS inserted,
       pg_notify($21, coalesce(min(due_at)::text, '')) AS woken
FROM inserted;

-- name: by_idempotency_keys
SELECT n.* FROM notifications n
JOIN unnest($1::text[], $2::text[]) AS k(tenant_id, key)
  ON n.tenant_id = k.tenant_id AND n.idempotency_key = k.key;

-- name: insert_audit
-- started_at and attempt: set on a row that ends an attempt, NULL on an operator's.
INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at, attempt)
SELECT a.id, a.tenant_id, a.status, a.message, a.at, a.metadata::jsonb, a.started_at, a.attempt
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[],
            $7::float8[], $8::int4[])
     WITH ORDINALITY AS a(id, tenant_id, status, message, at, metadata, started_at, attempt, n)
ORDER BY a.n;

-- name: get
SELECT * FROM notifications WHERE tenant_id = $1 AND id = $2;

-- name: history
-- The notification's own columns (history.Origin), then each stored row's (history.Kept),
-- in the order they were stored; one row of NULLs for the latter when none is.
SELECT n.status, n.created_at, n.scheduled_at, n.claimed_at, n.attempts, n.creation_derived,
       a.status, a.message, a.at, a.metadata, a.started_at, a.attempt
FROM notifications n LEFT JOIN audit a ON a.notification_id = n.id
WHERE n.tenant_id = $1 AND n.id = $2
ORDER BY a.id;

-- name: claim
-- herald_due (migrations 008 and 011: $6, the lanes served, NULL for all) locks the
-- due rows in priority then due order, skipping locked ones; they are updated by their physical address (ctid, stable while the
-- lock is held): a TID scan, not a second index lookup per row. The claim's start
-- is stamped on the row (claimed_at): its PROCESSING entry, until the attempt ends.
WITH picked AS (
    SELECT herald_due($3, $4, $5, $6::text[]) AS ctid
), claimed AS (
    UPDATE notifications n
    SET status = 'PROCESSING', claim_token = $1, lease_until = $2, attempts = n.attempts + 1,
        claimed_at = $3, updated_at = $3
    WHERE n.ctid = ANY (ARRAY (SELECT ctid FROM picked))
    RETURNING n.id, n.tenant_id, n.channel, n.recipient, n.subject, n.body, n.html, n.metadata,
              n.priority, n.attempts, n.callback_url, n.category, n.ignore_suppression,
              n.max_retries, n.queue
)
SELECT c.*, EXISTS (
    SELECT 1 FROM unregistered u WHERE u.channel = c.channel AND u.recipient = c.recipient
) AS unregistered,
CASE WHEN NOT c.ignore_suppression THEN (
    SELECT s.reason FROM suppressions s
    WHERE s.tenant_id = c.tenant_id AND s.recipient = lower(trim(c.recipient) COLLATE "C")
      AND s.category IN ('', coalesce(c.category, ''))
    ORDER BY s.category LIMIT 1) END AS suppressed,
c.category IS NOT NULL AND EXISTS (
    SELECT 1 FROM categories k
    WHERE k.tenant_id = c.tenant_id AND k.name = c.category AND k.unsubscribable
) AS unsubscribable
FROM claimed c;

-- name: mark_sent
-- In each completion ``n.id = ANY (...)`` makes a primary key lookup per outcome
-- whatever the statistics say (without them the planner hashed a scan of the whole
-- table: 22 ms of 29 for 500 outcomes among 100,000 rows, EXPLAIN ANALYZE).
-- The outcomes travel as one JSON document of arrays (id, token, provider,
-- message_id, processing_ms, at, message, metadata), like create_many's rows: as
-- eight arrays asyncpg checked every element against the collection ABCs.
WITH o AS (
    SELECT e ->> 0 AS id, e ->> 1 AS token, e ->> 2 AS provider, e ->> 3 AS message_id,
           (e ->> 4)::float8 AS processing_ms, (e ->> 5)::float8 AS at, e ->> 6 AS message,
           e -> 7 AS metadata
    FROM jsonb_array_elements($1::text::jsonb) AS e
), done AS (
    UPDATE notifications n
    SET status = 'SENT', provider = o.provider, provider_message_id = o.message_id,
        processing_ms = o.processing_ms, sent_at = o.at, updated_at = o.at, last_error = NULL,
        lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = ANY (ARRAY (SELECT id FROM o)) AND n.id = o.id
      AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts, o.token
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at,
                       attempt)
    SELECT done.id, done.tenant_id, 'SENT', o.message, o.at, o.metadata,
           done.claimed_at, done.attempts
    FROM done JOIN o ON o.id = done.id AND o.token = done.token
)
SELECT id, token FROM done;

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
    FROM o WHERE n.id = ANY (ARRAY (SELECT id FROM o)) AND n.id = o.id
      AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts, o.token
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at,
                       attempt)
    SELECT done.id, done.tenant_id, 'RETRYING', o.message, o.at, o.metadata::jsonb,
           done.claimed_at, done.attempts
    FROM done JOIN o ON o.id = done.id AND o.token = done.token
)
SELECT id, token FROM done;

-- name: mark_dead
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[],
                         $6::text[], $7::text[])
        AS o(id, token, provider, error, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'FAILED', provider = o.provider, last_error = o.error, queue = 'dlq',
        failed_at = o.at, updated_at = o.at, lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = ANY (ARRAY (SELECT id FROM o)) AND n.id = o.id
      AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts, o.token
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at,
                       attempt)
    SELECT done.id, done.tenant_id, 'FAILED', o.message, o.at, o.metadata::jsonb,
           done.claimed_at, done.attempts
    FROM done JOIN o ON o.id = done.id AND o.token = done.token
)
SELECT id, token FROM done;

-- name: mark_suppressed
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[],
                         $6::text[])
        AS o(id, token, reason, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'SUPPRESSED', last_error = o.reason, updated_at = o.at, lease_until = NULL,
        claim_token = NULL
    FROM o WHERE n.id = ANY (ARRAY (SELECT id FROM o)) AND n.id = o.id
      AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts, o.token
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at,
                       attempt)
    SELECT done.id, done.tenant_id, 'SUPPRESSED', o.message, o.at, o.metadata::jsonb,
           done.claimed_at, done.attempts
    FROM done JOIN o ON o.id = done.id AND o.token = done.token
)
SELECT id, token FROM done;

-- name: defer
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::text[],
                         $6::text[])
        AS o(id, token, due_at, at, message, metadata)
), done AS (
    UPDATE notifications n
    SET status = 'QUEUED', attempts = n.attempts - 1, due_at = o.due_at, updated_at = o.at,
        lease_until = NULL, claim_token = NULL
    FROM o WHERE n.id = ANY (ARRAY (SELECT id FROM o)) AND n.id = o.id
      AND n.claim_token = o.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts + 1 AS attempt,  -- the one unspent
              o.token
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, metadata, started_at,
                       attempt)
    SELECT done.id, done.tenant_id, 'QUEUED', o.message, o.at, o.metadata::jsonb,
           done.claimed_at, done.attempt
    FROM done JOIN o ON o.id = done.id AND o.token = done.token
)
SELECT id, token FROM done;

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
    WHERE n.id = ANY ($1::text[]) AND n.id = c.id AND n.claim_token = c.token
    RETURNING n.id, n.tenant_id, n.claimed_at, n.attempts + 1 AS attempt  -- the one unspent
), logged AS (
    INSERT INTO audit (notification_id, tenant_id, status, message, at, started_at, attempt)
    SELECT id, tenant_id, 'QUEUED', $4, $3, claimed_at, attempt FROM released
)
SELECT id FROM released;

-- name: expired
SELECT id, tenant_id, attempts, claimed_at, channel FROM notifications
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
       count(*) FILTER (WHERE status IN ('SENT', 'DELIVERED', 'BOUNCED', 'UNDELIVERED', 'COMPLAINED', 'SUPPRESSED')),
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

-- name: dlq_matching
-- The one DLQ filter (channel, error substring in any case, failed since / until): a page
-- of the dead letters it matches, by id, each with how many match in all. Latest failure
-- first, or with $6 the oldest first (replay by filter takes those).
SELECT id, count(*) OVER () FROM notifications
WHERE tenant_id = $1 AND status = 'FAILED' AND queue = 'dlq'
  AND ($2::text IS NULL OR channel = $2)
  AND ($3::text IS NULL OR strpos(lower(coalesce(last_error, '')), lower($3)) > 0)
  AND ($4::float8 IS NULL OR failed_at >= $4)
  AND ($5::float8 IS NULL OR failed_at < $5)
ORDER BY CASE WHEN $6::boolean THEN failed_at END, failed_at DESC, id DESC
LIMIT $7 OFFSET $8;

-- name: by_ids
SELECT * FROM notifications WHERE tenant_id = $1 AND id = ANY($2::text[]);

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
), links AS (
    DELETE FROM event_notifications WHERE notification_id IN (SELECT id FROM gone)
)
SELECT count(*) FROM gone;

-- name: clean
-- Up to $5 rows created before $1 (ids start with their creation time) whose status is
-- one of $2, oldest first, with their history: of tenant $3 in lane $4, or of all (NULL).
WITH old AS (
    SELECT id FROM notifications
    WHERE id < $1 AND status = ANY($2::text[])
      AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR queue = $4)
    ORDER BY id LIMIT $5
    FOR UPDATE SKIP LOCKED
), history AS (
    DELETE FROM audit WHERE notification_id IN (SELECT id FROM old)
), kept AS (
    DELETE FROM mailbox WHERE notification_id IN (SELECT id FROM old)
), links AS (
    DELETE FROM event_notifications WHERE notification_id IN (SELECT id FROM old)
), gone AS (
    DELETE FROM notifications WHERE id IN (SELECT id FROM old) RETURNING 1
)
SELECT count(*) FROM gone;

-- name: count_old
-- How many rows clean would delete, without a limit.
SELECT count(*) FROM notifications
WHERE id < $1 AND status = ANY($2::text[])
  AND ($3::text IS NULL OR tenant_id = $3) AND ($4::text IS NULL OR queue = $4);

-- name: ids_starting
-- Tenant $1's ids from $2 up to $3 (excluded): those beginning with a prefix.
SELECT id FROM notifications WHERE id >= $2 AND id < $3 AND tenant_id = $1 ORDER BY id LIMIT $4;

-- name: trim_sent
-- Up to $3 rows, with their history, of each tenant's rows in $2 but its $1 newest.
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY tenant_id ORDER BY id DESC) AS newer
    FROM notifications WHERE status = ANY($2::text[])
), old AS (
    SELECT id FROM notifications
    WHERE id IN (SELECT id FROM ranked WHERE newer > $1 LIMIT $3)
    FOR UPDATE SKIP LOCKED
), history AS (
    DELETE FROM audit WHERE notification_id IN (SELECT id FROM old)
), kept AS (
    DELETE FROM mailbox WHERE notification_id IN (SELECT id FROM old)
), links AS (
    DELETE FROM event_notifications WHERE notification_id IN (SELECT id FROM old)
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
INSERT INTO breakers (instance, provider, state, failures, changed_at, process)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (process, provider) DO UPDATE
SET state = excluded.state, failures = excluded.failures, changed_at = excluded.changed_at;

-- name: breakers
SELECT b.instance, b.provider, b.state, b.failures, b.changed_at, b.process
FROM breakers b JOIN heartbeats h ON h.instance = b.process
WHERE h.at >= $1
ORDER BY b.provider, b.instance, b.process;

-- name: process_end
WITH beat AS (DELETE FROM heartbeats WHERE instance = $1)
DELETE FROM breakers WHERE process = $1;

-- name: processes_prune
-- One snapshot: the outer DELETE still sees the heartbeats the inner one removes.
WITH stale AS (DELETE FROM heartbeats WHERE at < $1)
DELETE FROM breakers b
WHERE NOT EXISTS (SELECT 1 FROM heartbeats h WHERE h.instance = b.process AND h.at >= $1);

-- name: backlog
SELECT count(*) FROM notifications
WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING') AND due_at <= $1;

-- name: heartbeat
INSERT INTO heartbeats (instance, at) VALUES ($1, $2)
ON CONFLICT (instance) DO UPDATE SET at = excluded.at;

-- name: gauges
-- Every tenant's rows by status, lane and priority: how many, how many of them are due,
-- and the earliest due time, which is a due row's whenever one is (rows.gauges_from).
-- One pass over the table per scrape, as the tenant's statistics take.
SELECT status, queue, priority, count(*), count(*) FILTER (WHERE due_at <= $1), min(due_at)
FROM notifications GROUP BY status, queue, priority;

-- name: workers_alive
SELECT count(*) FROM workers WHERE seen_at >= $1;

-- name: worker_seen
WITH forgotten AS (DELETE FROM workers WHERE seen_at < $3 AND name <> $1)
INSERT INTO workers (name, seen_at) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET seen_at = excluded.seen_at;

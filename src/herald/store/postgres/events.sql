-- Templates, event types and events (migration 002): the statements the shared
-- rules of catalog.py and eventlog.py run, under the same names and parameters
-- as SQLite's events.sql. Lists arrive as arrays, JSON values as jsonb.

-- name: template_lock
-- Concurrent saves of one variant (from any process) take turns until COMMIT.
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
INSERT INTO events (id, tenant_id, type, recipient, data, hashed, verify_hash, created_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8);

-- name: event_links_insert
INSERT INTO event_notifications (event_id, position, notification_id)
SELECT $1, n - 1, id FROM unnest($2::text[]) WITH ORDINALITY AS l(id, n);

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
-- The row stays locked until COMMIT: a second spend of the token waits, then sees it used.
SELECT id, verified_at, created_at FROM events WHERE tenant_id = $1 AND verify_hash = $2
FOR UPDATE;

-- name: event_tenant_by_verify_hash
-- A token's hash is unique across tenants (index events_verify): the link names its tenant.
SELECT tenant_id FROM events WHERE verify_hash = $1;

-- name: event_verified
UPDATE events SET verified_at = $1 WHERE id = $2 AND verified_at IS NULL;

-- name: notifications_sensitive
SELECT id FROM notifications
WHERE tenant_id = $1 AND id = ANY($2::text[])
  AND metadata -> 'sensitive' IN ('true'::jsonb, '1'::jsonb);

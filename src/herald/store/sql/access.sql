-- Access: API keys, dashboard users, sessions, login lockouts, server secrets.
-- Portable SQL run by both stores: PostgreSQL reads $1 as is, and the SQLite
-- store rewrites it to ?1 (SQLite's numbered parameter), so every query here
-- is written once.

-- name: key_insert
INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, scopes, rate_limit, created_at,
                      expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9);

-- name: key_by_hash
SELECT id, tenant_id, name, prefix, scopes, rate_limit, created_at, expires_at, last_used_at,
       revoked_at
FROM api_keys WHERE key_hash = $1;

-- name: keys
SELECT id, tenant_id, name, prefix, scopes, rate_limit, created_at, expires_at, last_used_at,
       revoked_at
FROM api_keys
WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2 OR revoked_at IS NULL)
ORDER BY created_at, id;

-- name: key_revoke
UPDATE api_keys SET revoked_at = $3
WHERE (id = $1 OR prefix = $1) AND revoked_at IS NULL AND ($2::text IS NULL OR tenant_id = $2)
RETURNING id;

-- name: key_touch
UPDATE api_keys SET last_used_at = $2 WHERE id = $1;

-- name: keys_usable
SELECT count(*) FROM api_keys WHERE revoked_at IS NULL;

-- name: user_insert
INSERT INTO users (id, tenant_id, email, role, password_hash, disabled, created_at)
VALUES ($1, $2, $3, $4, $5, false, $6);

-- name: user_by_email
SELECT id, tenant_id, email, role, password_hash, disabled, created_at, last_login_at
FROM users WHERE email = $1;

-- name: users
SELECT id, tenant_id, email, role, password_hash, disabled, created_at, last_login_at
FROM users WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY email;

-- name: user_disable
UPDATE users SET disabled = $2 WHERE email = $1 RETURNING id;

-- name: user_password
UPDATE users SET password_hash = $2 WHERE email = $1 RETURNING id;

-- name: user_logged_in
UPDATE users SET last_login_at = $2 WHERE id = $1;

-- name: session_insert
INSERT INTO sessions (token_hash, user_id, csrf, created_at, seen_at) VALUES ($1, $2, $3, $4, $4);

-- name: session_get
SELECT s.csrf, s.created_at, s.seen_at,
       u.id, u.tenant_id, u.email, u.role, u.password_hash, u.disabled, u.created_at,
       u.last_login_at
FROM sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1;

-- name: session_seen
UPDATE sessions SET seen_at = $2 WHERE token_hash = $1;

-- name: session_delete
DELETE FROM sessions WHERE token_hash = $1;

-- name: sessions_of_user_delete
DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = $1);

-- name: sessions_expire
DELETE FROM sessions WHERE created_at < $1 OR seen_at < $2;

-- name: failure_record
INSERT INTO login_failures (subject, failures, first_at, locked_until) VALUES ($1, 1, $2, 0)
ON CONFLICT (subject) DO UPDATE SET
    failures = CASE WHEN login_failures.first_at < $3 THEN 1
                    ELSE login_failures.failures + 1 END,
    first_at = CASE WHEN login_failures.first_at < $3 THEN excluded.first_at
                    ELSE login_failures.first_at END
RETURNING failures;

-- name: failure_forgive
UPDATE login_failures SET failures = failures - 1 WHERE subject = $1 AND failures > 0;

-- name: failure_lock
UPDATE login_failures SET locked_until = $2, failures = 0 WHERE subject = $1;

-- name: failure_forgive
UPDATE login_failures SET failures = failures - 1 WHERE subject = $1 AND failures > 0;

-- name: failure_locked_until
SELECT locked_until FROM login_failures WHERE subject = $1;

-- name: failure_clear
DELETE FROM login_failures WHERE subject = $1;

-- name: failures_expire
DELETE FROM login_failures WHERE first_at < $1 AND locked_until < $2;

-- name: budgets_expire
-- Request budgets are buckets named 'who@window' (api/credentials.py); past
-- windows are never read again. Provider buckets have no '@' in their names.
DELETE FROM rate_buckets WHERE provider LIKE '%@%' AND updated_at < $1;

-- name: secret_offer
INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING;

-- name: secret_get
SELECT value FROM server_secrets WHERE name = $1;

-- Who may call Herald: API keys (stored only as a SHA-256 of the secret),
-- dashboard users (scrypt hashes), their sessions, login lockouts, and the
-- server secrets every process shares (the session-cookie signing key).
CREATE TABLE api_keys (
    id           text PRIMARY KEY,
    tenant_id    text NOT NULL,
    name         text NOT NULL,
    prefix       text NOT NULL,
    key_hash     text NOT NULL UNIQUE,
    scopes       text NOT NULL,
    rate_limit   text,
    created_at   double precision NOT NULL,
    expires_at   double precision,
    last_used_at double precision,
    revoked_at   double precision
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
CREATE INDEX api_keys_prefix ON api_keys (prefix);

CREATE TABLE users (
    id            text PRIMARY KEY,
    tenant_id     text NOT NULL,
    email         text NOT NULL UNIQUE,
    role          text NOT NULL,
    password_hash text NOT NULL,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    double precision NOT NULL,
    last_login_at double precision
);

CREATE TABLE sessions (
    token_hash text PRIMARY KEY,
    user_id    text NOT NULL,
    csrf       text NOT NULL,
    created_at double precision NOT NULL,
    seen_at    double precision NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE login_failures (
    subject      text PRIMARY KEY,
    failures     integer NOT NULL,
    first_at     double precision NOT NULL,
    locked_until double precision NOT NULL DEFAULT 0
);

CREATE TABLE server_secrets (
    name  text PRIMARY KEY,
    value text NOT NULL
);

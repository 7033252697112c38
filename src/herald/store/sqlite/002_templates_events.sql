-- Templates: every save of a (name, channel, locale) variant is a new version.
CREATE TABLE templates (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    locale     TEXT NOT NULL,
    version    INTEGER NOT NULL,
    subject    TEXT,
    body       TEXT NOT NULL,
    html       TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name, channel, locale, version)
);

-- Event types defined through the API; built-in and file ones live in code.
CREATE TABLE event_types (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One row per accepted event. `data` has its secrets redacted; `hashed` holds
-- scrypt hashes of hashed fields; `verify_hash` the SHA-256 of a one-time token.
CREATE TABLE events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    type        TEXT NOT NULL,
    recipient   TEXT,
    data        TEXT NOT NULL DEFAULT '{}',
    hashed      TEXT,
    verify_hash TEXT,
    verified_at REAL,
    created_at  REAL NOT NULL
);
CREATE INDEX events_by_type ON events (tenant_id, type, id);
CREATE UNIQUE INDEX events_verify ON events (verify_hash) WHERE verify_hash IS NOT NULL;

-- The notifications an event produced, in target order (position 0 is the primary one).
CREATE TABLE event_notifications (
    event_id        TEXT NOT NULL,
    position        INTEGER NOT NULL,
    notification_id TEXT NOT NULL,
    PRIMARY KEY (event_id, position)
);

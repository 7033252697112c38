-- Templates: every save of a (name, channel, locale) variant is a new version.
CREATE TABLE templates (
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    channel    text NOT NULL,
    locale     text NOT NULL,
    version    integer NOT NULL,
    subject    text,
    body       text NOT NULL,
    html       text,
    created_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, name, channel, locale, version)
);

-- Event types defined through the API; built-in and file ones live in code.
CREATE TABLE event_types (
    tenant_id  text NOT NULL,
    name       text NOT NULL,
    definition jsonb NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- One row per accepted event. `data` has its secrets redacted; `hashed` holds
-- scrypt hashes of hashed fields; `verify_hash` the SHA-256 of a one-time token.
CREATE TABLE events (
    id          text COLLATE "C" PRIMARY KEY,
    tenant_id   text NOT NULL,
    type        text NOT NULL,
    recipient   text,
    data        jsonb NOT NULL DEFAULT '{}',
    hashed      jsonb,
    verify_hash text,
    verified_at double precision,
    created_at  double precision NOT NULL
);
CREATE INDEX events_by_type ON events (tenant_id, type, id);
CREATE UNIQUE INDEX events_verify ON events (verify_hash) WHERE verify_hash IS NOT NULL;

-- The notifications an event produced, in target order (position 0 is the primary one).
CREATE TABLE event_notifications (
    event_id        text COLLATE "C" NOT NULL,
    position        integer NOT NULL,
    notification_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (event_id, position)
);

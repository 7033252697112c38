-- Circuit breaker state, written by workers when a breaker changes state and
-- read by the API (GET /api/providers, /api/health) in any process.
CREATE TABLE provider_state (
    instance   TEXT NOT NULL,
    provider   TEXT NOT NULL,
    state      TEXT NOT NULL,
    failures   INTEGER NOT NULL,
    changed_at REAL NOT NULL,
    PRIMARY KEY (instance, provider)
);

-- Token buckets shared by every worker process (per-provider rate limits),
-- and the pause a provider's 429 Retry-After asks for.
CREATE TABLE rate_buckets (
    provider     TEXT PRIMARY KEY,
    tokens       REAL NOT NULL,
    updated_at   REAL NOT NULL,
    paused_until REAL NOT NULL DEFAULT 0
);

-- Recipients a provider said are gone (FCM UNREGISTERED, APNs 410, webhook 410):
-- later sends to them are refused without calling the provider.
CREATE TABLE unregistered (
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    provider   TEXT,
    reason     TEXT,
    at         REAL NOT NULL,
    PRIMARY KEY (channel, recipient)
);

-- Per-notification status callback.
ALTER TABLE notifications ADD COLUMN callback_url TEXT;

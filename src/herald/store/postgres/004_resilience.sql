-- Circuit breaker state, written by workers when a breaker changes state and
-- read by the API (GET /api/providers, /api/health) in any process.
CREATE TABLE provider_state (
    instance   text NOT NULL,
    provider   text NOT NULL,
    state      text NOT NULL,
    failures   integer NOT NULL,
    changed_at double precision NOT NULL,
    PRIMARY KEY (instance, provider)
);

-- Token buckets shared by every worker process (per-provider rate limits),
-- and the pause a provider's 429 Retry-After asks for.
CREATE TABLE rate_buckets (
    provider     text PRIMARY KEY,
    tokens       double precision NOT NULL,
    updated_at   double precision NOT NULL,
    paused_until double precision NOT NULL DEFAULT 0
);

-- Recipients a provider said are gone (FCM UNREGISTERED, APNs 410, webhook 410):
-- later sends to them are refused without calling the provider.
CREATE TABLE unregistered (
    channel    text NOT NULL,
    recipient  text NOT NULL,
    provider   text,
    reason     text,
    at         double precision NOT NULL,
    PRIMARY KEY (channel, recipient)
);

-- Per-notification status callback.
ALTER TABLE notifications ADD COLUMN callback_url text;

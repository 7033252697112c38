-- The notification row is the job: status, lane, due time and lease live on it.
-- Times are POSIX seconds (double precision), the same values the domain uses.
-- Ids sort by creation time; "C" collation keeps that order byte-wise and cheap.
CREATE TABLE notifications (
    id                  text COLLATE "C" PRIMARY KEY,
    tenant_id           text NOT NULL,
    channel             text NOT NULL,
    recipient           text NOT NULL,
    subject             text,
    body                text NOT NULL,
    html                text,
    metadata            jsonb NOT NULL DEFAULT '{}',
    priority            smallint NOT NULL,
    status              text NOT NULL,
    queue               text NOT NULL,
    due_at              double precision NOT NULL,
    attempts            integer NOT NULL DEFAULT 0,
    stage               integer NOT NULL DEFAULT 0,
    lease_until         double precision,
    claim_token         text,
    idempotency_key     text,
    provider            text,
    provider_message_id text,
    last_error          text,
    processing_ms       double precision,
    scheduled_at        double precision,
    created_at          double precision NOT NULL,
    updated_at          double precision NOT NULL,
    sent_at             double precision,
    failed_at           double precision
);

-- Claims read this index in priority order, due rows only.
CREATE INDEX notifications_ready ON notifications (priority DESC, due_at)
    WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING');
-- The sweeper finds expired leases here.
CREATE INDEX notifications_leased ON notifications (lease_until)
    WHERE status = 'PROCESSING';
CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- No (tenant_id, status) index, as in the SQLite store: every claim and
-- completion would rewrite it, and the statistics group the whole tenant anyway.

CREATE TABLE audit (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id text COLLATE "C" NOT NULL,
    tenant_id       text NOT NULL,
    status          text NOT NULL,
    message         text NOT NULL,
    at              double precision NOT NULL,
    metadata        jsonb
);
CREATE INDEX audit_notification ON audit (notification_id);

CREATE TABLE queue_state (
    name       text PRIMARY KEY,
    paused     boolean NOT NULL DEFAULT false,
    updated_at double precision NOT NULL
);

CREATE TABLE mailbox (
    id              text COLLATE "C" PRIMARY KEY,
    notification_id text COLLATE "C" NOT NULL,
    tenant_id       text NOT NULL,
    channel         text NOT NULL,
    recipient       text NOT NULL,
    subject         text,
    body            text NOT NULL,
    html            text,
    at              double precision NOT NULL
);
CREATE INDEX mailbox_tenant ON mailbox (tenant_id, at);
-- Retention deletes a notification's captured messages with it.
CREATE INDEX mailbox_notification ON mailbox (notification_id);

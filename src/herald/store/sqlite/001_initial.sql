-- The notification row is the job: status, lane, due time and lease live on it.
CREATE TABLE notifications (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL,
    channel             TEXT NOT NULL,
    recipient           TEXT NOT NULL,
    subject             TEXT,
    body                TEXT NOT NULL,
    html                TEXT,
    metadata            TEXT NOT NULL DEFAULT '{}',
    priority            INTEGER NOT NULL,
    status              TEXT NOT NULL,
    queue               TEXT NOT NULL,
    due_at              REAL NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    stage               INTEGER NOT NULL DEFAULT 0,
    lease_until         REAL,
    claim_token         TEXT,
    idempotency_key     TEXT,
    provider            TEXT,
    provider_message_id TEXT,
    last_error          TEXT,
    processing_ms       REAL,
    scheduled_at        REAL,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL,
    sent_at             REAL,
    failed_at           REAL
);

-- Claims read this index in priority order, due rows only.
CREATE INDEX notifications_ready ON notifications (priority DESC, due_at)
    WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING');
-- The sweeper finds expired leases here.
CREATE INDEX notifications_leased ON notifications (lease_until)
    WHERE status = 'PROCESSING';
CREATE UNIQUE INDEX notifications_idempotency ON notifications (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- No (tenant_id, status) index: every claim and completion would rewrite it
-- (measured: drain 13.2k/s with it, 14.4k/s without), and the statistics
-- group the whole tenant anyway.

CREATE TABLE audit (
    id              INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    status          TEXT NOT NULL,
    message         TEXT NOT NULL,
    at              REAL NOT NULL,
    metadata        TEXT
);
CREATE INDEX audit_notification ON audit (notification_id);

CREATE TABLE queue_state (
    name       TEXT PRIMARY KEY,
    paused     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);

CREATE TABLE mailbox (
    id              TEXT PRIMARY KEY,
    notification_id TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT,
    body            TEXT NOT NULL,
    html            TEXT,
    at              REAL NOT NULL
);
CREATE INDEX mailbox_tenant ON mailbox (tenant_id, at);

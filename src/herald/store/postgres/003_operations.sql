-- Idempotency keys: the first request's answer, replayed to its repeats.
-- status_code NULL means the first request is still being answered.
CREATE TABLE idempotency (
    tenant_id    text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,
    response     bytea,
    created_at   double precision NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX idempotency_created ON idempotency (created_at);

-- The DLQ view. (Retention needs no index: ids start with their creation
-- time, so "created before" is a range of the primary key.)
CREATE INDEX notifications_dlq ON notifications (tenant_id, failed_at) WHERE queue = 'dlq';

-- The HTTP request that created a notification (X-Request-Id), to find it in the logs;
-- NULL for those made otherwise (the CLI, a status callback) or before this column.
ALTER TABLE notifications ADD COLUMN request_id text;

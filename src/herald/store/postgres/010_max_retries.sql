-- The retries a notification asked for (maxRetries), fewer than its channel's retry
-- ladder gives; NULL: the ladder's own.
ALTER TABLE notifications ADD COLUMN max_retries integer;

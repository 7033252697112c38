-- herald_due for a worker that serves some lanes (`herald worker --channels sms`):
-- `lanes` NULL reads exactly as migration 008's function does, so a worker of every
-- lane pays nothing for the choice (the branch is taken once per call, not per row).
-- The three-argument function stays for processes of the previous release.
CREATE FUNCTION herald_due(now double precision, min_priority smallint, n integer,
                           lanes text[])
RETURNS SETOF tid
LANGUAGE plpgsql VOLATILE
SET enable_sort = off
SET enable_bitmapscan = off
AS $$
BEGIN
    IF lanes IS NULL THEN
        RETURN QUERY
        SELECT ctid FROM notifications
        WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
          AND due_at <= now
          AND priority >= min_priority
          AND queue NOT IN (SELECT name FROM queue_state WHERE paused)
        ORDER BY priority DESC, due_at
        LIMIT n
        FOR UPDATE SKIP LOCKED;
    ELSE
        RETURN QUERY
        SELECT ctid FROM notifications
        WHERE status IN ('QUEUED', 'SCHEDULED', 'RETRYING')
          AND due_at <= now
          AND priority >= min_priority
          AND queue = ANY (lanes)
          AND queue NOT IN (SELECT name FROM queue_state WHERE paused)
        ORDER BY priority DESC, due_at
        LIMIT n
        FOR UPDATE SKIP LOCKED;
    END IF;
END
$$;

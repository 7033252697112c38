-- History written once per step (DESIGN 5): a new notification writes only its
-- row, a claim only stamps the row, and the end of an attempt writes one audit
-- row that also says when the attempt started; store/history.py reads the
-- rest from these. Rows from before keep the entries they stored.

-- When the latest attempt started (the claim's time).
ALTER TABLE notifications ADD COLUMN claimed_at double precision;
-- true: the creation entries are read from this row; false (every row stored
-- before this migration): they are audit rows.
ALTER TABLE notifications ADD COLUMN creation_derived boolean NOT NULL DEFAULT false;

-- On a row that ends an attempt: when it started and which attempt it was.
ALTER TABLE audit ADD COLUMN started_at double precision, ADD COLUMN attempt integer;

-- Deleting a notification (retention, the DLQ, operators) deletes its event links.
CREATE INDEX event_notifications_notification ON event_notifications (notification_id);

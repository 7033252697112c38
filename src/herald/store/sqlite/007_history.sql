-- History written once per step (DESIGN 5): a new notification writes only its
-- row, a claim only stamps the row, and the end of an attempt writes one audit
-- row that also says when the attempt started; store/history.py reads the
-- rest from these. Rows from before keep the entries they stored.

-- When the latest attempt started (the claim's time).
ALTER TABLE notifications ADD COLUMN claimed_at REAL;
-- 1: the creation entries are read from this row; 0 (every row stored before
-- this migration): they are audit rows.
ALTER TABLE notifications ADD COLUMN creation_derived INTEGER NOT NULL DEFAULT 0;

-- On a row that ends an attempt: when it started and which attempt it was.
ALTER TABLE audit ADD COLUMN started_at REAL;
ALTER TABLE audit ADD COLUMN attempt INTEGER;

-- Deleting a notification (retention, the DLQ, operators) deletes its event links.
CREATE INDEX event_notifications_notification ON event_notifications (notification_id);
-- And its captured messages (PostgreSQL has had this index since 003).
CREATE INDEX mailbox_notification ON mailbox (notification_id);

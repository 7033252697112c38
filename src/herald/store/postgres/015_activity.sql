-- The dashboard's live view reads the history rows stored since a moment, and its
-- charts count them per minute and status for the last hour: this index serves
-- both, the counts from the index alone. (New notifications are found along the
-- primary key, claims along notifications_leased: nothing else is needed.)
CREATE INDEX audit_at ON audit (at, tenant_id, status);

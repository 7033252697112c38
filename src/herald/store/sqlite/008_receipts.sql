-- After SENT (DESIGN 8): provider receipts, the suppression list, categories.

-- What kind of message a notification is (newsletter, security, ...), and
-- whether it goes out even to a suppressed recipient.
ALTER TABLE notifications ADD COLUMN category TEXT;
ALTER TABLE notifications ADD COLUMN ignore_suppression INTEGER NOT NULL DEFAULT 0;
-- Receipts find the notification by the id the provider gave it.
CREATE INDEX notifications_provider_message ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Recipients not to send to, per tenant: recipient is trimmed and lower-cased
-- (ASCII letters only, as every store's lower() does); category '' is every
-- category. reason: bounce, complaint, unsubscribe or manual.
CREATE TABLE suppressions (
    tenant_id       TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    category        TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL,
    detail          TEXT,
    notification_id TEXT,
    created_at      REAL NOT NULL,
    PRIMARY KEY (tenant_id, recipient, category)
) WITHOUT ROWID;

-- A tenant's categories: an unsubscribable one gets List-Unsubscribe headers.
CREATE TABLE categories (
    tenant_id      TEXT NOT NULL,
    name           TEXT NOT NULL,
    unsubscribable INTEGER NOT NULL,
    description    TEXT,
    created_at     REAL NOT NULL,
    updated_at     REAL NOT NULL,
    PRIMARY KEY (tenant_id, name)
) WITHOUT ROWID;

-- Signed receipts already taken, until they are too old to be taken anyway:
-- a replay is refused by every process sharing the store.
CREATE TABLE receipt_seen (
    key   TEXT PRIMARY KEY,
    until REAL NOT NULL
) WITHOUT ROWID;

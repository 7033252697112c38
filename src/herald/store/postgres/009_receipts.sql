-- After SENT (DESIGN 8): provider receipts, the suppression list, categories.

-- What kind of message a notification is (newsletter, security, ...), and
-- whether it goes out even to a suppressed recipient.
ALTER TABLE notifications ADD COLUMN category text;
ALTER TABLE notifications ADD COLUMN ignore_suppression boolean NOT NULL DEFAULT false;
-- Receipts find the notification by the id the provider gave it.
CREATE INDEX notifications_provider_message ON notifications (provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Recipients not to send to, per tenant: recipient is trimmed and lower-cased
-- (ASCII letters only, as every store's lower() does); category '' is every
-- category. reason: bounce, complaint, unsubscribe or manual.
CREATE TABLE suppressions (
    tenant_id       text NOT NULL,
    recipient       text COLLATE "C" NOT NULL,
    category        text NOT NULL DEFAULT '',
    reason          text NOT NULL,
    detail          text,
    notification_id text,
    created_at      double precision NOT NULL,
    PRIMARY KEY (tenant_id, recipient, category)
);

-- A tenant's categories: an unsubscribable one gets List-Unsubscribe headers.
CREATE TABLE categories (
    tenant_id      text NOT NULL,
    name           text NOT NULL,
    unsubscribable boolean NOT NULL,
    description    text,
    created_at     double precision NOT NULL,
    updated_at     double precision NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

-- Signed receipts already taken, until they are too old to be taken anyway:
-- a replay is refused by every process sharing the store.
CREATE TABLE receipt_seen (
    key   text PRIMARY KEY,
    until double precision NOT NULL
);

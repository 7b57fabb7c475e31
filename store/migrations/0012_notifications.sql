-- Notifications (issue #17): the language each person is written to in, and a durable outbox.
-- Rows are made from the audit log (its sequence number is the cursor, so a restart loses and
-- repeats nothing) and from daily checks; `dedup_key` is unique so that two nodes making the
-- same notification make one row. A row is claimed for a while by the node delivering it,
-- retried with backoff, and given up (audited) after the configured number of tries.
ALTER TABLE users ADD COLUMN language TEXT;
CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    dedup_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    language TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    delivered_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX notifications_due ON notifications (delivered_at, failed_at, next_attempt_at);
CREATE TABLE notify_cursor (
    id BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

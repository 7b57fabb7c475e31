-- Files in and out (issue #16).
-- Downloads by permission, per level: allowed (the default: every download is logged with its
-- hash) or not, and a per-file size limit (NULL: none).
ALTER TABLE target_levels ADD COLUMN file_download BIGINT NOT NULL DEFAULT 1;
ALTER TABLE target_levels ADD COLUMN download_max_bytes BIGINT;

-- Every file that crossed (or tried to): also an audit event and a line of the recording's
-- files.jsonl; this table is what the API searches by name.
CREATE TABLE file_transfers (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT,
    sequential BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT,
    quarantine_id TEXT
);
CREATE INDEX file_transfers_session ON file_transfers (session_id);
CREATE INDEX file_transfers_ended ON file_transfers (ended_at);

-- Uploads the scanner blocked, kept on the gateway for IT to inspect or delete.
CREATE TABLE quarantine (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    target_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    vendor_id TEXT,
    node_id TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX quarantine_created ON quarantine (created_at);

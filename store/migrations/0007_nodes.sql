-- Several gateway nodes on one database (issue #15).
-- Each node heartbeats here; a node silent for longer than the configured time is marked
-- down by another node, which ends its open sessions as aborted.
CREATE TABLE nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    stopped_at BIGINT,
    down_at BIGINT
);
-- The group's keys: the fingerprint of the keys every node must hold (tokens, client CA,
-- SSH host key, recording signatures, sealed credentials, the designated client's pin).
CREATE TABLE group_keys (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    claimed_by TEXT NOT NULL
);
-- An approver's terminate, kept with the session: the node carrying the session honours it
-- at its next re-check even when the notification between nodes was missed.
ALTER TABLE sessions ADD COLUMN terminate_requested_at BIGINT;

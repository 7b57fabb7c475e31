-- Sekisho schema. Portable between SQLite and PostgreSQL: ids are UUID text, times are
-- BIGINT microseconds since the Unix epoch (UTC), flags are BIGINT 0/1 (sqlx's Any driver
-- cannot read SQLite booleans), structured values are JSON text.

CREATE TABLE vendors (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    contact     TEXT NOT NULL,
    attestation TEXT,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'offboarded')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    email         TEXT,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'approver', 'auditor', 'vendor')),
    vendor_id     TEXT REFERENCES vendors (id),
    status        TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    expires_at    BIGINT,
    password_hash TEXT,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    -- Vendor engineers belong to a vendor; staff never do.
    CHECK ((role = 'vendor' AND vendor_id IS NOT NULL) OR (role <> 'vendor' AND vendor_id IS NULL))
);

CREATE TABLE ssh_keys (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    public_key  TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE,
    comment     TEXT,
    created_at  BIGINT NOT NULL
);

CREATE TABLE targets (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    host       TEXT NOT NULL,
    port       BIGINT NOT NULL CHECK (port > 0 AND port < 65536),
    host_key   TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What each access level may do on a target, and the credential the gateway injects.
CREATE TABLE target_levels (
    target_id         TEXT NOT NULL REFERENCES targets (id),
    level             TEXT NOT NULL CHECK (level IN ('reference', 'change')),
    account           TEXT NOT NULL,
    credential_kind   TEXT NOT NULL CHECK (credential_kind IN ('password', 'private_key')),
    -- AES-256-GCM under the at-rest key in DATA_DIR/keys; never returned by the API.
    credential_sealed TEXT NOT NULL,
    ssh               BIGINT NOT NULL CHECK (ssh IN (0, 1)),
    allowed_ports     TEXT NOT NULL,
    port_forwarding   BIGINT NOT NULL CHECK (port_forwarding IN (0, 1)),
    file_upload       BIGINT NOT NULL CHECK (file_upload IN (0, 1)),
    PRIMARY KEY (target_id, level)
);

CREATE TABLE work_requests (
    id           TEXT PRIMARY KEY,
    number       BIGINT NOT NULL UNIQUE,
    requester_id TEXT NOT NULL REFERENCES users (id),
    vendor_id    TEXT NOT NULL REFERENCES vendors (id),
    target_id    TEXT NOT NULL REFERENCES targets (id),
    level        TEXT NOT NULL CHECK (level IN ('reference', 'change')),
    window_start BIGINT NOT NULL,
    window_end   BIGINT NOT NULL,
    reason       TEXT NOT NULL,
    plan         TEXT NOT NULL,
    emergency    BIGINT NOT NULL CHECK (emergency IN (0, 1)),
    status       TEXT NOT NULL CHECK (status IN ('submitted', 'approved', 'rejected', 'cancelled',
                                                 'active', 'completed', 'expired', 'revoked')),
    report       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CHECK (window_end > window_start)
);
CREATE INDEX work_requests_requester ON work_requests (requester_id, target_id);
CREATE INDEX work_requests_status ON work_requests (status);

CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES work_requests (id),
    approver_id TEXT NOT NULL REFERENCES users (id),
    verdict     TEXT NOT NULL CHECK (verdict IN ('approve', 'reject')),
    comment     TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX approvals_request ON approvals (request_id);

CREATE TABLE sessions (
    id                TEXT PRIMARY KEY,
    request_id        TEXT NOT NULL REFERENCES work_requests (id),
    user_id           TEXT NOT NULL REFERENCES users (id),
    vendor_id         TEXT NOT NULL REFERENCES vendors (id),
    target_id         TEXT NOT NULL REFERENCES targets (id),
    level             TEXT NOT NULL CHECK (level IN ('reference', 'change')),
    transport         TEXT NOT NULL CHECK (transport IN ('ssh', 'quic')),
    source_addr       TEXT NOT NULL,
    started_at        BIGINT NOT NULL,
    ended_at          BIGINT,
    end_reason        TEXT,
    bytes_to_target   BIGINT NOT NULL DEFAULT 0,
    bytes_from_target BIGINT NOT NULL DEFAULT 0,
    review_status     TEXT NOT NULL DEFAULT 'pending' CHECK (review_status IN ('pending', 'signed_off')),
    reviewed_by       TEXT REFERENCES users (id),
    reviewed_at       BIGINT,
    review_comment    TEXT
);
CREATE INDEX sessions_open ON sessions (ended_at);

CREATE TABLE enrollment_codes (
    code_hash  TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_by TEXT NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);

-- Named counters (request numbers R-1, R-2, ...).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('work_request', 0);

-- The append-only audit log. Each row carries the hash of the row before it and its own
-- hash over prev_hash and its canonical content (sekisho_domain::audit::AuditEntry).
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'failure')),
    actor       TEXT NOT NULL,
    user_id     TEXT,
    vendor_id   TEXT,
    target_id   TEXT,
    request_id  TEXT,
    source_addr TEXT,
    reason      TEXT,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_kind ON audit_events (kind);
CREATE INDEX audit_events_vendor ON audit_events (vendor_id);
CREATE INDEX audit_events_target ON audit_events (target_id);
CREATE INDEX audit_events_request ON audit_events (request_id);
CREATE INDEX audit_events_user ON audit_events (user_id);

-- The chain head: the last sequence number and hash. Appends lock this row, so appends from
-- several gateway nodes on one PostgreSQL database serialise; deleting rows from the end of
-- the log leaves the head pointing past it.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

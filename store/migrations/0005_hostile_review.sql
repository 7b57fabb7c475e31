-- Issue #12 (what a hostile new user found).

-- Tokens can be revoked: one token by its id (logout), every token of an account by bumping
-- its generation (password change, disable).
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);

-- Who issued or reset a vendor engineer's credentials, and when: whoever did may not
-- approve that engineer's requests for [policy] credential_separation_days.
CREATE TABLE credential_events (
    id       TEXT PRIMARY KEY,
    user_id  TEXT NOT NULL REFERENCES users (id),
    actor_id TEXT NOT NULL REFERENCES users (id),
    kind     TEXT NOT NULL CHECK (kind IN ('initial_password', 'password_reset', 'enrollment_code', 'ssh_key')),
    at       BIGINT NOT NULL
);
CREATE INDEX credential_events_user ON credential_events (user_id, at);
INSERT INTO credential_events (id, user_id, actor_id, kind, at)
    SELECT code_hash, user_id, created_by, 'enrollment_code', created_at FROM enrollment_codes;

-- An SSH key a vendor engineer registers for themself waits for IT's approval.
ALTER TABLE ssh_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('pending', 'active'));
ALTER TABLE ssh_keys ADD COLUMN added_by TEXT;
ALTER TABLE ssh_keys ADD COLUMN approved_by TEXT;
ALTER TABLE ssh_keys ADD COLUMN approved_at BIGINT;

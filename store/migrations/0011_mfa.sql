-- A second factor for logins (issue #17): TOTP (RFC 6238) with one-time recovery codes.
-- The secret is sealed with the at-rest key like target credentials; it is pending until the
-- user confirms a first code. The last accepted time step refuses a code used again.
ALTER TABLE users ADD COLUMN mfa_secret_sealed TEXT;
ALTER TABLE users ADD COLUMN mfa_enabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_last_step BIGINT;
CREATE TABLE mfa_recovery_codes (
    user_id TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_sha256)
);

-- Client certificates issued to vendor engineers at enrollment (the designated client).
-- The QUIC listener accepts a certificate only if it is listed here, not revoked, and its
-- user may still connect.
CREATE TABLE client_certs (
    fingerprint TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id),
    serial      TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX client_certs_user ON client_certs (user_id);

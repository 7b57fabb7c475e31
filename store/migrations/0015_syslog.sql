-- The audit log streamed to the SIEM (issue #18): how far it has been sent, and which node is
-- sending it (one at a time, for a lease, so that two nodes never send one row twice).
CREATE TABLE syslog_cursor (
    id BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    holder TEXT,
    lease_until BIGINT NOT NULL
);
INSERT INTO syslog_cursor (id, last_seq, holder, lease_until) VALUES (1, 0, NULL, 0);

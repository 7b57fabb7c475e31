-- The group's at-rest keys (issue #15), named by id (the keys themselves stay in each node's
-- keys directory). One key is `active` (it seals); during a replacement (`sekisho node
-- rotate-at-rest-key`) the new one is first `staged` (handed to the nodes, opening but not
-- sealing), then `active` while the old one is `previous` (still opening), and the old one
-- ends `retired`. `wrapped` is a staged or active key sealed under the key active when it was
-- made, so that nodes holding that key take the new one from here; it is deleted when the
-- rotation ends.
CREATE TABLE at_rest_keys (
    kid TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    wrapped TEXT,
    created_at BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
-- The at-rest keys each node holds, the sealing one first (comma-separated ids), written by
-- the node with its heartbeat.
ALTER TABLE nodes ADD COLUMN at_rest_kids TEXT;
-- The group fingerprint no longer covers the at-rest key (it is replaced while the group
-- serves): it is claimed again, with the new definition, by the first node to start.
DELETE FROM group_keys;

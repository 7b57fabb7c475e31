-- Token keys of a group (issue #15): every node publishes the public half of the key it signs
-- API tokens with; every node accepts tokens signed by any published key that is not retired.
-- Each node names the key it signs with now (`nodes.token_kid`); a key no node names any more
-- (every node that used it rotated) is retired once the tokens it signed have expired.
CREATE TABLE token_keys (
    kid TEXT PRIMARY KEY,
    public_pem TEXT NOT NULL,
    node TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
-- The group fingerprint no longer covers the token key (each node may rotate its own): it is
-- claimed again, with the new definition, by the first node to start.
DELETE FROM group_keys;
ALTER TABLE nodes ADD COLUMN token_kid TEXT;

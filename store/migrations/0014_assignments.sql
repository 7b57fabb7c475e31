-- Who maintains what (issue #18): a vendor is assigned to a target under a maintenance
-- contract. Without a row here a vendor's engineers neither see the target nor file requests
-- for it nor connect to it. One assignment per vendor and target; `ends_at` (microseconds) is
-- the contract's end, NULL for a contract without one.
CREATE TABLE assignments (
    id TEXT PRIMARY KEY,
    vendor_id TEXT NOT NULL REFERENCES vendors (id),
    target_id TEXT NOT NULL REFERENCES targets (id),
    contract TEXT NOT NULL,
    sla TEXT NOT NULL,
    boundary TEXT NOT NULL,
    ends_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (vendor_id, target_id)
);
CREATE INDEX assignments_target ON assignments (target_id);

-- The inventory of external connection lines (issue #18): every line or device through which
-- a vendor reaches the hospital, through Sekisho or as an exception. Times in microseconds.
CREATE TABLE lines (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    route TEXT NOT NULL,
    vendor_id TEXT REFERENCES vendors (id),
    owner TEXT NOT NULL,
    location TEXT NOT NULL,
    device TEXT NOT NULL,
    firmware TEXT NOT NULL,
    firmware_updated_at BIGINT,
    measures TEXT NOT NULL,
    reviewed_at BIGINT,
    status TEXT NOT NULL,
    notes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

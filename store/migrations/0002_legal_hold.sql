-- Sessions under legal hold keep their recordings whatever [recordings] retain_days says.
ALTER TABLE sessions ADD COLUMN legal_hold BIGINT NOT NULL DEFAULT 0 CHECK (legal_hold IN (0, 1));

-- Issue #20: the audit log searched by time. The newest page of a month five years ago was
-- read by walking the whole log backwards from its newest row (the planner cannot know the
-- month's rows are at the far end). For each UTC day this table keeps the lowest and highest
-- `seq` of the rows whose `at` falls on it, updated by every append in its transaction, so a
-- search by time reads only the `seq` interval of its days. Exact whatever the clock did: a
-- row written while the clock was set back lies on the day its `at` names, and widens that
-- day's interval.
CREATE TABLE audit_days (
    day BIGINT PRIMARY KEY,
    min_seq BIGINT NOT NULL,
    max_seq BIGINT NOT NULL
);
INSERT INTO audit_days (day, min_seq, max_seq)
    SELECT at / 86400000000, MIN(seq), MAX(seq) FROM audit_events GROUP BY at / 86400000000;

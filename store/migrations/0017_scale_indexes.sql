-- Issue #20: indexes found by `cargo bench --bench database` (ten years of a large hospital).
-- The audit log is read newest first by one filter at a time: an index on the filter alone
-- made the database sort every matching row to return a page of 100; with seq after it the
-- page is read straight from the index.
DROP INDEX audit_events_kind;
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
DROP INDEX audit_events_vendor;
CREATE INDEX audit_events_vendor ON audit_events (vendor_id, seq);
DROP INDEX audit_events_target;
CREATE INDEX audit_events_target ON audit_events (target_id, seq);
DROP INDEX audit_events_request;
CREATE INDEX audit_events_request ON audit_events (request_id, seq);
DROP INDEX audit_events_user;
CREATE INDEX audit_events_user ON audit_events (user_id, seq);
-- An admission reads only the engineer's requests for the target whose windows have not
-- ended.
DROP INDEX work_requests_requester;
CREATE INDEX work_requests_requester ON work_requests (requester_id, target_id, window_end);
-- Session lists are newest first.
CREATE INDEX sessions_started ON sessions (started_at);

-- The gateway node that carries a session: on restart a node marks only its own open
-- sessions aborted (several nodes may share one PostgreSQL database).
ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_node_open ON sessions (node, ended_at);

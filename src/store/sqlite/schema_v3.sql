-- Schema version 3: the audit trail, personal access token expiry, and the
-- last use of PATs and API tokens (issue "operators can see and govern
-- every token"). Times in milliseconds since the Unix epoch, as in v1.

-- NULL: never expires (every PAT made before v3).
ALTER TABLE login_tokens ADD COLUMN expires_at INTEGER;
-- NULL: never used since v3.
ALTER TABLE login_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;

-- One row per credential event; never a token, password, code or hash.
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at INTEGER NOT NULL,
    -- `at` + AUDIT_RETENTION_DAYS: pruned after.
    expires_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT,
    target TEXT,
    route TEXT,
    address TEXT,
    request_id TEXT,
    outcome TEXT NOT NULL,
    detail TEXT
) STRICT;

-- Paging newest first, pruning by age, and the user and kind filters.
CREATE INDEX audit_events_by_time ON audit_events (at, id);
CREATE INDEX audit_events_by_actor ON audit_events (actor, at);
CREATE INDEX audit_events_by_target ON audit_events (target, at);
CREATE INDEX audit_events_by_kind ON audit_events (kind, at);
CREATE INDEX audit_events_by_expiry ON audit_events (expires_at);

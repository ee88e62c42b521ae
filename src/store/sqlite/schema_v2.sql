-- Schema version 2: failed-login records (Rocket.Chat's server events
-- `failed-login-attempt` and `login`), the shared state of failed-login
-- blocking. An attempt is recorded as `failed` before its password is
-- checked; a success turns it into `login`, which ends the account's count.
-- Rows past `expires_at` count for nothing and are deleted by the next
-- reservation.

CREATE TABLE login_events (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('failed', 'login')),
    user_id TEXT,
    username TEXT,
    ip TEXT,
    ts INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX login_events_by_user_id ON login_events (user_id, kind, ts);
CREATE INDEX login_events_by_username ON login_events (username, kind, ts);
CREATE INDEX login_events_by_ip ON login_events (ip, kind, ts);
CREATE INDEX login_events_by_expiry ON login_events (expires_at);

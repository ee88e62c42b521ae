-- Schema version 1 of the SQLite store. Times are milliseconds since the
-- Unix epoch (UTC), as MongoDB stores dates. Lowercase copies of usernames
-- and email addresses (Rust's `to_lowercase`) carry the unique,
-- case-insensitive indexes, so every lookup by name is an index lookup.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    username TEXT,
    username_lower TEXT UNIQUE,
    name TEXT,
    type TEXT NOT NULL,
    active INTEGER NOT NULL,
    require_password_change INTEGER NOT NULL,
    password_bcrypt TEXT,
    -- JSON arrays of strings.
    roles TEXT NOT NULL,
    permissions TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- `list_users` pages by username, then id.
CREATE INDEX users_by_username ON users (username, id);

CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    address TEXT NOT NULL,
    address_lower TEXT NOT NULL UNIQUE,
    verified INTEGER NOT NULL,
    PRIMARY KEY (user_id, position)
) STRICT;

-- Rocket.Chat login tokens (kind 'resume') and personal access tokens
-- (kind 'personal'); `created_at` is a login token's `when`.
CREATE TABLE login_tokens (
    hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('resume', 'personal')),
    created_at INTEGER NOT NULL,
    name TEXT,
    last_token_part TEXT,
    bypass_two_factor INTEGER,
    CHECK ((kind = 'personal') = (name IS NOT NULL))
) STRICT;

-- A user's tokens, and the oldest login tokens of a user (the cap).
CREATE INDEX login_tokens_by_user ON login_tokens (user_id, kind, created_at);
-- PAT names are unique per user.
CREATE UNIQUE INDEX login_tokens_pat_name ON login_tokens (user_id, name)
    WHERE kind = 'personal';

-- SAYMON API tokens: one per user. Not tied to `users` by a foreign key, as
-- in MongoDB: the core removes them with the user.
CREATE TABLE api_tokens (
    user_id TEXT PRIMARY KEY NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    hint TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    hash TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE roles (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    description TEXT NOT NULL,
    protected INTEGER NOT NULL
) STRICT;

CREATE TABLE permissions (
    id TEXT PRIMARY KEY NOT NULL,
    -- JSON array of role ids.
    roles TEXT NOT NULL
) STRICT;

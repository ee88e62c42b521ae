-- Schema version 4: second factors, the facts Rocket.Chat keeps in
-- `services.totp`, `services.email2fa` and `services.emailCode`.

-- `services.totp`: `secret` once enrolment is validated, `temp_secret` while
-- it is pending (base32).
CREATE TABLE user_totp (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL,
    secret TEXT,
    temp_secret TEXT
) STRICT;

-- `services.totp.hashedBackup`: SHA-256 hex of each unused backup code.
CREATE TABLE user_totp_backup_codes (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash TEXT NOT NULL,
    PRIMARY KEY (user_id, hash)
) STRICT;

-- `services.email2fa.enabled`, and `services.emailCode` {code (bcrypt),
-- expire, attempts} of the last emailed code.
CREATE TABLE user_email_two_factor (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enabled INTEGER NOT NULL DEFAULT 0,
    code_hash TEXT,
    code_expire INTEGER,
    code_attempts INTEGER NOT NULL DEFAULT 0,
    CHECK ((code_hash IS NULL) = (code_expire IS NULL))
) STRICT;

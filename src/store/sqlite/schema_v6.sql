-- v6: Rocket.Chat's `lastLogin`, written at every login (milliseconds since
-- the epoch; NULL: never logged in through tokend or before v6), read by
-- `users.deactivateIdle`.
ALTER TABLE users ADD COLUMN last_login INTEGER;

-- v7: the login-token cap keeps a user's newest tokens by (created_at, hash).
-- With `hash` in the index, finding the oldest token to keep and deleting the
-- older ones read the index alone, in order; the old index is its prefix.
CREATE INDEX login_tokens_by_user_age ON login_tokens (user_id, kind, created_at, hash);
DROP INDEX login_tokens_by_user;

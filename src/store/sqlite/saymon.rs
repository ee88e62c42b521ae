//! SAYMON credentials: `api_tokens` (one per user) and `sessions`.

use super::{ms, time, SqliteStore};
use crate::core::credential::TokenHash;
use crate::core::model::{ApiToken, Session, Timestamp};
use crate::store::{SaymonStore, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, params_from_iter, OptionalExtension, Row};

const API_TOKEN_COLUMNS: &str = "user_id, hash, created_at, hint, last_used_at";
const SESSION_COLUMNS: &str =
    "hash, user_id, created_at, last_seen_at, expires_at, absolute_expires_at";

fn api_token_row(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        user_id: row.get(0)?,
        hashed_token: TokenHash::from_stored(row.get::<_, String>(1)?),
        created_at: time(2, row.get(2)?)?,
        hint: row.get(3)?,
        last_used_at: row
            .get::<_, Option<i64>>(4)?
            .map(|v| time(4, v))
            .transpose()?,
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        hashed_id: TokenHash::from_stored(row.get::<_, String>(0)?),
        user_id: row.get(1)?,
        created_at: time(2, row.get(2)?)?,
        last_seen_at: time(3, row.get(3)?)?,
        expires_at: time(4, row.get(4)?)?,
        absolute_expires_at: time(5, row.get(5)?)?,
    })
}

#[async_trait]
impl SaymonStore for SqliteStore {
    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO api_tokens (user_id, hash, created_at, hint) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_id) DO UPDATE SET \
                 hash = excluded.hash, created_at = excluded.created_at, hint = excluded.hint, \
                 last_used_at = NULL",
            )?
            .execute(params![
                token.user_id,
                token.hashed_token.as_str(),
                ms(token.created_at),
                token.hint
            ])?;
            Ok(())
        })
        .await
    }

    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>> {
        let user_id = user_id.to_string();
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE user_id = ?1"
            ))?;
            Ok(stmt.query_row([user_id], api_token_row).optional()?)
        })
        .await
    }

    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let user_ids = user_ids.to_vec();
        self.read(move |c| {
            let mut out = Vec::with_capacity(user_ids.len());
            // SQLite binds at most 32766 parameters per statement.
            for chunk in user_ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let mut stmt = c.prepare(&format!(
                    "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE user_id IN ({marks})"
                ))?;
                for token in stmt.query_map(params_from_iter(chunk), api_token_row)? {
                    out.push(token?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn find_api_token(&self, hashed_token: &TokenHash) -> StoreResult<Option<ApiToken>> {
        let hash = hashed_token.clone();
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE hash = ?1"
            ))?;
            Ok(stmt.query_row([hash.as_str()], api_token_row).optional()?)
        })
        .await
    }

    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        self.write(move |c| {
            Ok(
                c.prepare_cached("DELETE FROM api_tokens WHERE user_id = ?1")?
                    .execute([&user_id])?
                    > 0,
            )
        })
        .await
    }

    async fn touch_api_token(
        &self,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool> {
        let hash = hashed_token.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE hash = ?1 \
                     AND (last_used_at IS NULL OR last_used_at < ?3)",
                )?
                .execute(params![hash.as_str(), ms(now), ms(stale_before)])?;
            Ok(n > 0)
        })
        .await
    }

    /// One transaction: sweep, insert, trim to the newest `max`.
    async fn insert_session(&self, session: &Session, max: usize) -> StoreResult<()> {
        let s = session.clone();
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        self.write(move |c| {
            // Sweep this user's expired sessions while here: nothing else
            // (no TTL index) removes those never touched again.
            c.prepare_cached(
                "DELETE FROM sessions WHERE user_id = ?1 \
                 AND (expires_at <= ?2 OR absolute_expires_at <= ?2)",
            )?
            .execute(params![s.user_id, ms(s.created_at)])?;
            c.prepare_cached(&format!(
                "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?
            .execute(params![
                s.hashed_id.as_str(),
                s.user_id,
                ms(s.created_at),
                ms(s.last_seen_at),
                ms(s.expires_at),
                ms(s.absolute_expires_at)
            ])?;
            // The per-user cap: the oldest beyond the newest `max` go.
            c.prepare_cached(
                "DELETE FROM sessions WHERE user_id = ?1 AND hash IN (\
                   SELECT hash FROM sessions WHERE user_id = ?1 \
                   ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?2)",
            )?
            .execute(params![s.user_id, keep])?;
            Ok(())
        })
        .await
    }

    async fn touch_session(
        &self,
        hashed_id: &TokenHash,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>> {
        let hash = hashed_id.clone();
        self.write(move |c| {
            let touched = c
                .prepare_cached(&format!(
                    "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 \
                     WHERE hash = ?1 AND expires_at > ?2 AND absolute_expires_at > ?2 \
                     RETURNING {SESSION_COLUMNS}"
                ))?
                .query_row(
                    params![hash.as_str(), ms(now), ms(new_expires_at)],
                    session_row,
                )
                .optional()?;
            if touched.is_none() {
                // Expired (or absent): gone for good, as a TTL index would do.
                c.prepare_cached("DELETE FROM sessions WHERE hash = ?1")?
                    .execute([hash.as_str()])?;
            }
            Ok(touched)
        })
        .await
    }

    async fn delete_session(&self, hashed_id: &TokenHash) -> StoreResult<bool> {
        let hash = hashed_id.clone();
        self.write(move |c| {
            Ok(c.prepare_cached("DELETE FROM sessions WHERE hash = ?1")?
                .execute([hash.as_str()])?
                > 0)
        })
        .await
    }

    async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        let keep = keep.map(|h| h.as_str().to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM sessions WHERE user_id = ?1 AND hash IS NOT ?2")?
                .execute(params![user_id, keep])?;
            Ok(n as u64)
        })
        .await
    }
}

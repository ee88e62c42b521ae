//! Rocket.Chat login tokens and personal access tokens: the `login_tokens`
//! table, one row per token, keyed by its hash.

use super::users::{resolve, user_by_id};
use super::{ms, time, SqliteStore};
use crate::core::credential::TokenHash;
use crate::core::model::{LoginToken, PersonalAccessToken, ResumeToken, Timestamp, User, UserKey};
use crate::store::{PatInsert, StoreResult, TokenStore};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

const RESUME: &str = "resume";
const PERSONAL: &str = "personal";

const TOKEN_COLUMNS: &str =
    "hash, kind, created_at, name, last_token_part, bypass_two_factor, user_id, \
     expires_at, last_used_at";

fn optional_time(
    row: &Row<'_>,
    idx: usize,
) -> rusqlite::Result<Option<crate::core::model::Timestamp>> {
    row.get::<_, Option<i64>>(idx)?
        .map(|v| time(idx, v))
        .transpose()
}

/// A token from a row of [`TOKEN_COLUMNS`], and its owner's id.
fn token_row(row: &Row<'_>) -> rusqlite::Result<(LoginToken, String)> {
    let hashed_token = TokenHash::from_stored(row.get::<_, String>(0)?);
    let kind: String = row.get(1)?;
    let created_at = time(2, row.get(2)?)?;
    let token = if kind == PERSONAL {
        LoginToken::Personal(PersonalAccessToken {
            hashed_token,
            created_at,
            name: row.get(3)?,
            last_token_part: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            bypass_two_factor: row.get::<_, Option<bool>>(5)?.unwrap_or(false),
            expires_at: optional_time(row, 7)?,
            last_used_at: optional_time(row, 8)?,
        })
    } else {
        LoginToken::Resume(ResumeToken {
            when: created_at,
            hashed_token,
        })
    };
    Ok((token, row.get(6)?))
}

fn insert_token(conn: &Connection, user_id: &str, token: &LoginToken) -> StoreResult<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO login_tokens \
         (hash, user_id, kind, created_at, name, last_token_part, bypass_two_factor, \
          expires_at, last_used_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    match token {
        LoginToken::Resume(r) => stmt.execute(params![
            r.hashed_token.as_str(),
            user_id,
            RESUME,
            ms(r.when),
            None::<String>,
            None::<String>,
            None::<bool>,
            None::<i64>,
            None::<i64>
        ])?,
        LoginToken::Personal(p) => stmt.execute(params![
            p.hashed_token.as_str(),
            user_id,
            PERSONAL,
            ms(p.created_at),
            p.name,
            p.last_token_part,
            p.bypass_two_factor,
            p.expires_at.map(ms),
            p.last_used_at.map(ms)
        ])?,
    };
    Ok(())
}

fn find(conn: &Connection, hash: &TokenHash) -> StoreResult<Option<(User, LoginToken)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM login_tokens WHERE hash = ?1"
    ))?;
    let Some((token, owner)) = stmt.query_row([hash.as_str()], token_row).optional()? else {
        return Ok(None);
    };
    Ok(user_by_id(conn, &owner)?.map(|user| (user, token)))
}

/// The newest login token of user `?1` beyond the `?2` newest: the cap's
/// cut, read from the index alone.
pub(super) const FIRST_BEYOND_CAP: &str = "SELECT created_at, hash FROM login_tokens \
     WHERE user_id = ?1 AND kind = 'resume' \
     ORDER BY created_at DESC, hash DESC LIMIT 1 OFFSET ?2";

/// Adds a login token, then keeps only the user's newest `max` login tokens
/// (by `when`, then hash), all in the caller's transaction. Both steps read
/// the index on `(user_id, kind, created_at, hash)` alone: the oldest token
/// to keep is found `max` entries from the newest end, and only the entries
/// older than it are deleted (usually one, or none below the cap).
pub(super) fn push(
    conn: &Connection,
    key: &UserKey,
    token: &ResumeToken,
    max: usize,
) -> StoreResult<Option<String>> {
    let Some(id) = resolve(conn, key)? else {
        return Ok(None);
    };
    insert_token(conn, &id, &LoginToken::Resume(token.clone()))?;
    // The newest `max` by `when`, then hash (the order MongoDB's trim uses:
    // exactly `max` stay even when two tokens share a millisecond).
    let kept = i64::try_from(max).unwrap_or(i64::MAX);
    let first_gone: Option<(i64, String)> = conn
        .prepare_cached(FIRST_BEYOND_CAP)?
        .query_row(params![id, kept], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((created_at, hash)) = first_gone {
        conn.prepare_cached(
            "DELETE FROM login_tokens WHERE user_id = ?1 AND kind = 'resume' \
             AND (created_at, hash) <= (?2, ?3)",
        )?
        .execute(params![id, created_at, hash])?;
    }
    Ok(Some(id))
}

fn user_exists(conn: &Connection, id: &str) -> StoreResult<bool> {
    let mut stmt = conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1)")?;
    Ok(stmt.query_row([id], |r| r.get(0))?)
}

fn add_pat(
    conn: &Connection,
    user_id: &str,
    pat: &PersonalAccessToken,
    max: usize,
) -> StoreResult<PatInsert> {
    if !user_exists(conn, user_id)? {
        return Ok(PatInsert::NoSuchUser);
    }
    let mut taken = conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM login_tokens \
         WHERE user_id = ?1 AND kind = 'personal' AND name = ?2)",
    )?;
    if taken.query_row(params![user_id, pat.name], |r| r.get(0))? {
        return Ok(PatInsert::NameTaken);
    }
    let mut count = conn.prepare_cached(
        "SELECT COUNT(*) FROM login_tokens WHERE user_id = ?1 AND kind = 'personal'",
    )?;
    let held: i64 = count.query_row([user_id], |r| r.get(0))?;
    if usize::try_from(held).unwrap_or(usize::MAX) >= max {
        return Ok(PatInsert::TooMany);
    }
    insert_token(conn, user_id, &LoginToken::Personal(pat.clone()))?;
    Ok(PatInsert::Inserted)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn find_by_token(
        &self,
        user_id: Option<&str>,
        hashed_token: &TokenHash,
    ) -> StoreResult<Option<(User, LoginToken)>> {
        let cache = &self.auth_cache;
        let now = std::time::Instant::now();
        if let Some((user, token)) = cache.get(hashed_token.as_str(), now) {
            return Ok(user_id
                .is_none_or(|id| id == user.id)
                .then_some((user, token)));
        }
        let generation = cache.generation();
        let hash = hashed_token.clone();
        let found = self.read_point(move |c| find(c, &hash)).await?;
        if let Some((user, token)) = &found {
            cache.put(hashed_token.as_str(), generation, now, user, token);
        }
        Ok(found.filter(|(user, _)| user_id.is_none_or(|id| id == user.id)))
    }

    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<LoginToken>> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            // Oldest insertion first, as MongoDB keeps the array.
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM login_tokens WHERE user_id = ?1 ORDER BY rowid"
            ))?;
            let rows = stmt.query_map([user_id], token_row)?;
            Ok(rows
                .map(|r| r.map(|(token, _)| token))
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    /// One row, through the unique index on `(user_id, name)` of PATs.
    async fn find_personal_access_token(
        &self,
        user_id: &str,
        name: &str,
    ) -> StoreResult<Option<PersonalAccessToken>> {
        let (user_id, name) = (user_id.to_string(), name.to_string());
        self.read_point(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM login_tokens \
                 WHERE user_id = ?1 AND kind = 'personal' AND name = ?2"
            ))?;
            let found = stmt
                .query_row(params![user_id, name], token_row)
                .optional()?;
            Ok(found.and_then(|(token, _)| match token {
                LoginToken::Personal(p) => Some(p),
                LoginToken::Resume(_) => None,
            }))
        })
        .await
    }

    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>> {
        let (key, token) = (key.clone(), token.clone());
        self.write(move |c| push(c, &key, &token, max)).await
    }

    async fn remove_login_tokens(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        let keep = keep.map(|h| h.as_str().to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM login_tokens \
                     WHERE user_id = ?1 AND kind = 'resume' AND hash IS NOT ?2",
                )?
                .execute(params![user_id, keep])?;
            Ok(n as u64)
        })
        .await
    }

    async fn remove_login_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
    ) -> StoreResult<bool> {
        let user_id = user_id.to_string();
        let hash = hashed_token.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM login_tokens WHERE hash = ?1 AND user_id = ?2")?
                .execute(params![hash.as_str(), user_id])?;
            Ok(n > 0)
        })
        .await
    }

    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
        max: usize,
    ) -> StoreResult<PatInsert> {
        let (user_id, pat) = (user_id.to_string(), pat.clone());
        self.write(move |c| add_pat(c, &user_id, &pat, max)).await
    }

    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool> {
        let (user_id, pat) = (user_id.to_string(), pat.clone());
        // In place: the row keeps its position among the user's tokens.
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE login_tokens SET hash = ?3, created_at = ?4, last_token_part = ?5, \
                     bypass_two_factor = ?6, expires_at = ?7, last_used_at = ?8 \
                     WHERE user_id = ?1 AND kind = 'personal' AND name = ?2",
                )?
                .execute(params![
                    user_id,
                    pat.name,
                    pat.hashed_token.as_str(),
                    ms(pat.created_at),
                    pat.last_token_part,
                    pat.bypass_two_factor,
                    pat.expires_at.map(ms),
                    pat.last_used_at.map(ms)
                ])?;
            Ok(n > 0)
        })
        .await
    }

    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool> {
        let (user_id, name) = (user_id.to_string(), name.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM login_tokens \
                     WHERE user_id = ?1 AND kind = 'personal' AND name = ?2",
                )?
                .execute(params![user_id, name])?;
            Ok(n > 0)
        })
        .await
    }

    async fn touch_personal_access_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool> {
        let (user_id, hash) = (user_id.to_string(), hashed_token.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE login_tokens SET last_used_at = ?3 \
                     WHERE hash = ?1 AND user_id = ?2 AND kind = 'personal' \
                     AND (last_used_at IS NULL OR last_used_at < ?4)",
                )?
                .execute(params![hash.as_str(), user_id, ms(now), ms(stale_before)])?;
            Ok(n > 0)
        })
        .await
    }
}

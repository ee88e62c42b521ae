//! Failed-login records: `login_events` (schema v2). The check and the
//! record are one write job, so they run in the one writer's transaction:
//! exact under any concurrency within the process that owns the file.

use super::{ms, SqliteStore};
use crate::core::model::{AttemptLimits, BlockScope, LoginAttempt, Timestamp};
use crate::store::{LoginAttemptStore, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

/// Failures of the attempt's account that count, capped at `cap`.
fn account_failures(c: &Connection, a: &LoginAttempt, since: i64, cap: u32) -> StoreResult<u32> {
    let account = "(user_id = ?1 OR username = ?2)";
    let last_login: Option<i64> = c
        .prepare_cached(&format!(
            "SELECT MAX(ts) FROM login_events WHERE kind = 'login' AND {account}"
        ))?
        .query_row(params![a.user_id, a.username], |r| r.get(0))
        .optional()?
        .flatten();
    let since = last_login.map_or(since, |t| since.max(t));
    Ok(c.prepare_cached(&format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM login_events \
         WHERE kind = 'failed' AND {account} AND ts > ?3 LIMIT ?4)"
    ))?
    .query_row(params![a.user_id, a.username, since, cap], |r| r.get(0))?)
}

/// Failures from the address that count, capped at `cap`.
fn address_failures(c: &Connection, ip: &str, since: i64, cap: u32) -> StoreResult<u32> {
    Ok(c.prepare_cached(
        "SELECT COUNT(*) FROM (SELECT 1 FROM login_events \
         WHERE kind = 'failed' AND ip = ?1 AND ts > ?2 LIMIT ?3)",
    )?
    .query_row(params![ip, since, cap], |r| r.get(0))?)
}

#[async_trait]
impl LoginAttemptStore for SqliteStore {
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt,
        limits: &AttemptLimits,
    ) -> StoreResult<Option<BlockScope>> {
        let a = attempt.clone();
        let l = *limits;
        self.write(move |c| {
            c.prepare_cached("DELETE FROM login_events WHERE expires_at <= ?1")?
                .execute([ms(a.ts)])?;
            if a.user_id.is_some() || a.username.is_some() {
                let cap = l.user_attempts;
                if account_failures(c, &a, ms(l.user_since), cap)? >= cap {
                    return Ok(Some(BlockScope::ForUser));
                }
            }
            if let Some(ip) = &a.ip {
                let cap = l.ip_attempts;
                if address_failures(c, ip, ms(l.ip_since), cap)? >= cap {
                    return Ok(Some(BlockScope::ForIp));
                }
            }
            c.prepare_cached(
                "INSERT INTO login_events (id, kind, user_id, username, ip, ts, expires_at) \
                 VALUES (?1, 'failed', ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                a.id,
                a.user_id,
                a.username,
                a.ip,
                ms(a.ts),
                ms(a.expires_at)
            ])?;
            Ok(None)
        })
        .await
    }

    async fn login_attempt_succeeded(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("UPDATE login_events SET kind = 'login', ts = ?2 WHERE id = ?1")?
                .execute(params![id, ms(now)])?;
            Ok(())
        })
        .await
    }

    async fn withdraw_login_attempt(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM login_events WHERE id = ?1")?
                .execute([&id])?;
            Ok(())
        })
        .await
    }
}

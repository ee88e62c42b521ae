//! [`LoginAttemptStore`] on Rocket.Chat's `rocketchat_server_events`: the
//! same records Rocket.Chat's own login blocking reads and writes
//! (`restrictLoginAttempts.ts`: `countFailedAttemptsByUsernameSince`,
//! `countFailedAttemptsByIpSince`, `findLastSuccessfulAttemptByUsername`),
//! so tokend counts the failures Rocket.Chat records and Rocket.Chat counts
//! tokend's.
//!
//! Without transactions, the check-and-reserve is *record first, then
//! count*: the attempt is inserted as a `failed-login-attempt`, then the
//! account's and the address's records are counted (two reads, in
//! parallel, from the primary); over a limit, the attempt deletes its own
//! record and is refused. Each attempt's count includes every attempt
//! recorded before it, so of any number of concurrent attempts (from any
//! number of tokend instances) at most the limit are admitted; concurrent
//! attempts may refuse one another early, never admit too many.
//!
//! Round trips: an admitted attempt 2 (the insert, then both counts at
//! once), a refused one 3 (plus the delete); the outcome 1 on success (the
//! record becomes a `login` event) and none on a failure (it already is one).

use super::*;
use crate::core::model::{AttemptLimits, BlockScope, LoginAttempt};
use mongodb::options::{ReadPreference, SelectionCriteria};

fn primary() -> SelectionCriteria {
    SelectionCriteria::ReadPreference(ReadPreference::Primary)
}

/// The account's failure and login records after `since`: by user id or by
/// username, each clause complete (type and time inside it), so each can use
/// its own index (`t_1_u._id_1_ts_-1`, `t_1_u.username_1_ts_-1`).
fn account_filter(a: &LoginAttempt, since: Timestamp) -> Option<Document> {
    let clause = |field: &str, value: &str| {
        doc! {
            event::TYPE: { "$in": [event::FAILED_LOGIN, event::LOGIN] },
            field: value,
            event::TS: { "$gt": date(since) },
        }
    };
    let mut either = Vec::new();
    if let Some(id) = &a.user_id {
        either.push(clause(event::USER_ID, id));
    }
    if let Some(name) = &a.username {
        either.push(clause(event::USERNAME, name));
    }
    (!either.is_empty()).then(|| doc! { "$or": either })
}

/// Whether the account's failures in `filter` ([`account_filter`]), after its
/// latest `login` event, exceed `cap`: reads at most `cap + 1` records,
/// newest first.
async fn account_over(events: &Collection<Document>, filter: Document, cap: u32) -> Outcome<bool> {
    let found = events
        .find(filter)
        .projection(doc! { event::TYPE: 1, event::TS: 1 })
        // Newest first; within one millisecond `login` before
        // `failed-login-attempt`, so a failure of the same millisecond as a
        // success counts as before it (as on SQLite).
        .sort(doc! { event::TS: -1, event::TYPE: -1 })
        .limit(i64::from(cap) + 1)
        .selection_criteria(primary())
        .await?;
    let kinds = collect(found, |d| d.get_str(event::TYPE).ok().map(str::to_string)).await?;
    let failures = kinds
        .iter()
        .take_while(|t| t.as_str() != event::LOGIN)
        .count();
    Ok(failures > cap as usize)
}

/// Whether the address's failures since `since` exceed `cap`.
async fn address_over(
    events: &Collection<Document>,
    ip: &str,
    since: Timestamp,
    cap: u32,
) -> Outcome<bool> {
    let n = events
        .count_documents(doc! {
            event::TYPE: event::FAILED_LOGIN,
            event::IP: ip,
            event::TS: { "$gt": date(since) },
        })
        .limit(u64::from(cap) + 1)
        .selection_criteria(primary())
        .await?;
    Ok(n > u64::from(cap))
}

#[async_trait]
impl LoginAttemptStore for MongoStore {
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt,
        limits: &AttemptLimits,
    ) -> StoreResult<Option<BlockScope>> {
        self.run("reserve_login_attempt", |db| async move {
            let events = coll(&db, SERVER_EVENTS);
            let mut user = doc! {};
            if let Some(id) = &attempt.user_id {
                user.insert("_id", id);
            }
            if let Some(name) = &attempt.username {
                user.insert("username", name);
            }
            let mut record = doc! {
                event::ID: &attempt.id,
                event::TYPE: event::FAILED_LOGIN,
                event::TS: date(attempt.ts),
                event::USER: user,
                event::EXPIRE_AT: date(attempt.expires_at),
            };
            if let Some(ip) = &attempt.ip {
                record.insert(event::IP, ip);
            }
            events.insert_one(record).await?;
            let by_account = async {
                match account_filter(attempt, limits.user_since) {
                    Some(f) => account_over(&events, f, limits.user_attempts).await,
                    None => Ok(false),
                }
            };
            let by_address = async {
                match &attempt.ip {
                    Some(ip) => {
                        address_over(&events, ip, limits.ip_since, limits.ip_attempts).await
                    }
                    None => Ok(false),
                }
            };
            let (user_over, ip_over) = tokio::try_join!(by_account, by_address)?;
            let blocked = if user_over {
                Some(BlockScope::ForUser)
            } else if ip_over {
                Some(BlockScope::ForIp)
            } else {
                None
            };
            if blocked.is_some() {
                events.delete_one(doc! { event::ID: &attempt.id }).await?;
            }
            Ok(blocked)
        })
        .await
    }

    async fn login_attempt_succeeded(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        self.run("login_attempt_succeeded", |db| async move {
            // The address is dropped: Rocket.Chat's own `login` events end
            // its address count, tokend's must not (a success through tokend
            // ends the account's count only).
            coll(&db, SERVER_EVENTS)
                .update_one(
                    doc! { event::ID: id },
                    doc! {
                        "$set": { event::TYPE: event::LOGIN, event::TS: date(now) },
                        "$unset": { event::IP: "" },
                    },
                )
                .await?;
            Ok(())
        })
        .await
    }

    async fn withdraw_login_attempt(&self, id: &str) -> StoreResult<()> {
        self.run("withdraw_login_attempt", |db| async move {
            coll(&db, SERVER_EVENTS)
                .delete_one(doc! { event::ID: id })
                .await?;
            Ok(())
        })
        .await
    }
}

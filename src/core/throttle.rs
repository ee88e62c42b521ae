//! Failed-login blocking, as Rocket.Chat's: after N failures for one account
//! (or from one address) within the block time, further attempts are refused
//! until enough of those failures are older than the block time, even with
//! the right password. This module states the rule; the records live in the
//! store ([`crate::store::LoginAttemptStore`]), so every tokend on one
//! database (and, on MongoDB, Rocket.Chat itself) shares them.
//!
//! The rules:
//!
//! * The account key is the resolved user (its id, and its username as
//!   Rocket.Chat keys it) when the login names an existing user, so `dave`
//!   and `dave@example.org` share one count; for an unknown name it is the
//!   name trimmed and lowercased, so blocking works the same for unknown
//!   users and reveals nothing.
//! * An attempt is *reserved* before the password is checked: recorded as a
//!   failure in the same atomic step as the check
//!   ([`crate::store::LoginAttemptStore::reserve_login_attempt`]), so failures
//!   counted plus attempts in flight never exceed the limit, even under a
//!   burst of concurrent wrong passwords spread over many tokend instances.
//! * A failure counts while it is younger than the block time (Rocket.Chat's
//!   `lockoutTimeStart`): a block lasts at most the block time after the
//!   failure that filled the count. A refused (blocked) attempt counts for
//!   nothing.
//! * A success turns its reservation into the account's successful login
//!   (Rocket.Chat's `login` event), which ends the count of the *account*
//!   only, never the address's (else an attacker's own account would reset
//!   the address's count).

use super::clock::Timestamp;
pub use super::model::BlockScope;
use super::model::{AttemptLimits, LoginAttempt, User};
use crate::config::LoginBlockConfig;
use std::net::IpAddr;
use std::time::Duration;

/// Whom a login attempt counts against (besides its address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountKey {
    /// An existing user: its id and username.
    User {
        id: String,
        username: Option<String>,
    },
    /// A name that names no user, normalised.
    Unknown(String),
}

impl AccountKey {
    /// The key for a name that names no user: trimmed and lowercased.
    pub fn unknown(name: &str) -> Self {
        AccountKey::Unknown(name.trim().to_lowercase())
    }

    /// The key of an existing user.
    pub fn user(user: &User) -> Self {
        AccountKey::User {
            id: user.id.clone(),
            username: user.username.clone(),
        }
    }
}

/// `d` after `t`, or the last representable instant.
fn later(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// `d` before `t`, or the first representable instant.
fn earlier(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
}

/// The failed-login rule: which record an attempt makes, and the limits it
/// is checked against.
pub struct LoginThrottle {
    cfg: LoginBlockConfig,
}

impl LoginThrottle {
    /// The rule with the given limits.
    pub fn new(cfg: LoginBlockConfig) -> Self {
        Self { cfg }
    }

    /// Whether failed-login blocking is on (`LOGIN_BLOCK_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// How long a block of this scope lasts at most (`Retry-After`).
    pub fn block_time(&self, scope: BlockScope) -> Duration {
        match scope {
            BlockScope::ForUser => self.cfg.user_block,
            BlockScope::ForIp => self.cfg.ip_block,
        }
    }

    /// The record of an attempt by `account` from `ip` at `ts`, with id `id`.
    pub fn attempt(
        &self,
        id: String,
        account: &AccountKey,
        ip: Option<IpAddr>,
        ts: Timestamp,
    ) -> LoginAttempt {
        let (user_id, username) = match account {
            AccountKey::User { id, username } => (Some(id.clone()), username.clone()),
            AccountKey::Unknown(name) => (None, Some(name.clone())),
        };
        LoginAttempt {
            id,
            user_id,
            username,
            ip: ip.map(|ip| ip.to_string()),
            ts,
            expires_at: later(ts, self.cfg.user_block.max(self.cfg.ip_block)),
        }
    }

    /// The limits an attempt at `now` is checked against.
    pub fn limits(&self, now: Timestamp) -> AttemptLimits {
        AttemptLimits {
            user_attempts: self.cfg.user_attempts,
            user_since: earlier(now, self.cfg.user_block),
            ip_attempts: self.cfg.ip_attempts,
            ip_since: earlier(now, self.cfg.ip_block),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(LoginBlockConfig {
            enabled: true,
            user_attempts: 3,
            user_block: Duration::from_secs(60),
            ip_attempts: 5,
            ip_block: Duration::from_secs(120),
        })
    }

    #[test]
    fn unknown_names_are_keyed_trimmed_and_lowercased() {
        assert_eq!(AccountKey::unknown(" Dave "), AccountKey::unknown("dave"));
        let a = throttle().attempt(
            "x".into(),
            &AccountKey::unknown(" GHOST"),
            None,
            chrono::Utc::now(),
        );
        assert_eq!((a.user_id, a.username.as_deref()), (None, Some("ghost")));
    }

    #[test]
    fn records_outlive_every_window_they_count_in() {
        let t = throttle();
        let now = chrono::Utc::now();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let a = t.attempt("x".into(), &AccountKey::unknown("a"), ip, now);
        assert_eq!(a.expires_at, now + chrono::Duration::seconds(120));
        assert_eq!(a.ip.as_deref(), Some("10.0.0.1"));
        let l = t.limits(now);
        assert_eq!(l.user_since, now - chrono::Duration::seconds(60));
        assert_eq!(l.ip_since, now - chrono::Duration::seconds(120));
        // A block time past the calendar never panics.
        let huge = LoginThrottle::new(LoginBlockConfig {
            user_block: Duration::from_secs(u64::MAX / 4),
            ..t.cfg.clone()
        });
        assert!(huge.limits(now).user_since < now);
        assert!(
            huge.attempt("y".into(), &AccountKey::unknown("a"), None, now)
                .expires_at
                > now
        );
    }
}

//! Failed-login blocking, as Rocket.Chat's defaults: after N failures for one
//! account (or from one IP) further attempts are refused for a while, even
//! with the right password. Counters are kept in process.
//!
//! The rules:
//!
//! * The account key is the resolved user (its id) when the login names an
//!   existing user, so `dave` and `dave@example.org` share one counter; for
//!   an unknown name it is the name trimmed and lowercased, so blocking
//!   works the same for unknown users and reveals nothing.
//! * An attempt is *reserved* before the password is checked, in one atomic
//!   step with the block check ([`LoginThrottle::reserve`]): failures counted
//!   plus attempts in flight never exceed the limit, so a burst of concurrent
//!   wrong passwords cannot all reach bcrypt.
//! * Failures count within a window as long as the block; a success clears
//!   that account's counter only, never the address's (else an attacker's
//!   own account would reset the address's count).

use super::clock::Timestamp;
use crate::config::LoginBlockConfig;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// Why a login was refused before the password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    ForUser,
    ForIp,
}

/// Whom a login attempt counts against (besides its address).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountKey {
    /// An existing user, by id.
    User(String),
    /// A name that names no user, normalised.
    Unknown(String),
}

impl AccountKey {
    /// The key for a name that names no user: trimmed and lowercased.
    pub fn unknown(name: &str) -> Self {
        AccountKey::Unknown(name.trim().to_lowercase())
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    /// Reserved attempts whose password check has not ended.
    in_flight: u32,
    /// When the first failure of the current window was counted.
    window_start: Timestamp,
    blocked_until: Option<Timestamp>,
}

/// Keeps the counters from growing without bound under a flood of names.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Counters {
    users: HashMap<AccountKey, Counter>,
    ips: HashMap<IpAddr, Counter>,
}

/// The failed-login counters.
pub struct LoginThrottle {
    cfg: LoginBlockConfig,
    counters: Mutex<Counters>,
}

/// `d` after `t`, or the last representable instant.
fn later(t: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
}

/// Whether one more attempt may be reserved on this counter; forgets a
/// block or window that is over.
fn admits<K: Hash + Eq>(
    map: &mut HashMap<K, Counter>,
    key: &K,
    limit: u32,
    window: Duration,
    now: Timestamp,
) -> bool {
    let Some(c) = map.get_mut(key) else {
        return true;
    };
    match c.blocked_until {
        Some(until) if until > now => return false,
        Some(_) => {
            // The block is over: start counting afresh.
            c.failures = 0;
            c.blocked_until = None;
        }
        None if later(c.window_start, window) <= now => c.failures = 0,
        None => {}
    }
    c.failures.saturating_add(c.in_flight) < limit
}

fn reserve_on<K: Hash + Eq>(map: &mut HashMap<K, Counter>, key: K, now: Timestamp) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, c| c.in_flight > 0 || c.blocked_until.is_some_and(|u| u > now));
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, c| c.in_flight > 0);
        }
    }
    let c = map.entry(key).or_insert(Counter {
        failures: 0,
        in_flight: 0,
        window_start: now,
        blocked_until: None,
    });
    c.in_flight = c.in_flight.saturating_add(1);
}

fn release_on<K: Hash + Eq>(map: &mut HashMap<K, Counter>, key: &K) {
    if let Some(c) = map.get_mut(key) {
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.in_flight == 0 && c.failures == 0 && c.blocked_until.is_none() {
            map.remove(key);
        }
    }
}

fn fail_on<K: Hash + Eq>(
    map: &mut HashMap<K, Counter>,
    key: &K,
    limit: u32,
    block: Duration,
    now: Timestamp,
) {
    if let Some(c) = map.get_mut(key) {
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.failures == 0 {
            c.window_start = now;
        }
        c.failures = c.failures.saturating_add(1);
        if c.failures >= limit {
            c.blocked_until = Some(later(now, block));
        }
    }
}

/// A reserved login attempt: it counts against its account and address
/// until it ends. Dropped without an outcome (the check could not run), it
/// is released without counting.
pub struct Reservation<'a> {
    throttle: &'a LoginThrottle,
    /// `None`: blocking is off, nothing was reserved.
    keys: Option<(AccountKey, Option<IpAddr>)>,
}

impl std::fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reservation")
    }
}

impl Reservation<'_> {
    /// The password was wrong (or the user inactive): count a failure.
    pub fn failed(mut self, now: Timestamp) {
        if let Some((account, ip)) = self.keys.take() {
            let cfg = &self.throttle.cfg;
            let mut counters = self.throttle.lock();
            fail_on(
                &mut counters.users,
                &account,
                cfg.user_attempts,
                cfg.user_block,
                now,
            );
            if let Some(ip) = ip {
                fail_on(&mut counters.ips, &ip, cfg.ip_attempts, cfg.ip_block, now);
            }
        }
    }

    /// The login succeeded: clear the account's counter (the address keeps its own).
    pub fn succeeded(mut self) {
        if let Some((account, ip)) = self.keys.take() {
            let mut counters = self.throttle.lock();
            if let Some(c) = counters.users.get_mut(&account) {
                c.failures = 0;
                c.blocked_until = None;
            }
            release_on(&mut counters.users, &account);
            if let Some(ip) = ip {
                release_on(&mut counters.ips, &ip);
            }
        }
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some((account, ip)) = self.keys.take() {
            let mut counters = self.throttle.lock();
            release_on(&mut counters.users, &account);
            if let Some(ip) = ip {
                release_on(&mut counters.ips, &ip);
            }
        }
    }
}

impl LoginThrottle {
    /// Counters with the given limits.
    pub fn new(cfg: LoginBlockConfig) -> Self {
        Self {
            cfg,
            counters: Mutex::new(Counters::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the address is blocked (a cheap look before the user lookup;
    /// [`LoginThrottle::reserve`] decides).
    pub fn ip_blocked(&self, ip: Option<IpAddr>, now: Timestamp) -> bool {
        let Some(ip) = ip.filter(|_| self.cfg.enabled) else {
            return false;
        };
        let counters = self.lock();
        counters
            .ips
            .get(&ip)
            .and_then(|c| c.blocked_until)
            .is_some_and(|until| until > now)
    }

    /// Checks and reserves one attempt for `account` from `ip`, atomically:
    /// refused while either is blocked or already has as many attempts
    /// counted and in flight as its limit.
    pub fn reserve(
        &self,
        account: AccountKey,
        ip: Option<IpAddr>,
        now: Timestamp,
    ) -> Result<Reservation<'_>, BlockScope> {
        if !self.cfg.enabled {
            return Ok(Reservation {
                throttle: self,
                keys: None,
            });
        }
        let cfg = &self.cfg;
        let mut counters = self.lock();
        if !admits(
            &mut counters.users,
            &account,
            cfg.user_attempts,
            cfg.user_block,
            now,
        ) {
            return Err(BlockScope::ForUser);
        }
        if let Some(ip) = ip {
            if !admits(&mut counters.ips, &ip, cfg.ip_attempts, cfg.ip_block, now) {
                return Err(BlockScope::ForIp);
            }
        }
        reserve_on(&mut counters.users, account.clone(), now);
        if let Some(ip) = ip {
            reserve_on(&mut counters.ips, ip, now);
        }
        Ok(Reservation {
            throttle: self,
            keys: Some((account, ip)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(user_attempts: u32, ip_attempts: u32) -> LoginThrottle {
        LoginThrottle::new(LoginBlockConfig {
            enabled: true,
            user_attempts,
            user_block: Duration::from_secs(60),
            ip_attempts,
            ip_block: Duration::from_secs(60),
        })
    }

    #[test]
    fn reservations_in_flight_count_toward_the_limit() {
        let t = throttle(3, 100);
        let now = chrono::Utc::now();
        let key = AccountKey::unknown(" Dave ");
        let held: Vec<_> = (0..3)
            .map(|_| t.reserve(key.clone(), None, now).expect("admitted"))
            .collect();
        assert_eq!(
            t.reserve(AccountKey::unknown("dave"), None, now).err(),
            Some(BlockScope::ForUser)
        );
        drop(held);
        // Released without an outcome: nothing was counted.
        assert!(t.reserve(key, None, now).is_ok());
    }

    #[test]
    fn a_success_clears_the_account_not_the_address() {
        let t = throttle(100, 3);
        let now = chrono::Utc::now();
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..2 {
            t.reserve(AccountKey::unknown("victim"), ip, now)
                .expect("admitted")
                .failed(now);
        }
        t.reserve(AccountKey::User("me".into()), ip, now)
            .expect("admitted")
            .succeeded();
        t.reserve(AccountKey::unknown("victim"), ip, now)
            .expect("admitted")
            .failed(now);
        assert!(t.ip_blocked(ip, now));
        assert_eq!(
            t.reserve(AccountKey::User("me".into()), ip, now).err(),
            Some(BlockScope::ForIp)
        );
        // The block ends, and counting starts afresh.
        let after = now + chrono::Duration::seconds(61);
        assert!(t.reserve(AccountKey::User("me".into()), ip, after).is_ok());
    }
}

//! Failed-login blocking, as Rocket.Chat's defaults: after N failures for one
//! login name (or from one IP) further attempts are refused for a while, even
//! with the right password. A success resets the counters. Counters are kept
//! in process; the key is the login name as typed (lowercased), so blocking
//! works the same for unknown users and reveals nothing.

use super::clock::Timestamp;
use crate::config::LoginBlockConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Why a login was refused before the password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    ForUser,
    ForIp,
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    blocked_until: Option<Timestamp>,
}

/// Keeps the counters from growing without bound under a flood of names.
const MAX_ENTRIES: usize = 100_000;

/// The failed-login counters.
pub struct LoginThrottle {
    cfg: LoginBlockConfig,
    users: Mutex<HashMap<String, Counter>>,
    ips: Mutex<HashMap<IpAddr, Counter>>,
}

fn blocked<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Counter>>,
    key: &K,
    now: Timestamp,
) -> bool {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(key).and_then(|c| c.blocked_until) {
        Some(until) if until > now => true,
        Some(_) => {
            // The block is over: start counting afresh.
            map.remove(key);
            false
        }
        None => false,
    }
}

fn fail<K: std::hash::Hash + Eq>(
    map: &Mutex<HashMap<K, Counter>>,
    key: K,
    limit: u32,
    block: std::time::Duration,
    now: Timestamp,
) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, c| c.blocked_until.is_some_and(|u| u > now));
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
    let c = map.entry(key).or_insert(Counter {
        failures: 0,
        blocked_until: None,
    });
    c.failures += 1;
    if c.failures >= limit {
        c.blocked_until = Some(now + chrono::Duration::from_std(block).unwrap_or_default());
    }
}

impl LoginThrottle {
    /// Counters with the given limits.
    pub fn new(cfg: LoginBlockConfig) -> Self {
        Self {
            cfg,
            users: Mutex::new(HashMap::new()),
            ips: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an attempt for `login` from `ip` may go ahead.
    pub fn check(&self, login: &str, ip: Option<IpAddr>, now: Timestamp) -> Result<(), BlockScope> {
        if !self.cfg.enabled {
            return Ok(());
        }
        if blocked(&self.users, &login.to_lowercase(), now) {
            return Err(BlockScope::ForUser);
        }
        if let Some(ip) = ip {
            if blocked(&self.ips, &ip, now) {
                return Err(BlockScope::ForIp);
            }
        }
        Ok(())
    }

    /// Counts a failed attempt.
    pub fn failure(&self, login: &str, ip: Option<IpAddr>, now: Timestamp) {
        if !self.cfg.enabled {
            return;
        }
        let c = &self.cfg;
        fail(
            &self.users,
            login.to_lowercase(),
            c.user_attempts,
            c.user_block,
            now,
        );
        if let Some(ip) = ip {
            fail(&self.ips, ip, c.ip_attempts, c.ip_block, now);
        }
    }

    /// A successful login clears the counters of that name and address.
    pub fn success(&self, login: &str, ip: Option<IpAddr>) {
        self.users
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&login.to_lowercase());
        if let Some(ip) = ip {
            self.ips
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&ip);
        }
    }
}

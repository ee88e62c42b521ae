//! A fixed-window request counter per (client address, route), as
//! Rocket.Chat's REST rate limiter: at most `calls` per `window`, counted from
//! the first call of the window. Kept in process, like Rocket.Chat's (each
//! instance behind a load balancer limits what reaches it).
//!
//! Bounded in memory and in work: the keys are spread over [`SHARDS`] maps,
//! each behind its own lock and holding at most its share of the capacity
//! ([`MAX_KEYS`] in all). Each shard keeps its keys in arrival order; a new
//! key in a full shard evicts from the front, looking at no more than
//! [`EVICTION_PROBES`] keys: an expired window or one still under its limit
//! goes (forgetting a partial count lifts no limit), a key that is *limited*
//! (its window full and not over) goes to the back instead, so eviction
//! never ends an active limit early. If every probed key is limited, the new
//! key is let through uncounted (the shard is full of limited addresses).
//! So every call does O(1) work, never a scan.

use super::clock::Timestamp;
use crate::config::RateLimitConfig;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A refused call: the limit and when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub limit: u32,
    pub reset_at: Timestamp,
}

/// Most keys kept, over all shards.
pub const MAX_KEYS: usize = 100_000;
/// Independent maps (and locks).
pub const SHARDS: usize = 16;
/// Most keys a new key looks at to make room.
pub const EVICTION_PROBES: usize = 4;

type Key = (IpAddr, String);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    calls: u32,
}

#[derive(Default)]
struct Shard {
    windows: HashMap<Key, Window>,
    /// Every key of `windows`, once, oldest arrival first.
    order: VecDeque<Key>,
}

/// The counters.
pub struct RateLimiter {
    cfg: RateLimitConfig,
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
    /// Keys looked at to make room, ever (a measure of the work done).
    probes: AtomicU64,
}

impl RateLimiter {
    /// Counters with the given limits.
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self::with_capacity(cfg, MAX_KEYS)
    }

    /// Counters holding at most about `capacity` keys (rounded up to a
    /// multiple of [`SHARDS`]).
    pub fn with_capacity(cfg: RateLimitConfig, capacity: usize) -> Self {
        Self {
            cfg,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            probes: AtomicU64::new(0),
        }
    }

    /// Whether limiting is switched on (`RATE_LIMIT_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).windows.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys looked at to make room so far (each call looks at no more than
    /// [`EVICTION_PROBES`]).
    pub fn eviction_probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    fn end(&self, start: Timestamp) -> Timestamp {
        let window = chrono::Duration::from_std(self.cfg.window).unwrap_or(chrono::Duration::MAX);
        start
            .checked_add_signed(window)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// Whether a window refuses calls at `now`.
    fn limits(&self, w: &Window, now: Timestamp) -> bool {
        w.calls >= self.cfg.calls && self.end(w.start) > now
    }

    /// Makes room for one key in a full shard; false if every key probed is limited.
    fn make_room(&self, shard: &mut Shard, now: Timestamp) -> bool {
        for _ in 0..EVICTION_PROBES {
            let Some(key) = shard.order.pop_front() else {
                return true;
            };
            self.probes.fetch_add(1, Ordering::Relaxed);
            match shard.windows.get(&key) {
                Some(w) if self.limits(w, now) => shard.order.push_back(key),
                _ => {
                    shard.windows.remove(&key);
                    return true;
                }
            }
        }
        false
    }

    /// Counts a call to `route` from `ip`; `Err` when it is over the limit.
    /// Callers check [`RateLimiter::is_enabled`] first.
    pub fn hit(&self, ip: IpAddr, route: &str, now: Timestamp) -> Result<(), Limited> {
        let key: Key = (ip, route.to_string());
        let index = (self.hasher.hash_one(&key) as usize) % SHARDS;
        let mut shard = lock(&self.shards[index]);
        let shard = &mut *shard;
        if !shard.windows.contains_key(&key) {
            if shard.windows.len() >= self.per_shard && !self.make_room(shard, now) {
                // Full of limited keys: let this one through uncounted.
                return Ok(());
            }
            shard.order.push_back(key.clone());
            shard.windows.insert(
                key.clone(),
                Window {
                    start: now,
                    calls: 0,
                },
            );
        }
        let Some(w) = shard.windows.get_mut(&key) else {
            return Ok(());
        };
        if self.end(w.start) <= now {
            *w = Window {
                start: now,
                calls: 0,
            };
        }
        if w.calls >= self.cfg.calls {
            return Err(Limited {
                limit: self.cfg.calls,
                reset_at: self.end(w.start),
            });
        }
        w.calls += 1;
        Ok(())
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(capacity: usize) -> RateLimiter {
        RateLimiter::with_capacity(
            RateLimitConfig {
                enabled: true,
                calls: 3,
                window: Duration::from_secs(60),
            },
            capacity,
        )
    }

    fn addr(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    fn a_flood_of_keys_never_lifts_an_active_limit_and_stays_bounded() {
        let capacity = 1_600;
        let l = limiter(capacity);
        let now = chrono::Utc::now();
        let attacker = addr(1);
        for _ in 0..3 {
            l.hit(attacker, "login", now).expect("under the limit");
        }
        assert!(l.hit(attacker, "login", now).is_err());
        // A flood of 50 times the capacity in fresh addresses, within the window.
        let flood = 50 * capacity as u32;
        for i in 0..flood {
            let _ = l.hit(addr(1_000 + i), "login", now);
            assert!(l.len() <= capacity, "grew to {} keys", l.len());
        }
        let limited = l.hit(attacker, "login", now).expect_err("still limited");
        assert_eq!(limited.reset_at, now + chrono::Duration::seconds(60));
        // O(1) work per call: never more than EVICTION_PROBES keys looked at.
        let per_call = l.eviction_probes() as f64 / f64::from(flood);
        eprintln!("{flood} fresh keys over a capacity of {capacity}: {} keys held, {per_call:.2} keys probed per call", l.len());
        assert!(l.eviction_probes() <= u64::from(flood) * EVICTION_PROBES as u64);
        assert!(per_call <= 1.5, "{per_call} probes per call");
        // Once its window is over, the limit ends as usual.
        assert!(l
            .hit(attacker, "login", now + chrono::Duration::seconds(60))
            .is_ok());
    }

    #[test]
    fn limited_keys_filling_a_shard_let_newcomers_through_uncounted() {
        let l = limiter(SHARDS);
        let now = chrono::Utc::now();
        let mut limited = Vec::new();
        for i in 0..(20 * SHARDS as u32) {
            for _ in 0..3 {
                let _ = l.hit(addr(i), "r", now);
            }
            if l.hit(addr(i), "r", now).is_err() {
                limited.push(addr(i));
            }
        }
        assert!(l.len() <= SHARDS);
        // Every key still held is limited, and stays so.
        let held = limited
            .iter()
            .filter(|a| l.hit(**a, "r", now).is_err())
            .count();
        assert!(held > 0);
        assert!(l.len() <= SHARDS);
    }
}

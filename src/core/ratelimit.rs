//! A fixed-window request counter per (client address, route), as
//! Rocket.Chat's REST rate limiter: at most `calls` per `window`, counted from
//! the first call of the window. Kept in process.

use super::clock::Timestamp;
use crate::config::RateLimitConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// A refused call: the limit and when the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub limit: u32,
    pub reset_at: Timestamp,
}

/// Keeps the map from growing without bound under many addresses.
const MAX_KEYS: usize = 100_000;

/// The counters.
pub struct RateLimiter {
    cfg: RateLimitConfig,
    windows: Mutex<HashMap<(IpAddr, String), (Timestamp, u32)>>,
}

impl RateLimiter {
    /// Counters with the given limits.
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            cfg,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether limiting is switched on (`RATE_LIMIT_ENABLED`).
    pub fn is_enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Counts a call to `route` from `ip`; `Err` when it is over the limit.
    /// Callers check [`RateLimiter::is_enabled`] first.
    pub fn hit(&self, ip: IpAddr, route: &str, now: Timestamp) -> Result<(), Limited> {
        let window = chrono::Duration::from_std(self.cfg.window).unwrap_or(chrono::Duration::MAX);
        // Never past the calendar's end (configuration keeps it far from it).
        let end = |start: Timestamp| {
            start
                .checked_add_signed(window)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        };
        let mut map = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, (start, _)| end(*start) > now);
        }
        let entry = map.entry((ip, route.to_string())).or_insert((now, 0));
        if end(entry.0) <= now {
            *entry = (now, 0);
        }
        if entry.1 >= self.cfg.calls {
            return Err(Limited {
                limit: self.cfg.calls,
                reset_at: end(entry.0),
            });
        }
        entry.1 += 1;
        Ok(())
    }
}

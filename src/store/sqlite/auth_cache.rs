//! The answers of `find_by_token` kept in memory, so that a request
//! presenting a token it presented a moment ago reads no SQLite page.
//!
//! **Never stale for this process's writes.** Every write goes through the
//! store's one writer, which bumps a generation after each batch (committed
//! or not) and before answering its jobs. A reader takes the generation
//! *before* its read and files the answer under it; an answer is served only
//! while the generation is still the one it was read under. So a logout, a
//! revocation, a deactivation, a role or password change acknowledged to
//! anyone is seen by every request that starts after it, as without the
//! cache.
//!
//! **Bounded for other processes.** Another process writing the same file
//! (the operator CLI while the server runs) does not bump this generation:
//! an entry is served for at most [`TTL`] after its read, so such a change
//! is seen within that long.
//!
//! Only found tokens are kept (a spray of random tokens fills nothing), at
//! most [`CAPACITY`] of them.

use crate::core::model::{LoginToken, User};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an answer is served at most (the bound for writes made by
/// other processes on the same file).
pub const TTL: Duration = Duration::from_secs(1);
/// Most answers kept.
pub const CAPACITY: usize = 10_000;

struct Entry {
    generation: u64,
    read_at: Instant,
    user: User,
    token: LoginToken,
}

/// See the module documentation.
pub(super) struct AuthCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the entries: they hold token hashes and password hashes.
        f.debug_struct("AuthCache")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AuthCache {
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// The generation to read under: take it before the read.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The writer finished a batch: every answer read before is stale.
    pub(super) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The answer for `hash`, if read under the current generation less than
    /// the TTL before `now`.
    pub(super) fn get(&self, hash: &str, now: Instant) -> Option<(User, LoginToken)> {
        let current = self.generation();
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(hash)?;
        (e.generation == current && now.saturating_duration_since(e.read_at) < self.ttl)
            .then(|| (e.user.clone(), e.token.clone()))
    }

    /// Files an answer read under `generation` at `read_at`.
    pub(super) fn put(
        &self,
        hash: &str,
        generation: u64,
        read_at: Instant,
        user: &User,
        token: &LoginToken,
    ) {
        if generation != self.generation() || self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(hash) {
            entries.retain(|_, e| {
                e.generation == generation
                    && read_at.saturating_duration_since(e.read_at) < self.ttl
            });
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(
            hash.to_string(),
            Entry {
                generation,
                read_at,
                user: user.clone(),
                token: token.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::credential::TokenHash;
    use crate::core::model::ResumeToken;

    fn answer(id: &str) -> (User, LoginToken) {
        let t = chrono::Utc::now();
        let user = User {
            id: id.into(),
            created_at: t,
            updated_at: t,
            kind: "user".into(),
            username: Some(format!("user-{id}")),
            name: None,
            emails: Vec::new(),
            roles: vec!["user".into()],
            permissions: Vec::new(),
            active: true,
            require_password_change: false,
            password_bcrypt: None,
            last_login: None,
        };
        let token = LoginToken::Resume(ResumeToken {
            when: t,
            hashed_token: TokenHash::from_stored(format!("h-{id}")),
        });
        (user, token)
    }

    #[test]
    fn an_answer_is_served_only_under_its_generation_and_within_the_ttl() {
        let cache = AuthCache::new(TTL);
        let t0 = Instant::now();
        let (user, token) = answer("u1");
        let g = cache.generation();
        cache.put("h", g, t0, &user, &token);
        assert_eq!(cache.get("h", t0).map(|(u, _)| u.id), Some("u1".into()));
        // Another process's write is seen once the TTL has passed.
        assert!(cache.get("h", t0 + TTL).is_none());
        // This process's write is seen at once.
        cache.bump();
        assert!(cache.get("h", t0).is_none());
        // An answer read before a write is never filed after it.
        cache.put("h", g, t0, &user, &token);
        assert!(cache.get("h", t0).is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = AuthCache::new(TTL);
        let now = Instant::now();
        let g = cache.generation();
        for i in 0..CAPACITY + 10 {
            let (user, token) = answer(&i.to_string());
            cache.put(&format!("h{i}"), g, now, &user, &token);
        }
        let len = cache.entries.lock().map(|e| e.len()).unwrap_or(usize::MAX);
        assert!(len <= CAPACITY, "{len}");
    }
}

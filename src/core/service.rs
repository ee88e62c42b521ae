//! `Core`: the operations both dialects are made of. Dialects parse requests,
//! check their own preconditions in their own order, call these, and shape the
//! answers; the rules themselves (token lifetime, the cap, password checks,
//! permissions, revocation on deactivation) live here once.

use super::clock::{Clock, Timestamp};
use super::error::CoreError;
use super::ids;
use super::model::*;
use super::password::{self, PasswordInput};
use super::permissions::{PermissionCache, API_BYPASS_RATE_LIMIT};
use super::ratelimit::{Limited, RateLimiter};
use super::throttle::{Blocked, LoginThrottle};
use super::token::{hash_token, last_part};
use crate::config::Config;
use crate::store::{PatInsert, Store, UniqueField, UserKey, UserPatch};
use chrono::DateTime;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// An authenticated caller and the token it used.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// Hash of the token presented, so `logout` can remove exactly it.
    pub token_hash: String,
}

/// A freshly issued token. The plain token exists only here and in the response.
#[derive(Debug, Clone)]
pub struct Minted {
    pub user_id: String,
    pub token: String,
}

/// Outcome of a password login.
#[derive(Debug)]
pub enum PasswordLogin {
    Ok(Box<User>),
    /// Unknown user, wrong password, no password or inactive: all alike to the client.
    Failed,
    Blocked(Blocked),
}

/// A user to create. Validation of the fields is the dialect's job.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Plain password; hashed here.
    pub password: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub require_password_change: bool,
    /// `user`, `bot` or `app`.
    pub kind: String,
}

/// Splits a store result: a uniqueness clash is the caller's business
/// outcome (`Ok(Err(field))`), anything else a failure.
fn unique<T>(result: crate::store::StoreResult<T>) -> Result<Result<T, UniqueField>, CoreError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(crate::store::StoreError::Duplicate(field)) => Ok(Err(field)),
        Err(e) => Err(e.into()),
    }
}

/// The shared core of tokend.
pub struct Core {
    pub config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    permissions: PermissionCache,
    throttle: LoginThrottle,
    rate_limiter: RateLimiter,
    /// Last `when` handed out, so login tokens minted by this process get
    /// distinct, increasing timestamps and the cap keeps exactly the newest.
    last_stamp: AtomicI64,
}

impl Core {
    /// A core over a store and a clock.
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            permissions: PermissionCache::new(config.permissions_cache),
            throttle: LoginThrottle::new(config.login_block.clone()),
            rate_limiter: RateLimiter::new(config.rate_limit.clone()),
            config,
            store,
            clock,
            last_stamp: AtomicI64::new(0),
        }
    }

    /// The store, for operations that are a single store call.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A millisecond timestamp strictly greater than any this process issued before.
    fn stamp(&self) -> Timestamp {
        let now = self.now().timestamp_millis();
        let mut last = self.last_stamp.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.last_stamp.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return DateTime::from_timestamp_millis(next).unwrap_or_else(|| self.now())
                }
                Err(seen) => last = seen,
            }
        }
    }

    /// When a login token minted at `when` stops working (the last
    /// representable instant when the configured lifetime reaches past it).
    pub fn login_token_expiry(&self, when: Timestamp) -> Timestamp {
        chrono::Duration::from_std(self.config.login_expiration)
            .ok()
            .and_then(|lifetime| when.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// Whether a stored token still authenticates at `now` (PATs never expire).
    pub fn token_is_live(&self, token: &LoginToken, now: Timestamp) -> bool {
        match token {
            LoginToken::Resume(r) => self.login_token_expiry(r.when) > now,
            LoginToken::Personal(_) => true,
        }
    }

    // --- authentication ---------------------------------------------------------

    /// Finds the active user holding this login token or PAT, unexpired.
    /// With `user_id` the token must belong to that user (Rocket.Chat headers);
    /// without, any user (`login` with `resume`).
    pub async fn authenticate_token(
        &self,
        user_id: Option<&str>,
        token: &str,
    ) -> Result<Option<Caller>, CoreError> {
        let hashed = hash_token(token);
        let Some(user) = self.store.find_user_by_token_hash(user_id, &hashed).await? else {
            return Ok(None);
        };
        let now = self.now();
        let live = user
            .token_by_hash(&hashed)
            .is_some_and(|t| self.token_is_live(t, now));
        if !live || !user.active {
            return Ok(None);
        }
        Ok(Some(Caller {
            user,
            token_hash: hashed,
        }))
    }

    /// Checks a password for the user found by `key`, with failed-login
    /// blocking keyed on `login` (the name as typed) and `ip`.
    pub async fn password_login(
        &self,
        key: &UserKey,
        login: &str,
        password: &PasswordInput,
        ip: Option<IpAddr>,
    ) -> Result<PasswordLogin, CoreError> {
        let now = self.now();
        if let Err(blocked) = self.throttle.check(login, ip, now) {
            return Ok(PasswordLogin::Blocked(blocked));
        }
        let user = self.store.find_user(key).await?;
        let hash = user.as_ref().and_then(|u| u.password_bcrypt.as_deref());
        let matches = password::verify_password(password, hash).await?;
        match user {
            Some(user) if matches && user.active => {
                self.throttle.success(login, ip);
                Ok(PasswordLogin::Ok(Box::new(user)))
            }
            _ => {
                self.throttle.failure(login, ip, now);
                Ok(PasswordLogin::Failed)
            }
        }
    }

    /// Counts a call to `route` from `ip` against the rate limit. Users with
    /// `api-bypass-rate-limit` are neither counted nor limited; calls from an
    /// unknown address, or with the limiter off, are not limited.
    pub async fn rate_limit(
        &self,
        ip: Option<IpAddr>,
        route: &str,
        user: Option<&User>,
    ) -> Result<Result<(), Limited>, CoreError> {
        let Some(ip) = ip else { return Ok(Ok(())) };
        if !self.rate_limiter.is_enabled() {
            // Switched off: not even the bypass permission is worth a lookup.
            return Ok(Ok(()));
        }
        if let Some(user) = user {
            if self.has_permission(user, API_BYPASS_RATE_LIMIT).await? {
                return Ok(Ok(()));
            }
        }
        Ok(self.rate_limiter.hit(ip, route, self.now()))
    }

    // --- login tokens -----------------------------------------------------------

    /// Issues a login token for the user found by `key`, keeping the cap.
    /// `None` if there is no such user.
    pub async fn mint_login_token(&self, key: &UserKey) -> Result<Option<Minted>, CoreError> {
        let token = ids::new_token();
        let entry = ResumeToken {
            when: self.stamp(),
            hashed_token: hash_token(&token),
        };
        let user_id = self
            .store
            .push_login_token(key, &entry, self.config.max_resume_login_tokens)
            .await?;
        Ok(user_id.map(|user_id| Minted { user_id, token }))
    }

    /// Removes one login token or PAT by its hash.
    pub async fn revoke_token(&self, user_id: &str, token_hash: &str) -> Result<bool, CoreError> {
        Ok(self.store.remove_login_token(user_id, token_hash).await?)
    }

    // --- personal access tokens -------------------------------------------------

    fn new_pat(&self, name: &str, bypass_two_factor: bool) -> (String, PersonalAccessToken) {
        let token = ids::new_token();
        let pat = PersonalAccessToken {
            hashed_token: hash_token(&token),
            created_at: self.now(),
            last_token_part: last_part(&token, 6),
            name: name.to_string(),
            bypass_two_factor,
        };
        (token, pat)
    }

    /// Creates a named PAT; `Ok(Err(NameTaken|NoSuchUser))` when it cannot.
    pub async fn create_pat(
        &self,
        user_id: &str,
        name: &str,
        bypass_two_factor: bool,
    ) -> Result<Result<String, PatInsert>, CoreError> {
        let (token, pat) = self.new_pat(name, bypass_two_factor);
        match self.store.add_personal_access_token(user_id, &pat).await? {
            PatInsert::Inserted => Ok(Ok(token)),
            other => Ok(Err(other)),
        }
    }

    /// Replaces the named PAT by a new one with the same name and 2FA choice;
    /// `None` if the user has no PAT of that name.
    pub async fn regenerate_pat(
        &self,
        user: &User,
        name: &str,
    ) -> Result<Option<String>, CoreError> {
        let Some(old) = user.personal_access_tokens().find(|p| p.name == name) else {
            return Ok(None);
        };
        let (token, pat) = self.new_pat(name, old.bypass_two_factor);
        let replaced = self
            .store
            .replace_personal_access_token(&user.id, &pat)
            .await?;
        Ok(replaced.then_some(token))
    }

    // --- permissions ------------------------------------------------------------

    /// Whether the user holds a permission (through a role or directly).
    pub async fn has_permission(&self, user: &User, permission: &str) -> Result<bool, CoreError> {
        Ok(self.permissions.has(self.store(), user, permission).await?)
    }

    /// The user's effective permissions.
    pub async fn effective_permissions(&self, user: &User) -> Result<Vec<String>, CoreError> {
        Ok(self.permissions.effective(self.store(), user).await?)
    }

    /// Sets which roles hold a permission.
    pub async fn set_permission_roles(&self, id: &str, roles: &[String]) -> Result<(), CoreError> {
        self.store.set_permission_roles(id, roles).await?;
        self.permissions.invalidate();
        Ok(())
    }

    // --- users ------------------------------------------------------------------

    /// Creates a user; `Ok(Err(field))` when the username or email is taken.
    pub async fn create_user(&self, new: NewUser) -> Result<Result<User, UniqueField>, CoreError> {
        let password_bcrypt = match &new.password {
            Some(p) => Some(password::hash_password(p).await?),
            None => None,
        };
        let now = self.now();
        let user = User {
            id: ids::new_user_id(),
            created_at: now,
            updated_at: now,
            kind: if new.kind.is_empty() {
                "user".into()
            } else {
                new.kind
            },
            username: Some(new.username),
            name: new.name,
            emails: new
                .email
                .into_iter()
                .map(|address| Email {
                    address,
                    verified: new.email_verified,
                })
                .collect(),
            roles: new.roles,
            permissions: new.permissions,
            active: new.active,
            require_password_change: new.require_password_change,
            password_bcrypt,
            login_tokens: Vec::new(),
        };
        Ok(unique(self.store.insert_user(&user).await)?.map(|()| user))
    }

    /// Applies a patch. Deactivating a user (or `clear_login_tokens`) ends every
    /// token and session it has. `Ok(Err(field))` on a uniqueness clash.
    pub async fn update_user(
        &self,
        id: &str,
        mut patch: UserPatch,
    ) -> Result<Result<Option<User>, UniqueField>, CoreError> {
        let deactivating = patch.active == Some(false);
        if deactivating {
            patch.clear_login_tokens = true;
        }
        let updated = match unique(self.store.update_user(id, &patch, self.now()).await)? {
            Ok(u) => u,
            Err(field) => return Ok(Err(field)),
        };
        if updated.is_some() && deactivating {
            self.end_saymon_credentials(id).await?;
        }
        Ok(Ok(updated))
    }

    /// Whether `user` is an active admin and no other active admin exists:
    /// deactivating, deleting or demoting it would leave nobody to administer
    /// tokend, so neither dialect allows it.
    pub async fn is_last_active_admin(&self, user: &User) -> Result<bool, CoreError> {
        let is_admin = user.active && user.roles.iter().any(|r| r == "admin");
        Ok(is_admin && !self.store.other_active_admin_exists(&user.id).await?)
    }

    /// Sets a new password (hashing it).
    pub async fn set_password(&self, id: &str, plain: &str) -> Result<Option<User>, CoreError> {
        let patch = UserPatch {
            password_bcrypt: Some(password::hash_password(plain).await?),
            ..UserPatch::default()
        };
        Ok(self.store.update_user(id, &patch, self.now()).await?)
    }

    /// Deletes a user and everything that authenticates as it.
    pub async fn delete_user(&self, id: &str) -> Result<bool, CoreError> {
        let deleted = self.store.delete_user(id).await?;
        // Also when the user was already gone: leave no orphans behind.
        self.end_saymon_credentials(id).await?;
        Ok(deleted)
    }

    /// Removes every login token and PAT of the user (Rocket.Chat `users.logout`).
    pub async fn logout_everywhere(&self, id: &str) -> Result<bool, CoreError> {
        let patch = UserPatch {
            clear_login_tokens: true,
            ..UserPatch::default()
        };
        Ok(self
            .store
            .update_user(id, &patch, self.now())
            .await?
            .is_some())
    }

    async fn end_saymon_credentials(&self, id: &str) -> Result<(), CoreError> {
        self.store.delete_api_token(id).await?;
        self.store.delete_sessions_of(id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::SystemClock;
    use crate::store::MemoryStore;

    #[test]
    fn an_expiry_beyond_the_calendar_never_comes() {
        // 10^8 days is a valid LOGIN_EXPIRATION_DAYS, but past chrono's last date.
        let config = Config {
            login_expiration: std::time::Duration::from_secs(100_000_000 * 24 * 60 * 60),
            ..Config::default()
        };
        let core = Core::new(
            Arc::new(config),
            Arc::new(MemoryStore::new()),
            Arc::new(SystemClock),
        );
        let now = core.now();
        let token = LoginToken::Resume(ResumeToken {
            when: now,
            hashed_token: "h".into(),
        });
        assert!(core.token_is_live(&token, now));
    }
}

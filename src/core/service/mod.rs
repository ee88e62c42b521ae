//! `Core`: the one door. Dialects parse a request, call one operation here,
//! and shape its outcome; every rule (authentication, token lifetime and the
//! cap, password checks and changes, permissions, revocation, the last-admin
//! guard) lives behind these methods, and only they reach the store.
//!
//! Each operation returns `Result<Outcome, CoreError>`: the outcome enum is
//! the business answer, `CoreError` only an infrastructure failure.
//!
//! * [`auth`]: authentication, login, rate limiting, client address.
//! * [`tokens`]: login tokens, `users.createToken`, personal access tokens.
//! * [`users`]: users CRUD, deactivation, deletion, the last-admin guard.
//! * [`saymon`]: SAYMON API tokens and sessions.
//! * [`server`]: what the server tells about itself (`/api/info`).
//! * [`twofactor`]: second factors (TOTP, emailed codes), the check of
//!   password logins and protected actions, enrolment.

pub mod auth;
pub mod saymon;
pub mod server;
pub mod tokens;
pub mod twofactor;
pub mod users;

pub use auth::{Authenticated, Blocked, Busy, Login, RateLimit, Refused};
pub use saymon::OpenSession;
pub use server::ServerInfo;
pub use tokens::{CreatePat, CreateToken, Minted};
pub use twofactor::{
    BackupCodes, Challenge, Confirmed, EmailUnavailable, Method, SecondFactorRefusal,
    SendEmailCode, TotpCodes, TotpDisable, TotpEnable,
};
pub use users::{
    CreateUser, DeleteUser, Denied, EmailChange, LogoutUser, NewUser, ReadUser, SetActive,
    UpdateUser, UserChanges, UserListing, UserPage,
};

use super::clock::{Clock, Timestamp};
use super::credential::Caller;
use super::error::CoreError;
use super::mailer::{Mailer, SmtpMailer};
use super::password::Bcrypt;
use super::permissions::{Granted, Perm, Permission, PermissionCache};
use super::ratelimit::RateLimiter;
use super::throttle::LoginThrottle;
use crate::config::Config;
use crate::store::{Store, StoreError, StoreResult, UniqueField};
use chrono::DateTime;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The shared core of tokend.
pub struct Core {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    permissions: PermissionCache,
    throttle: LoginThrottle,
    rate_limiter: RateLimiter,
    /// The bound on concurrent password checks and hashing.
    bcrypt: Bcrypt,
    /// Sends emailed two-factor codes; `None` without `SMTP_HOST`.
    mailer: Option<Arc<dyn Mailer>>,
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
            bcrypt: Bcrypt::new(config.password_checks_max),
            mailer: mailer_for(&config),
            config,
            store,
            clock,
            last_stamp: AtomicI64::new(0),
        }
    }

    /// The configuration the core was built with (for start-up and the
    /// server; dialects ask the core's operations instead).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store, for the core's own modules (seeding).
    pub(in crate::core) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether the store answers (readiness).
    pub async fn ready(&self) -> Result<(), CoreError> {
        Ok(self.store.ping().await?)
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

    // --- permissions ------------------------------------------------------------

    /// Whether the caller holds a permission (through a role or directly).
    pub async fn holds(&self, caller: &Caller, permission: Permission) -> Result<bool, CoreError> {
        Ok(self
            .permissions
            .has(self.store.as_ref(), &caller.user, permission)
            .await?)
    }

    /// The capability to act with permission `P`, if the caller holds it.
    pub async fn authorize<P: Perm>(
        &self,
        caller: &Caller,
    ) -> Result<Option<Granted<P>>, CoreError> {
        Ok(self
            .holds(caller, P::PERMISSION)
            .await?
            .then(|| Granted::new(caller.clone())))
    }

    /// The caller's effective permissions, sorted.
    pub async fn effective_permissions(&self, caller: &Caller) -> Result<Vec<String>, CoreError> {
        Ok(self
            .permissions
            .effective(self.store.as_ref(), &caller.user)
            .await?)
    }

    /// Sets which roles hold a permission (operators and tests).
    pub async fn set_permission_roles(
        &self,
        permission: &str,
        roles: &[String],
    ) -> Result<(), CoreError> {
        self.store.set_permission_roles(permission, roles).await?;
        self.permissions.invalidate();
        Ok(())
    }

    /// Whether every one of these role ids exists.
    pub async fn roles_exist(&self, roles: &[String]) -> Result<bool, CoreError> {
        let known = self.store.roles().await?;
        Ok(roles.iter().all(|r| known.iter().any(|k| k.id == *r)))
    }
}

/// The SMTP mailer `SMTP_*` configure, if any (a configuration lettre
/// rejects is logged and leaves email codes unavailable, which they say).
fn mailer_for(config: &Config) -> Option<Arc<dyn Mailer>> {
    let smtp = config.smtp.as_ref()?;
    match SmtpMailer::new(smtp) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::error!(error = %e, "SMTP is configured but unusable: email codes are unavailable");
            None
        }
    }
}

/// Splits a store result: a uniqueness clash is the caller's business
/// outcome (`Err(Ok(field))`), anything else a failure.
fn unique<T>(result: StoreResult<T>) -> Result<Result<T, UniqueField>, CoreError> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(StoreError::Duplicate(field)) => Ok(Err(field)),
        Err(e) => Err(e.into()),
    }
}

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
pub mod operator;
pub mod roles;
pub mod saymon;
pub mod server;
pub mod tokens;
pub mod twofactor;
pub mod users;

pub use auth::{Authenticated, Blocked, Busy, Login, PendingLogin, RateLimit, Refused};
pub use operator::{OperatorOutcome, Revoke};
pub use roles::{PublicRoles, RoleMembership, UpdatePermissions, UsersInRole};
pub use saymon::{IssueApiToken, OpenSession};
pub use server::ServerInfo;
pub use tokens::{CreatePat, CreateToken, Minted, PatExpiry, UserPats};
pub use twofactor::{
    BackupCodes, Challenge, Confirmed, EmailUnavailable, Method, SecondFactorRefusal,
    SendEmailCode, TotpCodes, TotpDisable, TotpEnable,
};
pub use users::{
    Browse, BrowseUsers, CreateUser, DeleteUser, Denied, EmailChange, LogoutUser, NewUser,
    ReadUser, Register, SetActive, UpdateUser, UserChanges, UserListing, UserPage,
};

use super::audit::{AuditEvent, AuditKind, AuditPage, AuditQuery, RequestMeta, CLI_ACTOR};
use super::clock::{Clock, Timestamp};
use super::credential::Caller;
use super::error::CoreError;
use super::mailer::{Mailer, SmtpMailer};
use super::model::User;
use super::password::Bcrypt;
use super::permissions::{perm, Granted, Perm, Permission, PermissionCache, Snapshot};
use super::ratelimit::RateLimiter;
use super::throttle::LoginThrottle;
use crate::config::Config;
use crate::store::{Store, StoreError, StoreResult, UniqueField};
use chrono::DateTime;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
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
    /// The login-token lifetime in milliseconds: `LOGIN_EXPIRATION_DAYS`,
    /// or a shared Rocket.Chat database's `Accounts_LoginExpiration` read at
    /// start-up when that variable is unset.
    login_expiration_ms: AtomicI64,
    /// Sends emailed two-factor codes; `None` without `SMTP_HOST`.
    mailer: Option<Arc<dyn Mailer>>,
    /// Last `when` handed out, so login tokens minted by this process get
    /// distinct, increasing timestamps and the cap keeps exactly the newest.
    last_stamp: AtomicI64,
    /// Set when the process is shutting down: readiness answers no.
    draining: AtomicBool,
    /// When audit events past retention were last pruned (ms since epoch).
    last_prune: AtomicI64,
}

impl Core {
    /// A core over a store and a clock.
    pub fn new(config: Arc<Config>, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            permissions: PermissionCache::new(config.permissions_cache),
            throttle: LoginThrottle::new(config.login_block.clone()),
            rate_limiter: RateLimiter::new(config.rate_limit.clone()),
            bcrypt: Bcrypt::new(config.password_checks_max),
            login_expiration_ms: AtomicI64::new(
                i64::try_from(config.login_expiration.as_millis()).unwrap_or(i64::MAX),
            ),
            mailer: mailer_for(&config),
            config,
            store,
            clock,
            last_stamp: AtomicI64::new(0),
            draining: AtomicBool::new(false),
            last_prune: AtomicI64::new(0),
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

    /// Whether this instance should get traffic (readiness): not draining
    /// and the store answers.
    pub async fn ready(&self) -> Result<(), CoreError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(CoreError::Store(StoreError::Unavailable(
                "shutting down".into(),
            )));
        }
        Ok(self.store.ping().await?)
    }

    /// Starts a graceful shutdown: from now on readiness answers no, so a
    /// load balancer stops sending requests; every request is still served.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Adopts a shared Rocket.Chat database's `Accounts_LoginExpiration`
    /// (days) as the login-token lifetime unless `LOGIN_EXPIRATION_DAYS` is
    /// set (start-up). Answers the lifetime adopted, if any.
    pub(crate) async fn adopt_rc_login_expiration(&self) -> Result<Option<f64>, CoreError> {
        if self.config.login_expiration_set {
            return Ok(None);
        }
        let Some(days) = self.store.rc_login_expiration_days().await? else {
            return Ok(None);
        };
        let ms = days * 86_400_000.0;
        let max = crate::config::MAX_DURATION.as_millis() as f64;
        if !(ms.is_finite() && ms > 0.0 && ms <= max) {
            tracing::warn!(
                days,
                "ignoring Rocket.Chat's Accounts_LoginExpiration: out of range"
            );
            return Ok(None);
        }
        self.login_expiration_ms.store(ms as i64, Ordering::Relaxed);
        Ok(Some(days))
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

    // --- audit trail ------------------------------------------------------------

    /// Records one credential event: one structured log line (always), then
    /// the store. A store failure is logged, never the caller's failure (see
    /// [`crate::core::audit`] for why). `actor` `None` inside an operator
    /// command is the operator.
    pub(crate) async fn audit(
        &self,
        kind: AuditKind,
        actor: Option<&str>,
        target: Option<&str>,
        detail: Option<&str>,
    ) {
        let event = self.audit_event(kind, actor, target, detail);
        Self::log_audit(&event);
        let stored = self.store.record_audit_event(&event).await;
        self.audit_stored(&event, stored).await;
    }

    /// The event [`Self::audit`] records, built from the request in scope.
    /// Not yet logged: [`Self::log_audit`] writes its line once it happened.
    pub(crate) fn audit_event(
        &self,
        kind: AuditKind,
        actor: Option<&str>,
        target: Option<&str>,
        detail: Option<&str>,
    ) -> AuditEvent {
        let meta = RequestMeta::current();
        let actor = actor
            .map(str::to_string)
            .or_else(|| meta.operator.then(|| CLI_ACTOR.to_string()));
        let at = self.now();
        AuditEvent {
            id: super::ids::new_time_ordered_id(at.timestamp_millis()),
            at,
            expires_at: chrono::Duration::from_std(self.config.audit_retention)
                .ok()
                .and_then(|d| at.checked_add_signed(d))
                .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC),
            kind,
            actor,
            target: target.map(str::to_string),
            route: meta.route,
            address: meta.address.map(|a| a.to_string()),
            request_id: meta.request_id,
            outcome: kind.outcome().to_string(),
            detail: detail.map(str::to_string),
        }
    }

    /// An event's structured log line, written whatever becomes of its store
    /// write.
    pub(crate) fn log_audit(event: &AuditEvent) {
        tracing::info!(
            audit = event.kind.as_str(),
            actor = event.actor.as_deref().unwrap_or("-"),
            target_user = event.target.as_deref().unwrap_or("-"),
            route = event.route.as_deref().unwrap_or("-"),
            address = event.address.as_deref().unwrap_or("-"),
            request_id = event.request_id.as_deref().unwrap_or("-"),
            outcome = %event.outcome,
            detail = event.detail.as_deref().unwrap_or("-"),
            "audit event"
        );
    }

    /// After an event's store write: a failure is counted and logged (never
    /// the caller's failure), and old events are pruned when due.
    pub(crate) async fn audit_stored(&self, event: &AuditEvent, stored: StoreResult<()>) {
        if let Err(e) = stored {
            super::metrics::METRICS.audit_write_failures.inc();
            tracing::error!(error = %e, audit = event.kind.as_str(), "audit event not stored");
        }
        self.prune_audit_if_due(event.at).await;
    }

    /// Drops events past their retention, at most once an hour (MongoDB's
    /// TTL index does it too; SQLite has only this).
    async fn prune_audit_if_due(&self, now: Timestamp) {
        const EVERY_MS: i64 = 60 * 60 * 1000;
        let now_ms = now.timestamp_millis();
        let last = self.last_prune.load(Ordering::Relaxed);
        if now_ms - last < EVERY_MS
            || self
                .last_prune
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.store.prune_audit_events(now).await {
            tracing::warn!(error = %e, "pruning old audit events failed");
        }
    }

    /// A page of audit events (permission `view-audit-log`).
    pub async fn audit_events(
        &self,
        _grant: &Granted<perm::ViewAuditLog>,
        query: &AuditQuery,
    ) -> Result<AuditPage, CoreError> {
        let mut query = query.clone();
        query.offset = query.offset.min(super::validate::MAX_PAGE_NUMBER);
        query.count = query.count.min(super::validate::MAX_PAGE_NUMBER);
        let (events, total) = self.store.audit_events(&query).await?;
        Ok(AuditPage { events, total })
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
        self.store
            .set_permission_roles(permission, roles, self.now())
            .await?;
        self.permissions.invalidate();
        Ok(())
    }

    // --- the escalation rule ------------------------------------------------------

    /// Whether `target` holds a permission that `caller` lacks (counting
    /// only permissions tokend enforces). Nobody obtains a credential for,
    /// sets the password of, or changes the privileges of a user who
    /// outranks them: that would hand them the missing permissions.
    pub(crate) async fn outranks(&self, target: &User, caller: &User) -> Result<bool, CoreError> {
        Ok(self.permission_snapshot().await?.outranks(target, caller))
    }

    /// Whether turning `before` into `after` (other roles or permissions)
    /// gives it a permission `caller` does not hold: nobody grants what they
    /// do not hold, to others or to themselves.
    pub(crate) async fn escalates(
        &self,
        caller: &User,
        before: &User,
        after: &User,
    ) -> Result<bool, CoreError> {
        Ok(self
            .permission_snapshot()
            .await?
            .escalates(caller, before, after))
    }

    /// The permission map now, for several checks of one operation.
    pub(crate) async fn permission_snapshot(&self) -> Result<Snapshot, CoreError> {
        Ok(self.permissions.snapshot(self.store.as_ref()).await?)
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

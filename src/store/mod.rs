//! Storage: the store traits, split by concern, and their implementations.
//!
//! The traits are shaped by MongoDB's single-document atomicity: every method
//! that must hold under concurrency (the login-token cap, unique PAT names,
//! session touch, the last-admin guard) is one method, so each store can make it atomic its own way.
//! Only the core calls a store; tokens reach it only as [`TokenHash`]es.
//!
//! [`UserStore`] keeps users, [`TokenStore`] Rocket.Chat login tokens and
//! personal access tokens, [`SaymonStore`] SAYMON API tokens and sessions,
//! [`RoleStore`] roles and permissions, [`TwoFactorStore`] second factors,
//! [`LoginAttemptStore`] failed-login records, [`AuditStore`] the audit
//! trail; [`Store`] is all seven plus readiness.

pub mod mongo;
pub mod sqlite;

pub use crate::core::audit::{AuditEvent, AuditKind, AuditQuery};
use crate::core::credential::TokenHash;
pub use crate::core::model::UniqueField;
use crate::core::model::*;
use crate::core::twofactor::{EmailCode, TotpSecret, TwoFactorState};
pub use crate::core::userquery::UserQuery;
use async_trait::async_trait;

pub use mongo::MongoStore;
pub use sqlite::SqliteStore;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// Store failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backing database is unreachable or timed out; retrying later may work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A write broke a unique constraint.
    #[error("duplicate {0:?}")]
    Duplicate(UniqueField),
    /// Anything else: a bug or corrupt data.
    #[error("store error: {0}")]
    Internal(String),
}

/// Partial update of a user. `None` leaves a field alone. Made only by the core.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub username: Option<String>,
    pub name: Option<String>,
    pub emails: Option<Vec<Email>>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub active: Option<bool>,
    pub require_password_change: Option<bool>,
    pub password_bcrypt: Option<PasswordHash>,
    pub last_login: Option<Timestamp>,
    /// Remove every login token and personal access token in the same write.
    pub clear_login_tokens: bool,
}

impl UserPatch {
    /// Applies the patch to a user held in memory (every field but the
    /// tokens, which live apart), setting `updated_at`.
    pub fn apply(&self, user: &mut User, now: Timestamp) {
        let p = self.clone();
        if let Some(v) = p.username {
            user.username = Some(v);
        }
        if let Some(v) = p.name {
            user.name = Some(v);
        }
        if let Some(v) = p.emails {
            user.emails = v;
        }
        if let Some(v) = p.roles {
            user.roles = v;
        }
        if let Some(v) = p.permissions {
            user.permissions = v;
        }
        if let Some(v) = p.active {
            user.active = v;
        }
        if let Some(v) = p.require_password_change {
            user.require_password_change = v;
        }
        if let Some(v) = p.password_bcrypt {
            user.password_bcrypt = Some(v);
        }
        if let Some(v) = p.last_login {
            user.last_login = Some(v);
        }
        user.updated_at = now;
    }
}

/// Outcome of adding a personal access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatInsert {
    Inserted,
    /// The user already has a personal access token with that name.
    NameTaken,
    /// The user already has the most personal access tokens allowed.
    TooMany,
    NoSuchUser,
}

/// Whether a user write must keep an active admin. The core decides when to
/// ask for it (a patch that deactivates or demotes, a delete); the store
/// enforces it atomically with the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminGuard {
    /// Write as asked.
    Off,
    /// Refuse with [`LastAdmin`] if the user is, when written, an active
    /// admin (active, holding the `admin` role) that the write leaves not an
    /// active admin (or deletes) while no other active admin exists. The check
    /// and the write are one atomic step as far as the store can make it (see
    /// each store's documentation).
    KeepLastAdmin,
}

/// A guarded write was refused: it would have left no active admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastAdmin;

/// Users (Rocket.Chat's `users` collection, less the tokens).
///
/// Times are passed in by the caller (the core owns the clock); stores never
/// read the system time, so tests can move time and stores agree on it.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Number of users.
    async fn count_users(&self) -> StoreResult<u64>;
    /// Inserts a new user; `Duplicate` if the username or an email is taken (ignoring case).
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// Finds one user.
    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>>;
    /// A page of users sorted by username, and the total count.
    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)>;
    /// The page `query` names (its filter, its order then `_id`, its offset
    /// and count) and how many users pass the filter in all. Semantics per
    /// [`crate::core::userquery`]: both stores answer the same users in the
    /// same order. Only the core builds a query, from its validated AST.
    async fn find_users(&self, query: &UserQuery) -> StoreResult<(Vec<User>, u64)>;
    /// A page of the users holding any of these roles, sorted by username,
    /// and how many hold one in all.
    async fn users_in_roles(
        &self,
        roles: &[String],
        offset: u64,
        count: u64,
    ) -> StoreResult<(Vec<User>, u64)>;
    /// Applies a patch and returns the updated user (`None` if there is no
    /// such user); with [`AdminGuard::KeepLastAdmin`], writes nothing and
    /// answers `Err(LastAdmin)` if the patch would leave no active admin.
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
        guard: AdminGuard,
    ) -> StoreResult<Result<Option<User>, LastAdmin>>;
    /// Deletes a user; false if there was none. With
    /// [`AdminGuard::KeepLastAdmin`], keeps it and answers `Err(LastAdmin)` if
    /// it is the last active admin.
    async fn delete_user(
        &self,
        id: &str,
        guard: AdminGuard,
    ) -> StoreResult<Result<bool, LastAdmin>>;
}

/// Rocket.Chat login tokens and personal access tokens
/// (`services.resume.loginTokens` of a user).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The user holding a login token or PAT with this hash, and that one
    /// entry (never the user's other tokens); with `user_id`, only that user
    /// (Rocket.Chat's `{_id, 'services.resume.loginTokens.hashedToken'}`).
    async fn find_by_token(
        &self,
        user_id: Option<&str>,
        hashed_token: &TokenHash,
    ) -> StoreResult<Option<(User, LoginToken)>>;
    /// Every login token and PAT of a user (empty if there is no such user).
    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<LoginToken>>;
    /// The user's PAT with this name (reading only that one entry), if any.
    async fn find_personal_access_token(
        &self,
        user_id: &str,
        name: &str,
    ) -> StoreResult<Option<PersonalAccessToken>>;
    /// Adds a login token to the user found by `key`, then keeps only the newest
    /// `max` login tokens (by `when`; PATs neither count nor go). Must hold under
    /// concurrent calls for one user. Returns the user's id, `None` if no user.
    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>>;
    /// Removes every login token (not PATs) of a user but `keep`; returns how many.
    async fn remove_login_tokens(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64>;
    /// Removes the login token or PAT with this hash; false if it was not there.
    async fn remove_login_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
    ) -> StoreResult<bool>;
    /// Adds a PAT unless the user has one of that name, or already `max`
    /// PATs (`TooMany`). Must hold under concurrent calls for one user: the
    /// user never keeps more than `max`.
    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
        max: usize,
    ) -> StoreResult<PatInsert>;
    /// Replaces the PAT named `pat.name` by `pat`; false if there was none.
    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool>;
    /// Removes the PAT with this name; false if there was none.
    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool>;
    /// Sets `last_used_at = now` on the user's PAT with this hash, only if it
    /// was never used or last used before `stale_before` (one conditional
    /// write, so concurrent uses write once); true if it wrote.
    async fn touch_personal_access_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool>;
}

/// SAYMON credentials: one API token per user, and cookie sessions.
#[async_trait]
pub trait SaymonStore: Send + Sync {
    /// Sets the user's API token, replacing any previous one.
    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()>;
    /// The user's API token, if any.
    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>>;
    /// The API tokens of these users (those that have one), in one call.
    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>>;
    /// The API token with this hash, if any.
    async fn find_api_token(&self, hashed_token: &TokenHash) -> StoreResult<Option<ApiToken>>;
    /// Deletes the user's API token; false if there was none.
    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool>;
    /// Sets `last_used_at = now` on the API token with this hash, only if it
    /// was never used or last used before `stale_before`; true if it wrote.
    async fn touch_api_token(
        &self,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool>;

    /// Stores a new session, then keeps only the user's newest `max`
    /// sessions (by `created_at`): the oldest go, in the same write as far
    /// as the store can make it (see each store).
    async fn insert_session(&self, session: &Session, max: usize) -> StoreResult<()>;
    /// Atomically finds a session still valid at `now` (`expires_at > now` and
    /// `absolute_expires_at > now`), sets `last_seen_at = now` and
    /// `expires_at = new_expires_at`, and returns it updated.
    async fn touch_session(
        &self,
        hashed_id: &TokenHash,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>>;
    /// Deletes a session; false if there was none.
    async fn delete_session(&self, hashed_id: &TokenHash) -> StoreResult<bool>;
    /// Deletes every session of a user but `keep`; returns how many.
    async fn delete_sessions_of(&self, user_id: &str, keep: Option<&TokenHash>)
        -> StoreResult<u64>;
}

/// Roles and permissions (`rocketchat_roles`, `rocketchat_permissions`).
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Inserts the role unless one with its id exists (an operator's edits stay).
    async fn ensure_role(&self, role: &Role) -> StoreResult<()>;
    /// Inserts the permission with these roles unless it exists.
    async fn ensure_permission(&self, permission: &PermissionEntry) -> StoreResult<()>;
    /// Sets the roles of a permission, creating it if needed, and its
    /// `updated_at` to `now`.
    async fn set_permission_roles(
        &self,
        id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Every permission with its roles.
    async fn permissions(&self) -> StoreResult<Vec<PermissionEntry>>;
    /// Every role.
    async fn roles(&self) -> StoreResult<Vec<Role>>;
    /// Rocket.Chat's `Accounts_LoginExpiration` setting (days), when the
    /// store is a Rocket.Chat database that has one (`rocketchat_settings`);
    /// `None` otherwise (SQLite never has one).
    async fn rc_login_expiration_days(&self) -> StoreResult<Option<f64>>;
}

/// Second factors of a user, in Rocket.Chat's fields (`services.totp`,
/// `services.email2fa`, `services.emailCode`). Every "use once" method is one
/// atomic conditional write, so a code cannot be spent twice by racing requests.
/// Methods on a user that does not exist write nothing and answer false.
#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    /// What the store keeps about the user's second factors (empty for no user).
    async fn two_factor(&self, user_id: &str) -> StoreResult<TwoFactorState>;
    /// Starts a TOTP enrolment: TOTP off, `secret` pending (Rocket.Chat's
    /// `disable2FAAndSetTempSecretByUserId`: `services.totp = {enabled: false, tempSecret}`).
    async fn begin_totp(&self, user_id: &str, temp_secret: &TotpSecret) -> StoreResult<bool>;
    /// Finishes the enrolment of `secret` if it is still the pending one:
    /// TOTP on, with these backup code hashes, the pending secret gone.
    async fn enable_totp(
        &self,
        user_id: &str,
        secret: &TotpSecret,
        hashed_backup: &[String],
    ) -> StoreResult<bool>;
    /// Turns TOTP off (`services.totp = {enabled: false}`); false if it was not on.
    async fn disable_totp(&self, user_id: &str) -> StoreResult<bool>;
    /// Replaces the backup codes while TOTP is on; false otherwise.
    async fn set_backup_codes(&self, user_id: &str, hashed_backup: &[String]) -> StoreResult<bool>;
    /// Removes one backup code if TOTP is on and the code is still there:
    /// true exactly once per code.
    async fn use_backup_code(&self, user_id: &str, hashed: &str) -> StoreResult<bool>;
    /// Sets `services.email2fa.enabled`.
    async fn set_email_two_factor(&self, user_id: &str, enabled: bool) -> StoreResult<bool>;
    /// Keeps a newly emailed code (replacing any previous one, attempts 0),
    /// or with `None` removes the code.
    async fn set_email_code(&self, user_id: &str, code: Option<&EmailCode>) -> StoreResult<()>;
    /// Removes the emailed code if it is still the one with this hash: true
    /// exactly once per code.
    async fn use_email_code(&self, user_id: &str, hash: &str) -> StoreResult<bool>;
    /// Counts a wrong emailed code (`services.emailCode.attempts += 1`).
    async fn count_email_code_failure(&self, user_id: &str) -> StoreResult<()>;
}

/// Failed-login records, shared by every tokend on the same database (on
/// MongoDB with Rocket.Chat too: its `rocketchat_server_events`). The core
/// states the rule (keys, limits, windows, see `core::throttle`); the store
/// counts and reserves atomically.
#[async_trait]
pub trait LoginAttemptStore: Send + Sync {
    /// Records `attempt` as a failed login, in one atomic step with the
    /// check: unless, counting it, the account's failures after
    /// `limits.user_since` and after its latest successful login exceed
    /// `limits.user_attempts`, or the address's failures after
    /// `limits.ip_since` exceed `limits.ip_attempts`: then nothing stays
    /// recorded and the answer says which (the account first). A record
    /// counts for the account when its user id or its username is the
    /// attempt's. Under concurrent callers, of any process on the same
    /// database, no key ever has more records counted than its limit.
    async fn reserve_login_attempt(
        &self,
        attempt: &LoginAttempt,
        limits: &AttemptLimits,
    ) -> StoreResult<Option<BlockScope>>;
    /// The reserved attempt `id` succeeded: it becomes the account's
    /// successful login at `now`, so the account's earlier failures stop
    /// counting (the address's still count).
    async fn login_attempt_succeeded(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// Withdraws the reserved attempt `id` (the check could not run): it
    /// counts for nothing.
    async fn withdraw_login_attempt(&self, id: &str) -> StoreResult<()>;
}

/// The audit trail (SQLite `audit_events`, MongoDB `tokend_audit`).
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one event.
    async fn record_audit_event(&self, event: &AuditEvent) -> StoreResult<()>;
    /// The events matching the query, newest first (then by id), and how
    /// many match in all.
    async fn audit_events(&self, query: &AuditQuery) -> StoreResult<(Vec<AuditEvent>, u64)>;
    /// Deletes the events whose `expires_at` is not after `now`; returns how many.
    async fn prune_audit_events(&self, now: Timestamp) -> StoreResult<u64>;
}

/// Persistent state of tokend: every concern, plus readiness.
/// Implementations: [`SqliteStore`] and [`MongoStore`].
#[async_trait]
pub trait Store:
    UserStore
    + TokenStore
    + SaymonStore
    + RoleStore
    + TwoFactorStore
    + LoginAttemptStore
    + AuditStore
    + 'static
{
    /// Checks that the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    /// [`TokenStore::push_login_token`], and `event` recorded with the
    /// token when there is such a user. The second field is the event's
    /// write: its failure never undoes the token. By default two writes;
    /// SQLite makes them one transaction, so a mint waits for one commit.
    async fn push_login_token_audited(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
        event: &AuditEvent,
    ) -> StoreResult<(Option<String>, StoreResult<()>)> {
        let Some(user_id) = self.push_login_token(key, token, max).await? else {
            return Ok((None, Ok(())));
        };
        let recorded = self.record_audit_event(event).await;
        Ok((Some(user_id), recorded))
    }
}

/// Whether writing `before` as `after` (`None`: deleting it) takes away an
/// active admin: the condition under which [`AdminGuard::KeepLastAdmin`]
/// looks for another one.
pub fn removes_active_admin(before: &User, after: Option<&User>) -> bool {
    before.is_active_admin() && !after.is_some_and(User::is_active_admin)
}

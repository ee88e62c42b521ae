//! Storage: the `Store` trait and its implementations.
//!
//! The trait is shaped by MongoDB's single-document atomicity: every method
//! that must hold under concurrency (the login-token cap, unique PAT names,
//! session touch) is one method, so each store can make it atomic its own way.

pub mod memory;
pub mod mongo;

use crate::core::model::*;
use async_trait::async_trait;

pub use memory::MemoryStore;
pub use mongo::MongoStore;

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A unique field that a write collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
    /// Another unique key (the id, a token hash).
    Other,
}

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

/// How to find one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserKey {
    /// Exact `_id`.
    Id(String),
    /// Username, ignoring case.
    Username(String),
    /// Email address, ignoring case.
    Email(String),
    /// Username or email address, ignoring case (SAYMON `login`).
    Login(String),
}

impl UserKey {
    /// Whether `user` is the one this key names, by the rules the stores
    /// apply (exact id; username and email ignoring case).
    pub fn matches(&self, user: &User) -> bool {
        let same = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
        let username = |name: &str| user.username.as_deref().is_some_and(|u| same(u, name));
        let email = |addr: &str| user.emails.iter().any(|e| same(&e.address, addr));
        match self {
            UserKey::Id(id) => *id == user.id,
            UserKey::Username(name) => username(name),
            UserKey::Email(addr) => email(addr),
            UserKey::Login(login) => username(login) || email(login),
        }
    }
}

/// Partial update of a user. `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserPatch {
    pub username: Option<String>,
    pub name: Option<String>,
    pub emails: Option<Vec<Email>>,
    pub roles: Option<Vec<String>>,
    pub permissions: Option<Vec<String>>,
    pub active: Option<bool>,
    pub require_password_change: Option<bool>,
    pub password_bcrypt: Option<String>,
    /// Remove every login token and personal access token in the same write.
    pub clear_login_tokens: bool,
}

/// Outcome of adding a personal access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatInsert {
    Inserted,
    /// The user already has a personal access token with that name.
    NameTaken,
    NoSuchUser,
}

/// Persistent state of tokend. Implementations: [`MemoryStore`] and [`MongoStore`].
///
/// Times are passed in by the caller (the core owns the clock); stores never
/// read the system time, so tests can move time and stores agree on it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the store answers (readiness).
    async fn ping(&self) -> StoreResult<()>;

    // --- roles and permissions -------------------------------------------------

    /// Inserts the role unless one with its id exists (an operator's edits stay).
    async fn ensure_role(&self, role: &Role) -> StoreResult<()>;
    /// Inserts the permission with these roles unless it exists.
    async fn ensure_permission(&self, permission: &Permission) -> StoreResult<()>;
    /// Sets the roles of a permission, creating it if needed.
    async fn set_permission_roles(&self, id: &str, roles: &[String]) -> StoreResult<()>;
    /// Every permission with its roles.
    async fn permissions(&self) -> StoreResult<Vec<Permission>>;
    /// Every role.
    async fn roles(&self) -> StoreResult<Vec<Role>>;

    // --- users -------------------------------------------------------------------

    /// Number of users.
    async fn count_users(&self) -> StoreResult<u64>;
    /// Inserts a new user; `Duplicate` if the username or an email is taken (ignoring case).
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// Finds one user.
    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>>;
    /// Finds the user holding a login token or PAT with this hash; with `user_id`,
    /// only that user (Rocket.Chat's `{_id, 'services.resume.loginTokens.hashedToken'}`).
    async fn find_user_by_token_hash(
        &self,
        user_id: Option<&str>,
        hashed_token: &str,
    ) -> StoreResult<Option<User>>;
    /// Whether an active user holding the `admin` role exists other than `except_id`.
    async fn other_active_admin_exists(&self, except_id: &str) -> StoreResult<bool>;
    /// A page of users sorted by username, and the total count.
    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)>;
    /// Applies a patch and returns the updated user (`None` if there is no such user).
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
    ) -> StoreResult<Option<User>>;
    /// Deletes a user; false if there was none.
    async fn delete_user(&self, id: &str) -> StoreResult<bool>;

    // --- login tokens and personal access tokens ---------------------------------

    /// Adds a login token to the user found by `key`, then keeps only the newest
    /// `max` login tokens (by `when`; PATs neither count nor go). Must hold under
    /// concurrent calls for one user. Returns the user's id, `None` if no user.
    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>>;
    /// Removes the login token or PAT with this hash; false if it was not there.
    async fn remove_login_token(&self, user_id: &str, hashed_token: &str) -> StoreResult<bool>;
    /// Adds a PAT unless the user has one of that name (atomic).
    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<PatInsert>;
    /// Replaces the PAT named `pat.name` by `pat`; false if there was none.
    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool>;
    /// Removes the PAT with this name; false if there was none.
    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool>;

    // --- SAYMON API tokens -------------------------------------------------------

    /// Sets the user's API token, replacing any previous one.
    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()>;
    /// The user's API token, if any.
    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>>;
    /// The API tokens of these users (those that have one), in one call.
    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>>;
    /// The API token with this hash, if any.
    async fn find_api_token(&self, hashed_token: &str) -> StoreResult<Option<ApiToken>>;
    /// Deletes the user's API token; false if there was none.
    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool>;

    // --- SAYMON sessions ---------------------------------------------------------

    /// Stores a new session.
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// Atomically finds a session still valid at `now` (`expires_at > now` and
    /// `absolute_expires_at > now`), sets `last_seen_at = now` and
    /// `expires_at = new_expires_at`, and returns it updated.
    async fn touch_session(
        &self,
        hashed_id: &str,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>>;
    /// Deletes a session; false if there was none.
    async fn delete_session(&self, hashed_id: &str) -> StoreResult<bool>;
    /// Deletes every session of a user; returns how many.
    async fn delete_sessions_of(&self, user_id: &str) -> StoreResult<u64>;
}

/// Keeps the newest `max` resume tokens of `tokens` (PATs untouched), the rule
/// both stores apply after a push. Returns the `when` below which tokens go.
pub fn resume_cutoff(tokens: &[LoginToken], max: usize) -> Option<Timestamp> {
    let mut whens: Vec<Timestamp> = tokens
        .iter()
        .filter_map(|t| match t {
            LoginToken::Resume(r) => Some(r.when),
            LoginToken::Personal(_) => None,
        })
        .collect();
    if whens.len() <= max {
        return None;
    }
    whens.sort_unstable_by(|a, b| b.cmp(a));
    // Everything strictly older than the max-th newest goes.
    whens.get(max.saturating_sub(1)).copied()
}

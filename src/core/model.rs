//! Domain types shared by both dialects and every store.

pub use super::clock::Timestamp;
use super::credential::TokenHash;
use std::fmt;

/// A stored password hash (`services.password.bcrypt`: bcrypt of the SHA-256
/// hex of the password). `Debug` prints nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A unique field that a write collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Username,
    Email,
    /// Another unique key (the id, a token hash).
    Other,
}

/// How to name one user.
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
    /// Exact entry of Rocket.Chat's `importIds` (set by its data importers):
    /// found only in a MongoDB database shared with Rocket.Chat; the SQLite
    /// store keeps no import ids, so there it never names a user.
    ImportId(String),
}

impl UserKey {
    /// Whether `user` is the one this key names, by the rules the stores
    /// apply (exact id; username and email ignoring case). A [`User`] holds
    /// no import ids: an `ImportId` key matches none.
    pub fn matches(&self, user: &User) -> bool {
        let same = |a: &str, b: &str| a.to_lowercase() == b.to_lowercase();
        let username = |name: &str| user.username.as_deref().is_some_and(|u| same(u, name));
        let email = |addr: &str| user.emails.iter().any(|e| same(&e.address, addr));
        match self {
            UserKey::Id(id) => *id == user.id,
            UserKey::Username(name) => username(name),
            UserKey::Email(addr) => email(addr),
            UserKey::Login(login) => username(login) || email(login),
            UserKey::ImportId(_) => false,
        }
    }
}

/// An email address of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The address, as given (lookups ignore case).
    pub address: String,
    /// Whether the address was verified.
    pub verified: bool,
}

/// A user, as stored in Rocket.Chat's `users` collection.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// 17-character id (Rocket.Chat `Random.id()`), or whatever id an existing database uses.
    pub id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Rocket.Chat user type: `user`, `bot`, `app`.
    pub kind: String,
    pub username: Option<String>,
    /// Display name (Rocket.Chat `name`, SAYMON `displayName`).
    pub name: Option<String>,
    pub emails: Vec<Email>,
    /// Global role ids.
    pub roles: Vec<String>,
    /// Permissions granted to the user directly (SAYMON style), on top of its roles'.
    pub permissions: Vec<String>,
    pub active: bool,
    pub require_password_change: bool,
    /// `services.password.bcrypt`: bcrypt of the SHA-256 hex of the password.
    pub password_bcrypt: Option<PasswordHash>,
    /// `lastLogin`: the last login (Rocket.Chat's `login`, a SAYMON session
    /// open); `None` if never.
    pub last_login: Option<Timestamp>,
}

impl User {
    /// The first verified email address, as Rocket.Chat's `me` reports it.
    pub fn verified_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.verified)
            .map(|e| e.address.as_str())
    }

    /// Whether the user is active and holds the `admin` role.
    pub fn is_active_admin(&self) -> bool {
        self.active
            && self
                .roles
                .iter()
                .any(|r| r == super::permissions::ADMIN_ROLE)
    }

    /// The first email address, verified or not.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails.first().map(|e| e.address.as_str())
    }
}

/// An entry of `services.resume.loginTokens`.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginToken {
    /// A login ("resume") token: `{when, hashedToken}`; expires, counts toward the cap.
    Resume(ResumeToken),
    /// A personal access token: expires only if given an expiry, never evicted by the cap.
    Personal(PersonalAccessToken),
}

impl LoginToken {
    /// `base64(sha256(token))`.
    pub fn hashed_token(&self) -> &TokenHash {
        match self {
            LoginToken::Resume(r) => &r.hashed_token,
            LoginToken::Personal(p) => &p.hashed_token,
        }
    }
}

/// A login token entry `{when, hashedToken}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeToken {
    pub when: Timestamp,
    pub hashed_token: TokenHash,
}

/// A personal access token entry, as Rocket.Chat stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalAccessToken {
    pub hashed_token: TokenHash,
    pub created_at: Timestamp,
    /// Last 6 characters of the token.
    pub last_token_part: String,
    pub name: String,
    pub bypass_two_factor: bool,
    /// When it stops working (`None`: never). tokend's, optional.
    pub expires_at: Option<Timestamp>,
    /// Its last use, to `LAST_USED_RESOLUTION_SECONDS` (`None`: never used).
    pub last_used_at: Option<Timestamp>,
}

impl PersonalAccessToken {
    /// Whether it has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

/// A role (`rocketchat_roles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub id: String,
    pub name: String,
    /// `Users` (global) or `Subscriptions` (per room).
    pub scope: String,
    pub description: String,
    pub protected: bool,
    /// `_updatedAt`: when it was written (Rocket.Chat's `roles.sync`);
    /// `None` in a document that lacks it.
    pub updated_at: Option<Timestamp>,
}

/// A permission and the roles that hold it (`rocketchat_permissions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionEntry {
    pub id: String,
    pub roles: Vec<String>,
    /// `_updatedAt`: when its roles were last written
    /// (`permissions.listAll?updatedSince=`); `None` in a document that lacks it.
    pub updated_at: Option<Timestamp>,
}

/// The SAYMON-style API token of a user (one per user), stored hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub user_id: String,
    pub hashed_token: TokenHash,
    pub created_at: Timestamp,
    /// Last 4 characters of the token, the only part ever shown again.
    pub hint: String,
    /// Its last use, to `LAST_USED_RESOLUTION_SECONDS` (`None`: never used).
    pub last_used_at: Option<Timestamp>,
}

/// A SAYMON cookie session, stored under the hash of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub hashed_id: TokenHash,
    pub user_id: String,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// End of the idle window; moved forward on every use.
    pub expires_at: Timestamp,
    /// Hard end of the session, never moved.
    pub absolute_expires_at: Timestamp,
}

/// Why a login was refused before the password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    /// The account (or the unknown name) has too many failures.
    ForUser,
    /// The client address has too many failures.
    ForIp,
}

/// One password login attempt as the store records it: Rocket.Chat's
/// failed-login event (`rocketchat_server_events`, `t:
/// "failed-login-attempt"`), recorded *before* the password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAttempt {
    /// The record's id (drawn by the core).
    pub id: String,
    /// The account: its id when the login named an existing user.
    pub user_id: Option<String>,
    /// The account's username, or the normalised name when it names no user.
    pub username: Option<String>,
    /// The client address, when known.
    pub ip: Option<String>,
    /// When it was made (whole milliseconds). A failure in the same
    /// millisecond as the account's successful login counts as before it.
    pub ts: Timestamp,
    /// When the record may be forgotten (past every window it counts in).
    pub expires_at: Timestamp,
}

/// What a [`LoginAttempt`] is checked against, as the core's rule states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptLimits {
    /// Most failures of one account counted at once (this attempt included).
    pub user_attempts: u32,
    /// Failures of the account this old or older do not count (nor any older
    /// than the account's latest successful login).
    pub user_since: Timestamp,
    /// Most failures from one address counted at once (this attempt included).
    pub ip_attempts: u32,
    /// Failures from the address this old or older do not count.
    pub ip_since: Timestamp,
}

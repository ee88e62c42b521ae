//! The audit trail: one [`AuditEvent`] per credential event, kept in the
//! store (SQLite table `audit_events`, MongoDB collection `tokend_audit`) for
//! `AUDIT_RETENTION_DAYS` and logged as one structured line.
//!
//! # Who records
//!
//! Only core operations, through [`crate::core::Core::audit`] (one call per
//! event, next to the store write it describes); never a dialect.
//!
//! # The request context
//!
//! An event names the route (the OpenAPI operation id), the client address
//! and the request id. The dialects do not pass them to each core call:
//! `http::DialectRoutes`, which wraps every route of both dialects, runs the
//! handler inside [`RequestMeta::scope`] (a task-local), and
//! [`RequestMeta::current`] reads it where the event is recorded. No core
//! signature changes, and a route added later carries it without doing
//! anything. Outside a request (the operator CLI, seeding) there is no
//! scope: the CLI opens its own ([`RequestMeta::operator`]) and its events
//! name the actor [`CLI_ACTOR`].
//!
//! # What an event never holds
//!
//! A token, password, code or hash: an event is built from ids, a route, an
//! address, a kind and a short non-secret detail (a PAT's name, a block's
//! scope), and nothing else has a field to go in.
//!
//! # When the store cannot record it
//!
//! The credential event has already happened when it is recorded (the
//! token exists, the user is deleted): refusing the response would not undo
//! it, only hide a working token from its owner. So the request is still
//! served; the event's log line (written first, always) is the record, a
//! second line at `error` says it is missing from the store, and the
//! `tokend_audit_write_failures_total` counter goes up.

use super::clock::Timestamp;
use std::future::Future;
use std::net::IpAddr;

/// The actor of events caused by the operator CLI.
pub const CLI_ACTOR: &str = "cli";

macro_rules! kinds {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $outcome:literal ),* $(,)?) => {
        /// What happened.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditKind {
            $( $(#[$doc])* $variant, )*
        }

        impl AuditKind {
            /// Every kind.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant),*];

            /// The kind's id as stored and filtered on.
            pub fn as_str(self) -> &'static str {
                match self { $(AuditKind::$variant => $id,)* }
            }

            /// `succeeded` or `refused`.
            pub fn outcome(self) -> &'static str {
                match self { $(AuditKind::$variant => $outcome,)* }
            }
        }
    };
}

kinds! {
    /// A password (or `resume`) login succeeded.
    LoginSucceeded = "login.succeeded", "succeeded",
    /// A password was wrong, the user unknown or inactive.
    LoginFailed = "login.failed", "refused",
    /// A password login was refused by failed-login blocking.
    LoginBlocked = "login.blocked", "refused",
    /// A login token was minted for a user by someone (`users.createToken`).
    TokenMinted = "token.minted", "succeeded",
    /// A personal access token was created.
    PatCreated = "pat.created", "succeeded",
    /// A personal access token was regenerated.
    PatRegenerated = "pat.regenerated", "succeeded",
    /// A personal access token was removed (by its owner or an admin).
    PatRemoved = "pat.removed", "succeeded",
    /// A SAYMON API token was issued (replacing any previous one).
    ApiTokenCreated = "api_token.created", "succeeded",
    /// A SAYMON API token was deleted.
    ApiTokenDeleted = "api_token.deleted", "succeeded",
    /// A SAYMON session was opened.
    SessionOpened = "session.opened", "succeeded",
    /// A SAYMON session was closed by its holder.
    SessionClosed = "session.closed", "succeeded",
    /// A login token or PAT ended by `logout`, or every credential of a
    /// user by `users.logout`.
    Logout = "logout", "succeeded",
    /// A user's password was changed.
    PasswordChanged = "password.changed", "succeeded",
    /// A user was deactivated.
    UserDeactivated = "user.deactivated", "succeeded",
    /// A user was deleted.
    UserDeleted = "user.deleted", "succeeded",
    /// Two-factor authentication was switched on for a user.
    TwoFactorEnabled = "2fa.enabled", "succeeded",
    /// Two-factor authentication was switched off for a user.
    TwoFactorDisabled = "2fa.disabled", "succeeded",
}

impl AuditKind {
    /// The kind with this id.
    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == id)
    }
}

/// One recorded credential event. Holds no secret (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unique id (17 characters, like a user id).
    pub id: String,
    pub at: Timestamp,
    /// When the store may forget it (`at` + `AUDIT_RETENTION_DAYS`):
    /// MongoDB's TTL index and the core's pruning remove it after.
    pub expires_at: Timestamp,
    pub kind: AuditKind,
    /// Who did it: a user id, [`CLI_ACTOR`], or `None` (an anonymous
    /// failed login).
    pub actor: Option<String>,
    /// Whose credential it concerns (a user id), when known.
    pub target: Option<String>,
    /// The OpenAPI operation id of the route, or `cli.<command>`.
    pub route: Option<String>,
    /// The client's address, as the core decides it.
    pub address: Option<String>,
    /// The request's id (`X-Request-Id`).
    pub request_id: Option<String>,
    /// `succeeded` or `refused`.
    pub outcome: String,
    /// A short non-secret detail: a PAT's name, `resume`, a block's scope.
    pub detail: Option<String>,
}

/// Which events to list: all filters optional, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Events whose actor or target is this user id.
    pub user: Option<String>,
    pub kind: Option<AuditKind>,
    /// `at >= since`.
    pub since: Option<Timestamp>,
    /// `at < until`.
    pub until: Option<Timestamp>,
    pub offset: u64,
    pub count: u64,
}

/// A page of events and how many match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    pub total: u64,
}

/// What an event tells of the request that caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    /// The OpenAPI operation id (or `cli.<command>`).
    pub route: Option<String>,
    pub address: Option<IpAddr>,
    pub request_id: Option<String>,
    /// Set by the operator CLI: events without an authenticated actor are
    /// the operator's ([`CLI_ACTOR`]).
    pub operator: bool,
}

tokio::task_local! {
    static REQUEST: RequestMeta;
}

impl RequestMeta {
    /// The context of an operator command.
    pub fn operator(command: &str) -> Self {
        Self {
            route: Some(format!("cli.{command}")),
            operator: true,
            ..Self::default()
        }
    }

    /// Runs `f` with this context as the current one.
    pub async fn scope<F: Future>(self, f: F) -> F::Output {
        REQUEST.scope(self, f).await
    }

    /// The context of the request being served, if any.
    pub fn current() -> Self {
        REQUEST.try_with(Clone::clone).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_id() {
        for kind in AuditKind::ALL {
            assert_eq!(AuditKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(AuditKind::parse("nope"), None);
    }

    #[tokio::test]
    async fn the_context_is_the_scope_s() {
        assert_eq!(RequestMeta::current(), RequestMeta::default());
        let meta = RequestMeta::operator("user.create");
        let seen = meta.clone().scope(async { RequestMeta::current() }).await;
        assert_eq!(seen, meta);
    }
}

//! Authentication: every credential a request can present, password logins
//! with failed-login blocking, the REST rate limiter, the client address.

use super::twofactor::{counts_as_failure, CodeCheck, SecondFactorRefusal};
use super::Core;
use crate::core::audit::AuditKind;
use crate::core::clock::truncate_ms;
use crate::core::credential::{Caller, Credential, PasswordAttempt, Plaintext, TokenHash, Via};
use crate::core::error::CoreError;
use crate::core::metrics::METRICS;
use crate::core::model::{LoginToken, Timestamp, User, UserKey};
use crate::core::password::Checked;
use crate::core::permissions::Permission;
use crate::core::ratelimit::Limited;
use crate::core::throttle::{AccountKey, BlockScope};

use chrono::DateTime;
use std::net::IpAddr;
use std::time::Duration;

/// A login refused before the password was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// Whether the name or the client address is blocked.
    pub scope: BlockScope,
    /// How long the block lasts (at most).
    pub retry_after: Duration,
}

/// A password check refused because every bcrypt slot is taken: nothing
/// was checked or counted; retry shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub retry_after: Duration,
}

/// A login attempt reserved by [`Core::begin_login_attempt`]: recorded as
/// a failure until the core says it succeeded or withdraws it. Dropped, it
/// stays a failure (so a client that hangs up mid-check gains nothing).
#[derive(Debug)]
#[must_use = "a reserved login attempt ends as failed, succeeded or withdrawn"]
pub struct PendingLogin {
    /// The record's id; `None` when blocking is off.
    id: Option<String>,
}

impl PendingLogin {
    /// The secret was wrong (or the user inactive): the reservation stays
    /// counted as a failure (no store call).
    pub fn failed(self) {}

    fn into_id(self) -> Option<String> {
        self.id
    }
}

/// How long a client refused as [`Busy`] should wait.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why a credential did not authenticate; the same reasons for every
/// operation that authenticates ([`Core::authenticate`], [`Core::login`],
/// `Core::open_session`, `Core::confirm_second_factor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Unknown, expired or revoked credential, wrong password, or an
    /// inactive user: all alike to the client.
    Rejected,
    /// Too many failed password logins for this name or address.
    Blocked(Blocked),
    /// Too many password checks at once.
    Busy(Busy),
    /// The password was right, but the user's second factor is missing or
    /// wrong (see [`super::twofactor`]).
    SecondFactor(Box<SecondFactorRefusal>),
}

/// Outcome of [`Core::authenticate`].
#[derive(Debug)]
pub enum Authenticated {
    /// A valid credential of an active user.
    Caller(Box<Caller>),
    Refused(Refused),
}

/// Outcome of [`Core::login`].
#[derive(Debug)]
pub enum Login {
    /// Logged in: the caller and its login token (shown once).
    Ok {
        caller: Box<Caller>,
        token: Plaintext,
    },
    Refused(Refused),
}

/// Outcome of [`Core::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Allowed,
    Limited(Limited),
}

impl UserKey {
    /// The name as the client typed it.
    fn typed(&self) -> &str {
        match self {
            UserKey::Id(s)
            | UserKey::Username(s)
            | UserKey::Email(s)
            | UserKey::Login(s)
            | UserKey::ImportId(s) => s,
        }
    }
}

/// The entry `hops` places from the right of a comma-separated forwarding
/// header (all its lines in order), or the leftmost when there are fewer.
fn from_the_right<'a>(values: &[&'a str], hops: usize) -> Option<&'a str> {
    let entries: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let index = entries.len().saturating_sub(hops.max(1));
    entries.get(index).copied().filter(|e| !e.is_empty())
}

impl Core {
    /// When a login token minted at `when` stops working (the last
    /// representable instant when the configured lifetime reaches past it).
    pub fn login_token_expiry(&self, when: Timestamp) -> Timestamp {
        let ms = self
            .login_expiration_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        chrono::Duration::try_milliseconds(ms)
            .and_then(|lifetime| when.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// Whether a stored token still authenticates at `now` (a PAT until
    /// its optional `expires_at`).
    fn token_is_live(&self, token: &LoginToken, now: Timestamp) -> bool {
        match token {
            LoginToken::Resume(r) => self.login_token_expiry(r.when) > now,
            LoginToken::Personal(p) => !p.expired(now),
        }
    }

    /// The instant before which a recorded last use is stale: a token last
    /// used before it gets `lastUsedAt` written again.
    pub(super) fn last_use_stale_before(&self, now: Timestamp) -> Timestamp {
        self.config
            .last_used_resolution
            .and_then(|r| chrono::Duration::from_std(r).ok())
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(now)
    }

    /// Whether a token last used at `last` needs its `lastUsedAt` written
    /// at `now` (never with `LAST_USED_RESOLUTION_SECONDS=off`). Within the
    /// window nothing is written, so a request stays at its one store read;
    /// the write itself is one conditional update, so concurrent requests
    /// write it once.
    pub(super) fn last_use_due(&self, last: Option<Timestamp>, now: Timestamp) -> bool {
        self.config.last_used_resolution.is_some()
            && last.is_none_or(|t| t < self.last_use_stale_before(now))
    }

    /// Who presents this credential. The one rule for every credential:
    /// it must exist, be unexpired, and belong to an active user.
    pub async fn authenticate(&self, credential: Credential) -> Result<Authenticated, CoreError> {
        let caller = match credential {
            Credential::UserToken { user_id, token } => {
                self.by_login_token(Some(&user_id), &token.hash()).await?
            }
            Credential::Resume(token) => self.by_login_token(None, &token.hash()).await?,
            Credential::ApiToken(token) => self.by_api_token(&token.hash()).await?,
            Credential::Session(sid) => self.by_session(sid.hash()).await?,
            Credential::Password(attempt) => return self.by_password(attempt).await,
        };
        Ok(match caller {
            Some(caller) => Authenticated::Caller(Box::new(caller)),
            None => Authenticated::Refused(Refused::Rejected),
        })
    }

    async fn by_login_token(
        &self,
        user_id: Option<&str>,
        hash: &TokenHash,
    ) -> Result<Option<Caller>, CoreError> {
        let Some((user, entry)) = self.store.find_by_token(user_id, hash).await? else {
            return Ok(None);
        };
        let now = self.now();
        if !self.token_is_live(&entry, now) {
            return Ok(None);
        }
        let Some(user) = active(user) else {
            return Ok(None);
        };
        let via = match entry {
            LoginToken::Resume(_) => Via::LoginToken(hash.clone()),
            LoginToken::Personal(pat) => {
                if self.last_use_due(pat.last_used_at, now) {
                    let stale = self.last_use_stale_before(now);
                    // Bookkeeping: a failed write must not refuse the request.
                    if let Err(e) = self
                        .store
                        .touch_personal_access_token(&user.id, hash, now, stale)
                        .await
                    {
                        tracing::warn!(error = %e, "recording a PAT's last use failed");
                    }
                }
                Via::PersonalAccessToken(hash.clone())
            }
        };
        Ok(Some(Caller { user, via }))
    }

    /// The user a stored SAYMON credential belongs to, if it still exists
    /// and is active.
    pub(super) async fn credential_owner(
        &self,
        user_id: &str,
        via: Via,
    ) -> Result<Option<Caller>, CoreError> {
        let user = self
            .store
            .find_user(&UserKey::Id(user_id.to_string()))
            .await?;
        Ok(user.and_then(active).map(|user| Caller { user, via }))
    }

    /// Checks a password, then the user's second factor if it has one.
    /// Failed-login blocking is keyed on the resolved
    /// account (or the normalised name, for an unknown one) and the client
    /// address; the attempt is reserved in the store before bcrypt runs
    /// ([`Core::begin_login_attempt`]), and bcrypt runs only in a free slot
    /// ([`Busy`] otherwise).
    async fn by_password(&self, attempt: PasswordAttempt) -> Result<Authenticated, CoreError> {
        let user = self.store.find_user(&attempt.user).await?;
        let target = user.as_ref().map(|u| u.id.clone());
        let pending = match self
            .begin_login_attempt(user.as_ref(), attempt.user.typed(), attempt.ip)
            .await?
        {
            Ok(pending) => pending,
            Err(blocked) => {
                let scope = match blocked.scope {
                    BlockScope::ForUser => "user",
                    BlockScope::ForIp => "ip",
                };
                METRICS.logins.inc(&["blocked"]);
                METRICS.throttle_blocks.inc(&[scope]);
                self.audit(
                    AuditKind::LoginBlocked,
                    None,
                    target.as_deref(),
                    Some(scope),
                )
                .await;
                return Ok(Authenticated::Refused(Refused::Blocked(blocked)));
            }
        };
        let hash = user.as_ref().and_then(|u| u.password_bcrypt.as_ref());
        // An error (or a dropped request) leaves the reservation counted as a failure.
        let matches = match self.bcrypt.verify(&attempt.password, hash).await? {
            Checked::Busy => {
                self.withdraw_login_attempt(pending).await?;
                return Ok(Authenticated::Refused(Refused::Busy(Busy {
                    retry_after: BUSY_RETRY_AFTER,
                })));
            }
            Checked::Match => true,
            Checked::Mismatch => false,
        };
        match user {
            Some(user) if matches && user.active => {
                // The second factor, under the same reservation: a wrong
                // code counts like a wrong password; a missing one (the
                // client is asked for it) counts for nothing.
                match self
                    .login_second_factor(&user, &attempt.second_factor)
                    .await?
                {
                    CodeCheck::NotNeeded | CodeCheck::Passed => {}
                    CodeCheck::Refused(refused) => {
                        if counts_as_failure(&refused) {
                            pending.failed();
                            METRICS.logins.inc(&["failed"]);
                            self.audit(
                                AuditKind::LoginFailed,
                                None,
                                Some(&user.id),
                                Some("second factor"),
                            )
                            .await;
                        } else {
                            self.withdraw_login_attempt(pending).await?;
                        }
                        return Ok(Authenticated::Refused(refused));
                    }
                }
                self.login_attempt_succeeded(pending).await?;
                METRICS.logins.inc(&["succeeded"]);
                self.audit(
                    AuditKind::LoginSucceeded,
                    Some(&user.id),
                    Some(&user.id),
                    Some("password"),
                )
                .await;
                Ok(Authenticated::Caller(Box::new(Caller {
                    user,
                    via: Via::Password,
                })))
            }
            _ => {
                pending.failed();
                METRICS.logins.inc(&["failed"]);
                self.audit(AuditKind::LoginFailed, None, target.as_deref(), None)
                    .await;
                Ok(Authenticated::Refused(Refused::Rejected))
            }
        }
    }

    /// Reserves one login attempt for `user` (or, when the login names no
    /// user, the name `typed`) from `ip`, before any secret is checked: one
    /// store call that checks the failed-login limits and records the
    /// attempt as a failure, atomically across every tokend on the store.
    /// End it with [`PendingLogin::failed`] (it stays counted),
    /// [`Core::login_attempt_succeeded`] or [`Core::withdraw_login_attempt`].
    /// With blocking off, reserves nothing and costs nothing.
    pub async fn begin_login_attempt(
        &self,
        user: Option<&User>,
        typed: &str,
        ip: Option<IpAddr>,
    ) -> Result<Result<PendingLogin, Blocked>, CoreError> {
        if !self.throttle.is_enabled() {
            return Ok(Ok(PendingLogin { id: None }));
        }
        let account = match user {
            Some(user) => AccountKey::user(user),
            None => AccountKey::unknown(typed),
        };
        let now = truncate_ms(self.now());
        let attempt = self.throttle.attempt(
            crate::core::ids::new_time_ordered_id(now.timestamp_millis()),
            &account,
            ip,
            now,
        );
        let limits = self.throttle.limits(now);
        Ok(
            match self.store.reserve_login_attempt(&attempt, &limits).await? {
                None => Ok(PendingLogin {
                    id: Some(attempt.id),
                }),
                Some(scope) => Err(Blocked {
                    scope,
                    retry_after: self.throttle.block_time(scope),
                }),
            },
        )
    }

    /// Records one failed login of `user` from `ip` (e.g. a wrong second
    /// factor after the right password): it counts toward the same blocks
    /// as a wrong password. `Err(Blocked)` when the account or address was
    /// already blocked (then nothing more is recorded).
    pub async fn record_failed_login(
        &self,
        user: &User,
        ip: Option<IpAddr>,
    ) -> Result<Result<(), Blocked>, CoreError> {
        let username = user.username.as_deref().unwrap_or_default();
        Ok(self
            .begin_login_attempt(Some(user), username, ip)
            .await?
            .map(PendingLogin::failed))
    }

    /// The attempt succeeded: the account's earlier failures stop counting
    /// (the address's still count).
    pub async fn login_attempt_succeeded(&self, pending: PendingLogin) -> Result<(), CoreError> {
        if let Some(id) = pending.into_id() {
            self.store
                .login_attempt_succeeded(&id, truncate_ms(self.now()))
                .await?;
        }
        Ok(())
    }

    /// The attempt could not be decided (no bcrypt slot): it counts for nothing.
    pub async fn withdraw_login_attempt(&self, pending: PendingLogin) -> Result<(), CoreError> {
        if let Some(id) = pending.into_id() {
            self.store.withdraw_login_attempt(&id).await?;
        }
        Ok(())
    }

    /// Rocket.Chat's `login`: with a password, a new login token; with
    /// `resume`, the same token back.
    pub async fn login(&self, credential: Credential) -> Result<Login, CoreError> {
        let resumed = match &credential {
            Credential::Resume(token) => Some(token.clone()),
            _ => None,
        };
        let caller = match self.authenticate(credential).await? {
            Authenticated::Caller(caller) => caller,
            Authenticated::Refused(refused) => return Ok(Login::Refused(refused)),
        };
        let token = match resumed {
            Some(token) => {
                METRICS.logins.inc(&["succeeded"]);
                self.audit(
                    AuditKind::LoginSucceeded,
                    Some(caller.id()),
                    Some(caller.id()),
                    Some("resume"),
                )
                .await;
                token
            }
            None => match self
                .mint_login_token(&UserKey::Id(caller.user.id.clone()))
                .await?
            {
                Some(minted) => minted.token,
                None => return Ok(Login::Refused(Refused::Rejected)),
            },
        };
        self.record_login(&caller.user.id).await?;
        Ok(Login::Ok { caller, token })
    }

    /// Writes the user's `lastLogin` (Rocket.Chat does at every login;
    /// `users.deactivateIdle` reads it). Bookkeeping: the credential is
    /// already issued, so a failed write is logged, not the login's failure.
    pub(super) async fn record_login(&self, user_id: &str) -> Result<(), CoreError> {
        let now = self.now();
        let patch = crate::store::UserPatch {
            last_login: Some(now),
            ..Default::default()
        };
        if let Err(error) = self
            .store
            .update_user(user_id, &patch, now, crate::store::AdminGuard::Off)
            .await
        {
            tracing::warn!(%error, "could not record lastLogin");
        }
        Ok(())
    }

    /// Counts a call to `route` from `ip` against the rate limit. Callers
    /// with `api-bypass-rate-limit` are neither counted nor limited; calls
    /// from an unknown address, or with the limiter off, are not limited.
    pub async fn rate_limit(
        &self,
        ip: Option<IpAddr>,
        route: &str,
        caller: Option<&Caller>,
    ) -> Result<RateLimit, CoreError> {
        let Some(ip) = ip else {
            return Ok(RateLimit::Allowed);
        };
        if !self.rate_limiter.is_enabled() {
            // Switched off: not even the bypass permission is worth a lookup.
            return Ok(RateLimit::Allowed);
        }
        if let Some(caller) = caller {
            if self.holds(caller, Permission::ApiBypassRateLimit).await? {
                return Ok(RateLimit::Allowed);
            }
        }
        Ok(match self.rate_limiter.hit(ip, route, self.now()) {
            Ok(()) => RateLimit::Allowed,
            Err(limited) => {
                METRICS.throttle_blocks.inc(&["rate_limit"]);
                RateLimit::Limited(limited)
            }
        })
    }

    /// Counts a password check from `ip` against the REST rate limit, as
    /// Rocket.Chat's `login`: every dialect's password login (SAYMON's Basic
    /// and session login) shares one budget per address, with no bypass
    /// (nobody is known before the password is checked).
    pub async fn rate_limit_password_login(
        &self,
        ip: Option<IpAddr>,
    ) -> Result<RateLimit, CoreError> {
        self.rate_limit(ip, PASSWORD_LOGIN_ROUTE, None).await
    }

    /// The client's address: the socket peer, or with `TRUST_PROXY` the
    /// address the trusted proxy saw: the rightmost `X-Forwarded-For` entry,
    /// or with `TRUSTED_PROXY_HOPS=N` the Nth from the right (entries to its
    /// left are whatever the client sent). `forwarded_for` holds every
    /// `X-Forwarded-For` line, in order.
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> Option<IpAddr> {
        if self.config.trust_proxy {
            let forwarded = from_the_right(forwarded_for, self.config.trusted_proxy_hops)
                .and_then(|v| v.parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer
    }

    /// Whether the request reached tokend over HTTPS: on a TLS connection
    /// (`direct_https`), or with `TRUST_PROXY` when the trusted proxy says
    /// so in `X-Forwarded-Proto` (read like `X-Forwarded-For`).
    pub fn request_is_https(&self, direct_https: bool, forwarded_proto: &[&str]) -> bool {
        direct_https
            || (self.config.trust_proxy
                && from_the_right(forwarded_proto, self.config.trusted_proxy_hops)
                    .is_some_and(|p| p.eq_ignore_ascii_case("https")))
    }
}

/// The rate-limit key every non-Rocket.Chat password login counts under
/// (Rocket.Chat's `login` counts under its own route).
const PASSWORD_LOGIN_ROUTE: &str = "password login";

/// Only active users authenticate.
fn active(user: User) -> Option<User> {
    user.active.then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::core::clock::SystemClock;
    use crate::core::model::ResumeToken;
    use crate::store::{sqlite, SqliteStore};
    use std::sync::Arc;

    #[test]
    fn forwarded_entries_are_read_from_the_right() {
        let lines = ["spoofed, 203.0.113.7", "10.0.0.2"];
        assert_eq!(from_the_right(&lines, 1), Some("10.0.0.2"));
        assert_eq!(from_the_right(&lines, 2), Some("203.0.113.7"));
        assert_eq!(from_the_right(&lines, 3), Some("spoofed"));
        assert_eq!(from_the_right(&lines, 9), Some("spoofed"));
        assert_eq!(from_the_right(&[], 1), None);
    }

    #[test]
    fn an_expiry_beyond_the_calendar_never_comes() {
        // 10^8 days is a valid LOGIN_EXPIRATION_DAYS, but past chrono's last date.
        let config = Config {
            login_expiration: Duration::from_secs(100_000_000 * 24 * 60 * 60),
            ..Config::default()
        };
        let core = Core::new(
            Arc::new(config),
            Arc::new(SqliteStore::open(sqlite::MEMORY).unwrap()),
            Arc::new(SystemClock),
        );
        let now = core.now();
        let token = LoginToken::Resume(ResumeToken {
            when: now,
            hashed_token: TokenHash::of("t"),
        });
        assert!(core.token_is_live(&token, now));
    }
}

//! Authentication: every credential a request can present, password logins
//! with failed-login blocking, the REST rate limiter, the client address.

use super::Core;
use crate::core::credential::{Caller, Credential, PasswordAttempt, Plaintext, TokenHash, Via};
use crate::core::error::CoreError;
use crate::core::model::{LoginToken, Timestamp, User, UserKey};
use crate::core::password;
use crate::core::permissions::Permission;
use crate::core::ratelimit::Limited;
use crate::core::throttle::BlockScope;
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

/// Outcome of [`Core::authenticate`].
#[derive(Debug)]
pub enum Authenticated {
    /// A valid credential of an active user.
    Caller(Box<Caller>),
    /// Unknown, expired or revoked credential, wrong password, or an
    /// inactive user: all alike to the client.
    Rejected,
    /// Too many failed password logins for this name or address.
    Blocked(Blocked),
}

/// Outcome of [`Core::login`].
#[derive(Debug)]
pub enum Login {
    /// Logged in: the caller and its login token (shown once).
    Ok {
        caller: Box<Caller>,
        token: Plaintext,
    },
    Rejected,
    Blocked(Blocked),
}

/// Outcome of [`Core::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    Allowed,
    Limited(Limited),
}

impl UserKey {
    /// The name as the client typed it: the key for failed-login blocking.
    fn typed(&self) -> &str {
        match self {
            UserKey::Id(s) | UserKey::Username(s) | UserKey::Email(s) | UserKey::Login(s) => s,
        }
    }
}

impl Core {
    /// When a login token minted at `when` stops working (the last
    /// representable instant when the configured lifetime reaches past it).
    pub fn login_token_expiry(&self, when: Timestamp) -> Timestamp {
        chrono::Duration::from_std(self.config.login_expiration)
            .ok()
            .and_then(|lifetime| when.checked_add_signed(lifetime))
            .unwrap_or(DateTime::<chrono::Utc>::MAX_UTC)
    }

    /// Whether a stored token still authenticates at `now` (PATs never expire).
    fn token_is_live(&self, token: &LoginToken, now: Timestamp) -> bool {
        match token {
            LoginToken::Resume(r) => self.login_token_expiry(r.when) > now,
            LoginToken::Personal(_) => true,
        }
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
            None => Authenticated::Rejected,
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
        if !self.token_is_live(&entry, self.now()) {
            return Ok(None);
        }
        let via = match entry {
            LoginToken::Resume(_) => Via::LoginToken(hash.clone()),
            LoginToken::Personal(_) => Via::PersonalAccessToken(hash.clone()),
        };
        Ok(active(user).map(|user| Caller { user, via }))
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

    /// Checks a password, with failed-login blocking keyed on the name as
    /// typed and the client address.
    async fn by_password(&self, attempt: PasswordAttempt) -> Result<Authenticated, CoreError> {
        let now = self.now();
        let login = attempt.user.typed().to_string();
        if let Err(scope) = self.throttle.check(&login, attempt.ip, now) {
            let cfg = &self.config.login_block;
            let retry_after = match scope {
                BlockScope::ForUser => cfg.user_block,
                BlockScope::ForIp => cfg.ip_block,
            };
            return Ok(Authenticated::Blocked(Blocked { scope, retry_after }));
        }
        let user = self.store.find_user(&attempt.user).await?;
        let hash = user.as_ref().and_then(|u| u.password_bcrypt.as_ref());
        let matches = password::verify_password(&attempt.password, hash).await?;
        match user {
            Some(user) if matches && user.active => {
                self.throttle.success(&login, attempt.ip);
                Ok(Authenticated::Caller(Box::new(Caller {
                    user,
                    via: Via::Password,
                })))
            }
            _ => {
                self.throttle.failure(&login, attempt.ip, now);
                Ok(Authenticated::Rejected)
            }
        }
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
            Authenticated::Rejected => return Ok(Login::Rejected),
            Authenticated::Blocked(b) => return Ok(Login::Blocked(b)),
        };
        let token = match resumed {
            Some(token) => token,
            None => match self
                .mint_login_token(&UserKey::Id(caller.user.id.clone()))
                .await?
            {
                Some(minted) => minted.token,
                None => return Ok(Login::Rejected),
            },
        };
        Ok(Login::Ok { caller, token })
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
            Err(limited) => RateLimit::Limited(limited),
        })
    }

    /// The client's address: the socket peer, or with `TRUST_PROXY` the
    /// first address of `X-Forwarded-For`.
    pub fn client_address(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
    ) -> Option<IpAddr> {
        if self.config.trust_proxy {
            let forwarded = forwarded_for
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer
    }
}

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

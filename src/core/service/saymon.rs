//! SAYMON credentials: one API token per user, and cookie sessions with an
//! idle and an absolute end, both checked (and the idle window moved) on
//! every use in one store call.

use super::auth::Authenticated;
use super::Core;
use crate::core::audit::AuditKind;
use crate::core::credential::{issue, Caller, Credential, Plaintext, TokenHash, TokenKind, Via};
use crate::core::error::CoreError;
use crate::core::metrics::METRICS;
use crate::core::model::{ApiToken, Session, Timestamp, UserKey};
use crate::core::permissions::{Granted, ManagesApiTokens};
use std::collections::HashMap;
use std::time::Duration;

/// Outcome of [`Core::open_session`].
#[derive(Debug)]
pub enum OpenSession {
    /// The new session id (shown once) and who it belongs to.
    Opened {
        sid: Plaintext,
        caller: Box<Caller>,
    },
    Refused(super::Refused),
}

/// `d` after `now`; `now` itself if that is past the representable range.
fn after(now: Timestamp, d: Duration) -> Timestamp {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

impl Core {
    pub(super) async fn by_api_token(&self, hash: &TokenHash) -> Result<Option<Caller>, CoreError> {
        let Some(entry) = self.store.find_api_token(hash).await? else {
            return Ok(None);
        };
        let via = Via::ApiToken { hint: entry.hint };
        let caller = self.credential_owner(&entry.user_id, via).await?;
        let now = self.now();
        if caller.is_some() && self.last_use_due(entry.last_used_at, now) {
            let stale = self.last_use_stale_before(now);
            // Bookkeeping: a failed write must not refuse the request.
            if let Err(e) = self.store.touch_api_token(hash, now, stale).await {
                tracing::warn!(error = %e, "recording an API token's last use failed");
            }
        }
        Ok(caller)
    }

    pub(super) async fn by_session(&self, hash: TokenHash) -> Result<Option<Caller>, CoreError> {
        let now = self.now();
        let idle_end = after(now, self.config.saymon_session_idle);
        let Some(session) = self.store.touch_session(&hash, now, idle_end).await? else {
            return Ok(None);
        };
        self.credential_owner(&session.user_id, Via::Session(hash))
            .await
    }

    /// Issues a new API token for a user, replacing any previous one;
    /// `None` if there is no such user.
    pub async fn issue_api_token<P: ManagesApiTokens>(
        &self,
        grant: &Granted<P>,
        user_id: &str,
    ) -> Result<Option<Plaintext>, CoreError> {
        if self
            .lookup(&UserKey::Id(user_id.to_string()))
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let issued = issue(TokenKind::ApiToken);
        let entry = ApiToken {
            user_id: user_id.to_string(),
            hashed_token: issued.hash,
            created_at: self.now(),
            hint: issued.hint,
            last_used_at: None,
        };
        self.store.set_api_token(&entry).await?;
        METRICS.tokens_minted.inc(&["api_token"]);
        self.audit(
            AuditKind::ApiTokenCreated,
            Some(grant.caller().id()),
            Some(user_id),
            None,
        )
        .await;
        Ok(Some(issued.plaintext))
    }

    /// Deletes a user's API token (none is fine); false if there is no such user.
    pub async fn delete_api_token<P: ManagesApiTokens>(
        &self,
        grant: &Granted<P>,
        user_id: &str,
    ) -> Result<bool, CoreError> {
        if self
            .lookup(&UserKey::Id(user_id.to_string()))
            .await?
            .is_none()
        {
            return Ok(false);
        }
        if self.store.delete_api_token(user_id).await? {
            self.audit(
                AuditKind::ApiTokenDeleted,
                Some(grant.caller().id()),
                Some(user_id),
                None,
            )
            .await;
        }
        Ok(true)
    }

    /// The hint (last characters) of a user's API token, if it has one.
    pub async fn api_token_hint(
        &self,
        _by: &Caller,
        user_id: &str,
    ) -> Result<Option<String>, CoreError> {
        Ok(self.store.api_token_of(user_id).await?.map(|t| t.hint))
    }

    /// The hints of these users' API tokens (those that have one), in one call.
    pub async fn api_token_hints(
        &self,
        _by: &Caller,
        user_ids: &[String],
    ) -> Result<HashMap<String, String>, CoreError> {
        let tokens = self.store.api_tokens_of(user_ids).await?;
        Ok(tokens.into_iter().map(|t| (t.user_id, t.hint)).collect())
    }

    /// Opens a session for whoever presents the credential (a password or
    /// an API token).
    pub async fn open_session(&self, credential: Credential) -> Result<OpenSession, CoreError> {
        let caller = match self.authenticate(credential).await? {
            Authenticated::Caller(caller) => caller,
            Authenticated::Refused(refused) => return Ok(OpenSession::Refused(refused)),
        };
        let issued = issue(TokenKind::Session);
        let now = self.now();
        let session = Session {
            hashed_id: issued.hash,
            user_id: caller.user.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: after(now, self.config.saymon_session_idle),
            absolute_expires_at: after(now, self.config.saymon_session_max),
        };
        self.store
            .insert_session(&session, self.config.max_sessions_per_user)
            .await?;
        METRICS.tokens_minted.inc(&["session"]);
        self.audit(
            AuditKind::SessionOpened,
            Some(caller.id()),
            Some(caller.id()),
            None,
        )
        .await;
        Ok(OpenSession::Opened {
            sid: issued.plaintext,
            caller,
        })
    }

    /// Whether a session cookie set in answer to this request gets the
    /// `Secure` attribute: always with `COOKIE_SECURE`, else whenever the
    /// request came over HTTPS (see [`Core::request_is_https`]).
    pub fn cookie_secure(&self, direct_https: bool, forwarded_proto: &[&str]) -> bool {
        self.config.cookie_secure || self.request_is_https(direct_https, forwarded_proto)
    }
}

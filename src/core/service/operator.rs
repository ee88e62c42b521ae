//! Operator tools (`tokend user ...`, `tokend token ...`): for when the HTTP
//! API is unreachable or the last admin is locked out. They run on the
//! configured store through the same rules as every request (hashing,
//! revocation on a password change, the login-token cap) and skip only the
//! HTTP permission checks: whoever runs them already holds the store. Never
//! reachable over HTTP. Their audit events name the actor
//! [`CLI_ACTOR`](crate::core::audit::CLI_ACTOR).

use super::tokens::Minted;
use super::Core;
use crate::core::audit::{AuditKind, CLI_ACTOR};
use crate::core::error::CoreError;
use crate::core::model::{User, UserKey};
use crate::store::{AdminGuard, UserPatch};

/// What `tokend token revoke` ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// The personal access token of this name.
    Pat(String),
    /// Every login token, PAT, SAYMON API token and session of the user.
    Everything,
}

/// Outcome of an operator command on one user.
#[derive(Debug, PartialEq, Eq)]
pub enum OperatorOutcome {
    Done,
    NoSuchUser,
    /// `Revoke::Pat` of a name the user has no PAT of.
    NoSuchToken,
}

impl Core {
    /// Sets a user's password (`tokend user passwd`); like a password change
    /// by an admin, it ends every login token and session of the user.
    pub async fn operator_set_password(
        &self,
        key: &UserKey,
        password: &str,
    ) -> Result<OperatorOutcome, CoreError> {
        let Some(user) = self.lookup(key).await? else {
            return Ok(OperatorOutcome::NoSuchUser);
        };
        let patch = UserPatch {
            password_bcrypt: Some(self.bcrypt.hash(password).await?),
            ..UserPatch::default()
        };
        Ok(
            match self
                .apply_patch(CLI_ACTOR, &user.id, patch, AdminGuard::Off, None)
                .await?
            {
                super::users::Patched::Updated(_) => OperatorOutcome::Done,
                _ => OperatorOutcome::NoSuchUser,
            },
        )
    }

    /// Every user, sorted by username (`tokend user list`).
    pub async fn operator_users(&self) -> Result<Vec<User>, CoreError> {
        const PAGE: u64 = 500;
        let mut out = Vec::new();
        loop {
            let (users, total) = self.store.list_users(out.len() as u64, PAGE).await?;
            let done = users.is_empty() || out.len() as u64 + users.len() as u64 >= total;
            out.extend(users);
            if done {
                return Ok(out);
            }
        }
    }

    /// A login token for a user (`tokend token mint`), keeping the cap.
    pub async fn operator_mint_token(&self, key: &UserKey) -> Result<Option<Minted>, CoreError> {
        let minted = self.mint_login_token(key).await?;
        if let Some(m) = &minted {
            self.audit(
                AuditKind::TokenMinted,
                Some(CLI_ACTOR),
                Some(&m.user_id),
                None,
            )
            .await;
        }
        Ok(minted)
    }

    /// Ends one PAT, or every credential, of a user (`tokend token revoke`).
    pub async fn operator_revoke(
        &self,
        key: &UserKey,
        what: &Revoke,
    ) -> Result<OperatorOutcome, CoreError> {
        let Some(user) = self.lookup(key).await? else {
            return Ok(OperatorOutcome::NoSuchUser);
        };
        match what {
            Revoke::Pat(name) => {
                if !self
                    .store
                    .remove_personal_access_token(&user.id, name)
                    .await?
                {
                    return Ok(OperatorOutcome::NoSuchToken);
                }
                self.audit(
                    AuditKind::PatRemoved,
                    Some(CLI_ACTOR),
                    Some(&user.id),
                    Some(name),
                )
                .await;
            }
            Revoke::Everything => {
                let patch = UserPatch {
                    clear_login_tokens: true,
                    ..UserPatch::default()
                };
                self.store
                    .update_user(&user.id, &patch, self.now(), AdminGuard::Off)
                    .await?
                    .ok();
                self.store.delete_api_token(&user.id).await?;
                self.store.delete_sessions_of(&user.id, None).await?;
                self.audit(
                    AuditKind::Logout,
                    Some(CLI_ACTOR),
                    Some(&user.id),
                    Some("everywhere"),
                )
                .await;
            }
        }
        Ok(OperatorOutcome::Done)
    }
}

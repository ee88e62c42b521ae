//! Login tokens (`login`, `users.createToken`, `logout`) and personal access
//! tokens. Tokens are drawn only by [`crate::core::credential::issue`].

use super::Core;
use crate::core::audit::{AuditEvent, AuditKind};
use crate::core::credential::{issue, Caller, Issued, Plaintext, TokenKind, Via};
use crate::core::error::CoreError;
use crate::core::metrics::METRICS;
use crate::core::model::{LoginToken, PersonalAccessToken, ResumeToken, Timestamp, UserKey};
use crate::core::permissions::{perm, Granted, Permission};
use crate::core::token::secret_matches;
use crate::core::validate;
use crate::store::PatInsert;

/// A freshly issued login token. The plaintext exists only here and in the response.
#[derive(Debug)]
pub struct Minted {
    pub user_id: String,
    pub token: Plaintext,
}

/// Outcome of [`Core::create_token`].
#[derive(Debug)]
pub enum CreateToken {
    Minted(Minted),
    /// Switched off, wrong secret, or another user without
    /// `user-generate-access-token`.
    NotAuthorized,
    NoSuchUser,
}

/// Outcome of [`Core::create_pat`].
#[derive(Debug)]
pub enum CreatePat {
    /// The new token, shown once.
    Created(Plaintext),
    /// The caller already has a token of that name.
    NameTaken,
    /// The name is longer than [`validate::MAX_TOKEN_NAME_CHARS`].
    NameTooLong { max: usize },
    /// The caller already has `MAX_PERSONAL_ACCESS_TOKENS` tokens.
    TooMany { max: usize },
    /// The caller is gone.
    NoSuchUser,
    /// The expiry asked for is not in the future.
    ExpiryInPast,
    /// The expiry asked for is beyond `PAT_MAX_LIFETIME_DAYS` from now.
    ExpiryTooLate { max_days: u64 },
}

/// When a new personal access token is to expire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PatExpiry {
    /// Never; with `PAT_MAX_LIFETIME_DAYS`, at that maximum.
    #[default]
    Unset,
    /// At this instant (`expiresAt`).
    At(Timestamp),
    /// This many days from now (`expiresInDays`).
    InDays(u32),
}

/// A user's personal access token as listed to an admin.
#[derive(Debug)]
pub enum UserPats {
    Tokens(Vec<PersonalAccessToken>),
    NoSuchUser,
}

const DAY_SECONDS: u64 = 24 * 60 * 60;

impl Core {
    /// Issues a login token for the user found by `key`, keeping the cap.
    /// `None` if there is no such user.
    pub(super) async fn mint_login_token(
        &self,
        key: &UserKey,
    ) -> Result<Option<Minted>, CoreError> {
        let (issued, entry) = self.new_login_token();
        let user_id = self
            .store
            .push_login_token(key, &entry, self.config.max_resume_login_tokens)
            .await?;
        Ok(user_id.map(|user_id| Self::minted(user_id, issued)))
    }

    /// [`Self::mint_login_token`] with `event` recorded in the same store
    /// write (one commit on SQLite); nothing is recorded or logged without a
    /// user.
    async fn mint_login_token_audited(
        &self,
        key: &UserKey,
        event: AuditEvent,
    ) -> Result<Option<Minted>, CoreError> {
        let (issued, entry) = self.new_login_token();
        let (user_id, recorded) = self
            .store
            .push_login_token_audited(key, &entry, self.config.max_resume_login_tokens, &event)
            .await?;
        let Some(user_id) = user_id else {
            return Ok(None);
        };
        Self::log_audit(&event);
        self.audit_stored(&event, recorded).await;
        Ok(Some(Self::minted(user_id, issued)))
    }

    fn new_login_token(&self) -> (Issued, ResumeToken) {
        let issued = issue(TokenKind::Login);
        let entry = ResumeToken {
            when: self.stamp(),
            hashed_token: issued.hash.clone(),
        };
        (issued, entry)
    }

    fn minted(user_id: String, issued: Issued) -> Minted {
        METRICS.tokens_minted.inc(&["login"]);
        Minted {
            user_id,
            token: issued.plaintext,
        }
    }

    /// `users.createToken`: a login token for `target`. Switched on by
    /// `CREATE_TOKENS_FOR_USERS`, or by `CREATE_TOKENS_FOR_USERS_SECRET`, whose
    /// value must then be presented; for another user the caller also needs
    /// `user-generate-access-token`, and the target may hold no permission
    /// the caller lacks (a token would hand them over).
    pub async fn create_token(
        &self,
        caller: &Caller,
        target: &UserKey,
        secret: Option<&str>,
    ) -> Result<CreateToken, CoreError> {
        let enabled = match &self.config.create_tokens_secret {
            Some(configured) => secret.is_some_and(|s| secret_matches(s, &configured.0)),
            None => self.config.create_tokens_for_users,
        };
        // The target is looked up first, so an unknown user is reported as such.
        let Some(user) = self.store.find_user(target).await? else {
            return Ok(CreateToken::NoSuchUser);
        };
        let myself = user.id == caller.user.id;
        let allowed = enabled
            && (myself || {
                let perms = self.permission_snapshot().await?;
                perms.has(&caller.user, Permission::UserGenerateAccessToken)
                    && !perms.outranks(&user, &caller.user)
            });
        if !allowed {
            return Ok(CreateToken::NotAuthorized);
        }
        let event = self.audit_event(
            AuditKind::TokenMinted,
            Some(caller.id()),
            Some(&user.id),
            None,
        );
        Ok(
            match self
                .mint_login_token_audited(&UserKey::Id(user.id.clone()), event)
                .await?
            {
                Some(minted) => CreateToken::Minted(minted),
                None => CreateToken::NoSuchUser,
            },
        )
    }

    /// Ends the credential the caller used for this request (Rocket.Chat
    /// `logout`, SAYMON session end).
    pub async fn logout(&self, caller: &Caller) -> Result<(), CoreError> {
        let kind = match &caller.via {
            Via::LoginToken(hash) | Via::PersonalAccessToken(hash) => {
                self.store.remove_login_token(&caller.user.id, hash).await?;
                AuditKind::Logout
            }
            Via::Session(hash) => {
                self.store.delete_session(hash).await?;
                AuditKind::SessionClosed
            }
            Via::ApiToken { .. } | Via::Password => return Ok(()),
        };
        self.audit(kind, Some(caller.id()), Some(caller.id()), None)
            .await;
        Ok(())
    }

    /// Rocket.Chat's `users.logoutOtherClients` and `users.removeOtherTokens`:
    /// every login token of the caller ends but the one it presents;
    /// personal access tokens stay. Answers when the kept login token
    /// expires (`None` when the caller used a PAT or no login token).
    pub async fn logout_other_clients(
        &self,
        caller: &Caller,
    ) -> Result<Option<Timestamp>, CoreError> {
        let keep = match &caller.via {
            Via::LoginToken(h) | Via::PersonalAccessToken(h) => Some(h),
            _ => None,
        };
        self.store
            .remove_login_tokens(&caller.user.id, keep)
            .await?;
        let Via::LoginToken(hash) = &caller.via else {
            return Ok(None);
        };
        Ok(
            match self
                .store
                .find_by_token(Some(&caller.user.id), hash)
                .await?
            {
                Some((_, LoginToken::Resume(r))) => Some(self.login_token_expiry(r.when)),
                _ => None,
            },
        )
    }

    /// Rocket.Chat's `users.checkUsernameAvailability`: whether the caller
    /// could take this username: its own is available to it; another user's
    /// (ignoring case), or one that is no valid username, is not.
    pub async fn username_available(&self, by: &Caller, name: &str) -> Result<bool, CoreError> {
        if by.user.username.as_deref() == Some(name) {
            return Ok(true);
        }
        if !crate::core::validate::is_valid_username(name) {
            return Ok(false);
        }
        Ok(self
            .store
            .find_user(&UserKey::Username(name.to_string()))
            .await?
            .is_none())
    }

    // --- personal access tokens -------------------------------------------------

    /// The end of a new PAT's life, or why it cannot have that one:
    /// `PAT_MAX_LIFETIME_DAYS` (if set) bounds it and is the default.
    fn pat_expiry(&self, asked: PatExpiry) -> Result<Option<Timestamp>, CreatePat> {
        let now = self.now();
        let plus = |secs: u64| {
            chrono::Duration::from_std(std::time::Duration::from_secs(secs))
                .ok()
                .and_then(|d| now.checked_add_signed(d))
        };
        let max = self
            .config
            .pat_max_lifetime
            .map(|m| (m.as_secs() / DAY_SECONDS, plus(m.as_secs())));
        let at = match asked {
            PatExpiry::Unset => return Ok(max.and_then(|(_, at)| at)),
            PatExpiry::At(at) => Some(at),
            PatExpiry::InDays(days) => plus(u64::from(days) * DAY_SECONDS),
        };
        if at.is_some_and(|at| at <= now) {
            return Err(CreatePat::ExpiryInPast);
        }
        match max {
            Some((max_days, Some(limit))) if at.is_none_or(|at| at > limit) => {
                Err(CreatePat::ExpiryTooLate { max_days })
            }
            _ => Ok(at),
        }
    }

    fn new_pat(
        &self,
        name: &str,
        bypass_two_factor: bool,
        expires_at: Option<Timestamp>,
    ) -> (Plaintext, PersonalAccessToken) {
        let issued = issue(TokenKind::Personal);
        let pat = PersonalAccessToken {
            hashed_token: issued.hash,
            created_at: self.now(),
            last_token_part: issued.hint,
            name: name.to_string(),
            bypass_two_factor,
            expires_at,
            last_used_at: None,
        };
        (issued.plaintext, pat)
    }

    /// Creates a named PAT for the caller: a name of at most
    /// [`validate::MAX_TOKEN_NAME_CHARS`] characters, at most
    /// `MAX_PERSONAL_ACCESS_TOKENS` tokens per user (the store holds the
    /// count under concurrent calls), expiring as asked (within
    /// `PAT_MAX_LIFETIME_DAYS`).
    pub async fn create_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
        bypass_two_factor: bool,
        expiry: PatExpiry,
    ) -> Result<CreatePat, CoreError> {
        if name.chars().count() > validate::MAX_TOKEN_NAME_CHARS {
            return Ok(CreatePat::NameTooLong {
                max: validate::MAX_TOKEN_NAME_CHARS,
            });
        }
        let expires_at = match self.pat_expiry(expiry) {
            Ok(at) => at,
            Err(refused) => return Ok(refused),
        };
        let (token, pat) = self.new_pat(name, bypass_two_factor, expires_at);
        let user_id = &grant.caller().user.id;
        let max = self.config.max_personal_access_tokens;
        Ok(
            match self
                .store
                .add_personal_access_token(user_id, &pat, max)
                .await?
            {
                PatInsert::Inserted => {
                    METRICS.tokens_minted.inc(&["personal"]);
                    self.audit(
                        AuditKind::PatCreated,
                        Some(user_id),
                        Some(user_id),
                        Some(name),
                    )
                    .await;
                    CreatePat::Created(token)
                }
                PatInsert::NameTaken => CreatePat::NameTaken,
                PatInsert::TooMany => CreatePat::TooMany { max },
                PatInsert::NoSuchUser => CreatePat::NoSuchUser,
            },
        )
    }

    /// The caller's personal access tokens (expired ones too: they are
    /// listed as expired).
    pub async fn personal_access_tokens(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
    ) -> Result<Vec<PersonalAccessToken>, CoreError> {
        self.pats_of(&grant.caller().user.id).await
    }

    async fn pats_of(&self, user_id: &str) -> Result<Vec<PersonalAccessToken>, CoreError> {
        let tokens = self.store.tokens_of(user_id).await?;
        Ok(tokens
            .into_iter()
            .filter_map(|t| match t {
                LoginToken::Personal(p) => Some(p),
                LoginToken::Resume(_) => None,
            })
            .collect())
    }

    /// Replaces the caller's PAT of this name by a new one with the same
    /// name, 2FA choice and lifetime (from now, within
    /// `PAT_MAX_LIFETIME_DAYS`); `None` if it has none of that name.
    pub async fn regenerate_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
    ) -> Result<Option<Plaintext>, CoreError> {
        let user_id = &grant.caller().user.id;
        let Some(old) = self.store.find_personal_access_token(user_id, name).await? else {
            return Ok(None);
        };
        let lifetime = old
            .expires_at
            .and_then(|e| (e - old.created_at).to_std().ok())
            .map(|d| d.max(std::time::Duration::from_millis(1)));
        let expires_at = match lifetime {
            Some(d) => {
                let d = self.config.pat_max_lifetime.map_or(d, |m| d.min(m));
                chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| self.now().checked_add_signed(d))
            }
            None => self.pat_expiry(PatExpiry::Unset).unwrap_or(None),
        };
        let (token, pat) = self.new_pat(name, old.bypass_two_factor, expires_at);
        let replaced = self
            .store
            .replace_personal_access_token(user_id, &pat)
            .await?;
        if replaced {
            METRICS.tokens_minted.inc(&["personal"]);
            self.audit(
                AuditKind::PatRegenerated,
                Some(user_id),
                Some(user_id),
                Some(name),
            )
            .await;
        }
        Ok(replaced.then_some(token))
    }

    /// Removes the caller's PAT of this name; false if it has none.
    pub async fn remove_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
    ) -> Result<bool, CoreError> {
        let user_id = &grant.caller().user.id;
        let removed = self
            .store
            .remove_personal_access_token(user_id, name)
            .await?;
        if removed {
            self.audit(
                AuditKind::PatRemoved,
                Some(user_id),
                Some(user_id),
                Some(name),
            )
            .await;
        }
        Ok(removed)
    }

    /// Any user's personal access tokens (`manage-personal-access-tokens`).
    pub async fn user_pats(
        &self,
        _grant: &Granted<perm::ManagePersonalAccessTokens>,
        user_id: &str,
    ) -> Result<UserPats, CoreError> {
        if self
            .lookup(&UserKey::Id(user_id.to_string()))
            .await?
            .is_none()
        {
            return Ok(UserPats::NoSuchUser);
        }
        Ok(UserPats::Tokens(self.pats_of(user_id).await?))
    }

    /// Revokes any user's PAT of this name (`manage-personal-access-tokens`);
    /// false if the user has none of that name.
    pub async fn revoke_user_pat(
        &self,
        grant: &Granted<perm::ManagePersonalAccessTokens>,
        user_id: &str,
        name: &str,
    ) -> Result<bool, CoreError> {
        let removed = self
            .store
            .remove_personal_access_token(user_id, name)
            .await?;
        if removed {
            self.audit(
                AuditKind::PatRemoved,
                Some(grant.caller().id()),
                Some(user_id),
                Some(name),
            )
            .await;
        }
        Ok(removed)
    }
}

//! Login tokens (`login`, `users.createToken`, `logout`) and personal access
//! tokens. Tokens are drawn only by [`crate::core::credential::issue`].

use super::Core;
use crate::core::credential::{issue, Caller, Plaintext, TokenKind, Via};
use crate::core::error::CoreError;
use crate::core::model::{LoginToken, PersonalAccessToken, ResumeToken, Timestamp, UserKey};
use crate::core::permissions::{perm, Granted, Permission};
use crate::core::token::secret_matches;
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
    /// The caller is gone.
    NoSuchUser,
}

impl Core {
    /// Issues a login token for the user found by `key`, keeping the cap.
    /// `None` if there is no such user.
    pub(super) async fn mint_login_token(
        &self,
        key: &UserKey,
    ) -> Result<Option<Minted>, CoreError> {
        let issued = issue(TokenKind::Login);
        let entry = ResumeToken {
            when: self.stamp(),
            hashed_token: issued.hash,
        };
        let user_id = self
            .store
            .push_login_token(key, &entry, self.config.max_resume_login_tokens)
            .await?;
        Ok(user_id.map(|user_id| Minted {
            user_id,
            token: issued.plaintext,
        }))
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
        Ok(
            match self.mint_login_token(&UserKey::Id(user.id.clone())).await? {
                Some(minted) => CreateToken::Minted(minted),
                None => CreateToken::NoSuchUser,
            },
        )
    }

    /// Ends the credential the caller used for this request (Rocket.Chat
    /// `logout`, SAYMON session end).
    pub async fn logout(&self, caller: &Caller) -> Result<(), CoreError> {
        match &caller.via {
            Via::LoginToken(hash) | Via::PersonalAccessToken(hash) => {
                self.store.remove_login_token(&caller.user.id, hash).await?;
            }
            Via::Session(hash) => {
                self.store.delete_session(hash).await?;
            }
            Via::ApiToken { .. } | Via::Password => {}
        }
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

    fn new_pat(&self, name: &str, bypass_two_factor: bool) -> (Plaintext, PersonalAccessToken) {
        let issued = issue(TokenKind::Personal);
        let pat = PersonalAccessToken {
            hashed_token: issued.hash,
            created_at: self.now(),
            last_token_part: issued.hint,
            name: name.to_string(),
            bypass_two_factor,
        };
        (issued.plaintext, pat)
    }

    /// Creates a named PAT for the caller.
    pub async fn create_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
        bypass_two_factor: bool,
    ) -> Result<CreatePat, CoreError> {
        let (token, pat) = self.new_pat(name, bypass_two_factor);
        let user_id = &grant.caller().user.id;
        Ok(
            match self.store.add_personal_access_token(user_id, &pat).await? {
                PatInsert::Inserted => CreatePat::Created(token),
                PatInsert::NameTaken => CreatePat::NameTaken,
                PatInsert::NoSuchUser => CreatePat::NoSuchUser,
            },
        )
    }

    /// The caller's personal access tokens.
    pub async fn personal_access_tokens(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
    ) -> Result<Vec<PersonalAccessToken>, CoreError> {
        let tokens = self.store.tokens_of(&grant.caller().user.id).await?;
        Ok(tokens
            .into_iter()
            .filter_map(|t| match t {
                LoginToken::Personal(p) => Some(p),
                LoginToken::Resume(_) => None,
            })
            .collect())
    }

    /// Replaces the caller's PAT of this name by a new one with the same
    /// name and 2FA choice; `None` if it has none of that name.
    pub async fn regenerate_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
    ) -> Result<Option<Plaintext>, CoreError> {
        let user_id = &grant.caller().user.id;
        let Some(old) = self.store.find_personal_access_token(user_id, name).await? else {
            return Ok(None);
        };
        let (token, pat) = self.new_pat(name, old.bypass_two_factor);
        let replaced = self
            .store
            .replace_personal_access_token(user_id, &pat)
            .await?;
        Ok(replaced.then_some(token))
    }

    /// Removes the caller's PAT of this name; false if it has none.
    pub async fn remove_pat(
        &self,
        grant: &Granted<perm::CreatePersonalAccessTokens>,
        name: &str,
    ) -> Result<bool, CoreError> {
        Ok(self
            .store
            .remove_personal_access_token(&grant.caller().user.id, name)
            .await?)
    }
}

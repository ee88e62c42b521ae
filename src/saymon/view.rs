//! How SAYMON shows a user. Field mapping onto the shared user:
//! `login` ↔ `username`, `displayName` ↔ `name`, `email` ↔ `emails[0]`,
//! `permissions` ↔ `permissions`, `status` ↔ `active` (2 active, 3 blocked).

use crate::core::model::User;
use crate::core::{Caller, Core, CoreError, Via};
use poem_openapi::{Object, Union};

/// `status` of an active user.
pub const STATUS_ACTIVE: i32 = 2;
/// `status` of a blocked (deactivated) user.
pub const STATUS_BLOCKED: i32 = 3;

/// A user as SAYMON shows it to callers with `manage-users`, and to the
/// caller itself (`GET /node/api/users/current`).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename = "SaymonUser")]
pub struct UserView {
    /// The user's id.
    pub id: String,
    /// The login name (tokend's `username`).
    pub login: String,
    /// The first email address, when the user has one.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// The display name, when set.
    #[oai(rename = "displayName", skip_serializing_if_is_none)]
    pub display_name: Option<String>,
    /// `null`, or a hint (`****` and the last 4 characters) when the user has
    /// an API token. Never the token itself: it is shown once, on creation.
    #[oai(rename = "authenticationToken", nullable)]
    pub authentication_token: Option<String>,
    /// 2 active, 3 blocked.
    pub status: i32,
    /// On `current`: the caller's effective permissions (its roles' and its
    /// own). Elsewhere: the user's own permissions, as `PATCH` sets them.
    pub permissions: Vec<String>,
    /// Always `null`: tokend has no SAYMON user groups.
    #[oai(nullable)]
    pub group: Option<Vec<String>>,
    /// Always empty.
    pub contacts: Vec<String>,
    /// Always empty.
    #[oai(rename = "eventFilter")]
    pub event_filter: Vec<serde_json::Value>,
}

/// A user as SAYMON shows it to callers without `manage-users`: the id, and
/// in `login` the display name (or the masked login when there is none).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename = "SaymonUserLimited")]
pub struct LimitedUserView {
    /// The user's id.
    pub id: String,
    /// The display name, or the login's first half followed by `*`s.
    pub login: String,
}

/// One entry of a user listing: full or limited, by the caller's permissions.
#[derive(Union, Debug, Clone, PartialEq)]
#[oai(rename = "SaymonUserEntry")]
pub enum UserEntry {
    Full(UserView),
    Limited(LimitedUserView),
}

/// SAYMON's default display name: the first half of the login, the rest
/// replaced by `*` (`example.user` → `exampl******`). Never equal to a
/// non-empty login.
pub fn masked_login(login: &str) -> String {
    let len = login.chars().count();
    let keep = len / 2;
    login
        .chars()
        .enumerate()
        .map(|(i, c)| if i < keep { c } else { '*' })
        .collect()
}

/// What callers without `manage-users` see as `login`: the display name when
/// it is set and differs from the login, else the masked login.
pub fn public_login(user: &User) -> String {
    let login = user.username.as_deref().unwrap_or_default();
    match user.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() && !name.eq_ignore_ascii_case(login) => name.to_string(),
        _ => masked_login(login),
    }
}

/// The non-secret hint shown for an API token.
pub fn token_hint(last_part: &str) -> String {
    format!("****{last_part}")
}

impl UserView {
    /// The view of `user` with the given permissions and API token hint.
    pub fn new(user: &User, permissions: Vec<String>, token_hint: Option<String>) -> Self {
        Self {
            id: user.id.clone(),
            login: user.username.clone().unwrap_or_default(),
            email: user.primary_email().map(str::to_string),
            display_name: user.name.clone(),
            authentication_token: token_hint,
            status: if user.active {
                STATUS_ACTIVE
            } else {
                STATUS_BLOCKED
            },
            permissions,
            group: None,
            contacts: Vec::new(),
            event_filter: Vec::new(),
        }
    }

    /// The full view of a user: its own permissions and its token hint.
    pub async fn full(core: &Core, by: &Caller, user: &User) -> Result<Self, CoreError> {
        let hint = core
            .api_token_hint(by, &user.id)
            .await?
            .map(|h| token_hint(&h));
        Ok(Self::new(user, user.permissions.clone(), hint))
    }

    /// The caller's view of itself: effective permissions and token hint
    /// (known without a read when the caller authenticated with the token).
    pub async fn current(core: &Core, caller: &Caller) -> Result<Self, CoreError> {
        let hint = match &caller.via {
            Via::ApiToken { hint } => Some(hint.clone()),
            _ => core.api_token_hint(caller, &caller.user.id).await?,
        };
        let permissions = core.effective_permissions(caller).await?;
        Ok(Self::new(
            &caller.user,
            permissions,
            hint.map(|h| token_hint(&h)),
        ))
    }
}

impl From<&User> for LimitedUserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.clone(),
            login: public_login(user),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_the_first_half() {
        assert_eq!(masked_login("example.user"), "exampl******");
        assert_eq!(masked_login("Bob"), "B**");
        assert_eq!(masked_login("ab"), "a*");
        assert_eq!(masked_login("a"), "*");
        assert_eq!(masked_login(""), "");
    }
}

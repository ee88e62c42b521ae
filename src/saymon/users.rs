//! Users: `GET /node/api/users/current`, `GET /node/api/users`,
//! `GET|PATCH|DELETE /node/api/users/{id}`, `POST /node/api/users`.
//!
//! The same users as the Rocket.Chat routes (see [`super::view`] for the
//! field mapping): a user created here logs in there, and the reverse.

use super::auth::{ManageUsers, SaymonAuth, Via};
use super::error::SaymonError;
use super::view::{
    token_hint, LimitedUserView, UserEntry, UserView, STATUS_ACTIVE, STATUS_BLOCKED,
};
use crate::core::model::{Email, User};
use crate::core::password::hash_password;
use crate::core::permissions::MANAGE_USERS;
use crate::core::service::NewUser;
use crate::core::validate::nonblank;
use crate::core::validate::{is_plausible_email, is_valid_username};
use crate::core::Core;
use crate::http::ApiTags;
use crate::store::{UniqueField, UserKey, UserPatch};
use poem_openapi::{param::Path, payload::Json, ApiResponse, Object, OpenApi};
use std::collections::HashMap;
use std::sync::Arc;

/// Users listed per store call while building `GET /node/api/users`.
const LIST_PAGE: u64 = 500;

/// Refusal to block or delete the last active admin.
const LAST_ADMIN: &str = "Leaving the app without an active admin is not allowed.";

/// The users routes.
pub struct UsersApi {
    pub core: Arc<Core>,
}

/// Body of `POST /node/api/users`. `login` or `email` is required; without
/// `login`, it is made from the email address's local part.
#[derive(Object, Clone)]
#[oai(rename = "SaymonNewUser")]
pub struct NewUserBody {
    /// Login name: letters, digits, `-`, `_`, `.`.
    pub login: Option<String>,
    /// Email address; can be used to log in.
    pub email: Option<String>,
    /// Password. Without one, the user can only use an API token.
    #[oai(write_only)]
    pub password: Option<String>,
    /// Display name; must differ from the login.
    #[oai(rename = "displayName")]
    pub display_name: Option<String>,
    /// The user's own permissions (on top of its roles').
    pub permissions: Option<Vec<String>>,
    /// 2 active (default), 3 blocked.
    pub status: Option<i32>,
}

/// Body of `PATCH /node/api/users/{id}`: only the fields given change; other
/// fields of the SAYMON user model are ignored. `status` 3 or `active: false`
/// blocks the user and ends all its tokens and sessions.
#[derive(Object, Clone)]
#[oai(rename = "SaymonUserPatch")]
pub struct UserPatchBody {
    /// New login name: letters, digits, `-`, `_`, `.`.
    pub login: Option<String>,
    /// Replaces the first email address.
    pub email: Option<String>,
    /// A new password.
    #[oai(write_only)]
    pub password: Option<String>,
    /// New display name: not blank, and different from the login.
    #[oai(rename = "displayName")]
    pub display_name: Option<String>,
    /// Replaces the user's own permissions.
    pub permissions: Option<Vec<String>>,
    /// 2 active, 3 blocked.
    pub status: Option<i32>,
    /// `true` active, `false` blocked.
    pub active: Option<bool>,
}

redacted_debug!(NewUserBody, login, email, display_name, permissions, status);
redacted_debug!(
    UserPatchBody,
    login,
    email,
    display_name,
    permissions,
    status,
    active
);

/// A user.
#[derive(ApiResponse, Debug)]
pub enum UserOk {
    #[oai(status = 200)]
    Ok(Json<UserView>),
}

/// A user, in full or limited, by the caller's `manage-users` permission.
#[derive(ApiResponse, Debug)]
pub enum UserEntryOk {
    #[oai(status = 200)]
    Ok(Json<UserEntry>),
}

/// Every user, in full or limited, by the caller's `manage-users` permission.
#[derive(ApiResponse, Debug)]
pub enum UsersOk {
    #[oai(status = 200)]
    Ok(Json<Vec<UserEntry>>),
}

/// The user is gone.
#[derive(ApiResponse, Debug)]
pub enum UserDeleted {
    /// Empty body.
    #[oai(status = 200)]
    Ok,
}

fn duplicate(field: UniqueField) -> SaymonError {
    SaymonError::bad_request(match field {
        UniqueField::Username => "This login is already taken.",
        UniqueField::Email => "This email address is already taken.",
        UniqueField::Other => "A user with these details already exists.",
    })
}

fn check_login(login: &str) -> Result<(), SaymonError> {
    if is_valid_username(login) {
        Ok(())
    } else {
        Err(SaymonError::bad_request(
            "Invalid login: use 1 to 64 letters, digits, '-', '_' or '.'.",
        ))
    }
}

fn check_email(email: &str) -> Result<(), SaymonError> {
    if is_plausible_email(email) {
        Ok(())
    } else {
        Err(SaymonError::bad_request("Invalid email address."))
    }
}

fn check_display_name(name: &str, login: &str) -> Result<(), SaymonError> {
    if name.eq_ignore_ascii_case(login) {
        Err(SaymonError::bad_request(
            "displayName must differ from login.",
        ))
    } else {
        Ok(())
    }
}

fn check_password(password: &str) -> Result<(), SaymonError> {
    if password.is_empty() {
        Err(SaymonError::missing("password"))
    } else {
        Ok(())
    }
}

/// `status` and `active` to one flag; 400 for other values or a contradiction.
fn active_flag(status: Option<i32>, active: Option<bool>) -> Result<Option<bool>, SaymonError> {
    let from_status = match status {
        None => None,
        Some(STATUS_ACTIVE) => Some(true),
        Some(STATUS_BLOCKED) => Some(false),
        Some(_) => {
            return Err(SaymonError::bad_request(
                "Invalid status: use 2 (active) or 3 (blocked).",
            ))
        }
    };
    match (from_status, active) {
        (Some(a), Some(b)) if a != b => {
            Err(SaymonError::bad_request("status and active disagree."))
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// A login made from an email address: its local part, keeping only the
/// characters a login may have.
fn login_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect()
}

/// The user with this id; 404 `ResourceNotFound` when there is none.
pub async fn user_by_id(core: &Core, id: &str) -> Result<User, SaymonError> {
    core.store()
        .find_user(&UserKey::Id(id.to_string()))
        .await?
        .ok_or_else(|| SaymonError::user_not_found(id))
}

impl UsersApi {
    async fn entry(&self, user: &User, full: bool) -> Result<UserEntry, SaymonError> {
        Ok(if full {
            UserEntry::Full(UserView::full(&self.core, user).await?)
        } else {
            UserEntry::Limited(LimitedUserView::from(user))
        })
    }
}

#[OpenApi(tag = "ApiTags::Saymon")]
impl UsersApi {
    /// The caller: its login, email, display name, API token hint (never
    /// the token), status and effective permissions.
    #[oai(
        path = "/node/api/users/current",
        method = "get",
        operation_id = "saymon.users.current"
    )]
    async fn current(&self, auth: SaymonAuth) -> Result<UserOk, SaymonError> {
        let known = match &auth.0.via {
            Via::ApiToken { last_part } => Some(last_part.as_str()),
            _ => None,
        };
        let view = UserView::current(&self.core, &auth.0.user, known).await?;
        Ok(UserOk::Ok(Json(view)))
    }

    /// Every user, sorted by login. With `manage-users`: all fields. Without:
    /// only `id`, and in `login` the display name or the masked login.
    #[oai(
        path = "/node/api/users",
        method = "get",
        operation_id = "saymon.users.list"
    )]
    async fn list(&self, auth: SaymonAuth) -> Result<UsersOk, SaymonError> {
        let full = self.core.has_permission(&auth.0.user, MANAGE_USERS).await?;
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let (page, total) = self.core.store().list_users(offset, LIST_PAGE).await?;
            let fetched = page.len() as u64;
            if full {
                // One call for the page's token hints, not one per user.
                let ids: Vec<String> = page.iter().map(|u| u.id.clone()).collect();
                let hints: HashMap<String, String> = self
                    .core
                    .store()
                    .api_tokens_of(&ids)
                    .await?
                    .into_iter()
                    .map(|t| (t.user_id, token_hint(&t.last_part)))
                    .collect();
                out.extend(page.iter().map(|u| {
                    let hint = hints.get(&u.id).cloned();
                    UserEntry::Full(UserView::new(u, u.permissions.clone(), hint))
                }));
            } else {
                out.extend(
                    page.iter()
                        .map(|u| UserEntry::Limited(LimitedUserView::from(u))),
                );
            }
            offset += fetched;
            if fetched == 0 || offset >= total {
                break;
            }
        }
        Ok(UsersOk::Ok(Json(out)))
    }

    /// One user, with the same field rule as the listing. 404
    /// `ResourceNotFound` for an unknown id.
    #[oai(
        path = "/node/api/users/:id",
        method = "get",
        operation_id = "saymon.users.get"
    )]
    async fn get(
        &self,
        auth: SaymonAuth,
        /// The user's id.
        id: Path<String>,
    ) -> Result<UserEntryOk, SaymonError> {
        let full = self.core.has_permission(&auth.0.user, MANAGE_USERS).await?;
        let user = user_by_id(&self.core, &id.0).await?;
        Ok(UserEntryOk::Ok(Json(self.entry(&user, full).await?)))
    }

    /// Create a user (permission `manage-users`) with role `user`. 400
    /// `BadRequest` for a missing or invalid field or a login or email
    /// already taken.
    #[oai(
        path = "/node/api/users",
        method = "post",
        operation_id = "saymon.users.create"
    )]
    async fn create(
        &self,
        _auth: ManageUsers,
        body: Json<NewUserBody>,
    ) -> Result<UserOk, SaymonError> {
        let body = body.0;
        let email = nonblank(body.email.as_deref()).map(str::to_string);
        if let Some(email) = &email {
            check_email(email)?;
        }
        let login = match (nonblank(body.login.as_deref()), &email) {
            (Some(login), _) => login.to_string(),
            (None, Some(email)) => login_from_email(email),
            (None, None) => return Err(SaymonError::missing("login")),
        };
        check_login(&login)?;
        let name = nonblank(body.display_name.as_deref()).map(str::to_string);
        if let Some(name) = &name {
            check_display_name(name, &login)?;
        }
        if let Some(password) = &body.password {
            check_password(password)?;
        }
        let active = active_flag(body.status, None)?.unwrap_or(true);
        let created = self
            .core
            .create_user(NewUser {
                username: login,
                name,
                email,
                email_verified: false,
                password: body.password,
                roles: vec!["user".into()],
                permissions: body.permissions.unwrap_or_default(),
                active,
                require_password_change: false,
                kind: "user".into(),
            })
            .await?
            .map_err(duplicate)?;
        Ok(UserOk::Ok(Json(
            UserView::full(&self.core, &created).await?,
        )))
    }

    /// Change a user (permission `manage-users`); only the fields given
    /// change. Blocking the user (`status` 3 or `active: false`) ends all its
    /// tokens and sessions. 404 `ResourceNotFound` for an unknown id.
    #[oai(
        path = "/node/api/users/:id",
        method = "patch",
        operation_id = "saymon.users.update"
    )]
    async fn update(
        &self,
        _auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
        body: Json<UserPatchBody>,
    ) -> Result<UserOk, SaymonError> {
        let body = body.0;
        let user = user_by_id(&self.core, &id.0).await?;
        let mut patch = UserPatch::default();
        if let Some(login) = body.login.as_deref() {
            let login = login.trim();
            check_login(login)?;
            patch.username = Some(login.to_string());
        }
        if let Some(email) = body.email.as_deref() {
            let email = email.trim();
            check_email(email)?;
            let mut emails = user.emails.clone();
            let new = Email {
                address: email.to_string(),
                verified: false,
            };
            match emails.first_mut() {
                Some(first) if first.address.eq_ignore_ascii_case(email) => {}
                Some(first) => *first = new,
                None => emails.push(new),
            }
            patch.emails = Some(emails);
        }
        let login = patch
            .username
            .clone()
            .or_else(|| user.username.clone())
            .unwrap_or_default();
        if let Some(name) = body.display_name.as_deref() {
            let name = name.trim();
            if name.is_empty() {
                return Err(SaymonError::missing("displayName"));
            }
            patch.name = Some(name.to_string());
        }
        // The rule holds for the result: a new login may not take the
        // current display name either. Untouched users (e.g. made through
        // Rocket.Chat with name = username) are left alone.
        if patch.username.is_some() || patch.name.is_some() {
            if let Some(name) = patch.name.as_deref().or(user.name.as_deref()) {
                check_display_name(name, &login)?;
            }
        }
        if let Some(password) = body.password.as_deref() {
            check_password(password)?;
        }
        patch.permissions = body.permissions;
        patch.active = active_flag(body.status, body.active)?;
        if patch.active == Some(false) && self.core.is_last_active_admin(&user).await? {
            return Err(SaymonError::bad_request(LAST_ADMIN));
        }
        // Hashed only once every check has passed: bcrypt is the costly part.
        if let Some(password) = body.password.as_deref() {
            patch.password_bcrypt = Some(hash_password(password).await?);
        }
        let updated = self
            .core
            .update_user(&user.id, patch)
            .await?
            .map_err(duplicate)?
            .ok_or_else(|| SaymonError::user_not_found(&id.0))?;
        Ok(UserOk::Ok(Json(
            UserView::full(&self.core, &updated).await?,
        )))
    }

    /// Delete a user (permission `manage-users`) and everything that
    /// authenticates as it. Empty body. 404 `ResourceNotFound` for an unknown id.
    #[oai(
        path = "/node/api/users/:id",
        method = "delete",
        operation_id = "saymon.users.delete"
    )]
    async fn delete(
        &self,
        _auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<UserDeleted, SaymonError> {
        let user = user_by_id(&self.core, &id.0).await?;
        if self.core.is_last_active_admin(&user).await? {
            return Err(SaymonError::bad_request(LAST_ADMIN));
        }
        if self.core.delete_user(&user.id).await? {
            Ok(UserDeleted::Ok)
        } else {
            Err(SaymonError::user_not_found(&id.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_from_emails_keep_allowed_characters() {
        assert_eq!(login_from_email("john.doe+x@example.com"), "john.doex");
        assert_eq!(login_from_email("bob@example.com"), "bob");
    }

    #[test]
    fn status_and_active_agree_or_fail() {
        assert_eq!(active_flag(Some(2), None).ok(), Some(Some(true)));
        assert_eq!(active_flag(Some(3), Some(false)).ok(), Some(Some(false)));
        assert_eq!(active_flag(None, None).ok(), Some(None));
        assert!(active_flag(Some(1), None).is_err());
        assert!(active_flag(Some(2), Some(false)).is_err());
    }
}

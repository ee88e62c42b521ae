//! Users: `GET /node/api/users/current`, `GET /node/api/users`,
//! `GET|PATCH|DELETE /node/api/users/{id}`, `POST /node/api/users`.
//!
//! The same users as the Rocket.Chat routes (see [`super::view`] for the
//! field mapping): a user created here logs in there, and the reverse.

use super::auth::{refused_error, ManageUsers, SaymonAuth};
use super::error::SaymonError;
use super::view::{
    token_hint, LimitedUserView, UserEntry, UserView, STATUS_ACTIVE, STATUS_BLOCKED,
};
use crate::core::model::User;
use crate::core::password::PasswordInput;
use crate::core::service::{
    CreateUser, DeleteUser, Denied, EmailChange, NewUser, UpdateUser, UserChanges,
};
use crate::core::validate::{self, is_plausible_email, is_valid_username, nonblank};
use crate::core::{Caller, Core, Permission, UniqueField, UserKey};
use crate::http::ApiTags;
use poem_openapi::param::{Path, Query};
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};
use std::sync::Arc;

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
    /// A new password. Changing one's own needs `currentPassword`.
    #[oai(write_only)]
    pub password: Option<String>,
    /// The caller's current password (plain), required with `password`
    /// when changing one's own. A tokend field: SAYMON documents none.
    #[oai(write_only, rename = "currentPassword")]
    pub current_password: Option<String>,
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

crate::redacted_debug!(NewUserBody, login, email, display_name, permissions, status);
crate::redacted_debug!(
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

/// A page of users, in full or limited, by the caller's `manage-users`
/// permission; `X-Total-Count` says how many users there are in all.
#[derive(ApiResponse, Debug)]
pub enum UsersOk {
    #[oai(status = 200)]
    Ok(
        Json<Vec<UserEntry>>,
        /// How many users there are (every page together).
        #[oai(header = "X-Total-Count")]
        u64,
    ),
}

/// The user is gone.
#[derive(ApiResponse, Debug)]
pub enum UserDeleted {
    /// Empty body.
    #[oai(status = 200)]
    Ok,
}

/// 400 for a change manage-users does not cover; 403 for one beyond the
/// caller's own permissions.
fn refusal(denied: Denied) -> SaymonError {
    match denied {
        Denied::CurrentPasswordRequired => SaymonError::missing("currentPassword"),
        Denied::Outranked | Denied::Escalation => SaymonError::beyond_own_permissions(),
        Denied::AssignAdmin => SaymonError::forbidden(Permission::AssignAdminRole.id()),
        Denied::Roles => SaymonError::forbidden(Permission::AssignRoles.id()),
        Denied::OwnVerification
        | Denied::EditOthers
        | Denied::RequirePasswordChange
        | Denied::Permissions
        | Denied::OthersPassword
        | Denied::ActiveStatus => SaymonError::forbidden(Permission::ManageUsers.id()),
    }
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
async fn user_by_id(core: &Core, by: &Caller, id: &str) -> Result<User, SaymonError> {
    core.find_user(by, &UserKey::Id(id.to_string()))
        .await?
        .ok_or_else(|| SaymonError::user_not_found(id))
}

impl UsersApi {
    async fn entry(&self, by: &Caller, user: &User, full: bool) -> Result<UserEntry, SaymonError> {
        Ok(if full {
            UserEntry::Full(UserView::full(&self.core, by, user).await?)
        } else {
            UserEntry::Limited(LimitedUserView::from(user))
        })
    }

    async fn manages_users(&self, caller: &Caller) -> Result<bool, SaymonError> {
        Ok(self.core.holds(caller, Permission::ManageUsers).await?)
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
        let view = UserView::current(&self.core, &auth.0).await?;
        Ok(UserOk::Ok(Json(view)))
    }

    /// A page of users, sorted by login: `limit` of them (default 100, at
    /// most 500) after the first `skip`; `X-Total-Count` is the number of
    /// users in all. With `manage-users`: all fields. Without: only `id`,
    /// and in `login` the display name or the masked login.
    #[oai(
        path = "/node/api/users",
        method = "get",
        operation_id = "saymon.users.list"
    )]
    async fn list(
        &self,
        auth: SaymonAuth,
        /// Users to return (default 100, at most 500; more is taken as 500).
        limit: Query<Option<u64>>,
        /// Users to pass over first (default 0).
        skip: Query<Option<u64>>,
    ) -> Result<UsersOk, SaymonError> {
        let caller = &auth.0;
        let Some(limit) = validate::users_page_limit(limit.0) else {
            return Err(SaymonError::bad_request("limit must be at least 1"));
        };
        let skip = skip.0.unwrap_or(0);
        if !validate::is_page_number(skip) {
            return Err(SaymonError::bad_request(format!(
                "skip must be at most {}",
                validate::MAX_PAGE_NUMBER
            )));
        }
        let full = self.manages_users(caller).await?;
        let page = self.core.list_users(caller, skip, limit).await?;
        let out = if full {
            // One call for the page's token hints, not one per user.
            let ids: Vec<String> = page.users.iter().map(|u| u.id.clone()).collect();
            let hints = self.core.api_token_hints(caller, &ids).await?;
            page.users
                .iter()
                .map(|u| {
                    let hint = hints.get(&u.id).map(|h| token_hint(h));
                    UserEntry::Full(UserView::new(u, u.permissions.clone(), hint))
                })
                .collect()
        } else {
            page.users
                .iter()
                .map(|u| UserEntry::Limited(LimitedUserView::from(u)))
                .collect()
        };
        Ok(UsersOk::Ok(Json(out), page.total))
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
        let caller = &auth.0;
        let full = self.manages_users(caller).await?;
        let user = user_by_id(&self.core, caller, &id.0).await?;
        Ok(UserEntryOk::Ok(Json(
            self.entry(caller, &user, full).await?,
        )))
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
        auth: ManageUsers,
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
        let new = NewUser {
            username: login,
            name,
            email,
            email_verified: false,
            password: body.password,
            roles: Vec::new(),
            permissions: body.permissions.unwrap_or_default(),
            active,
            require_password_change: false,
            kind: "user".into(),
        };
        let created = match self.core.create_user(&auth.0, new).await? {
            CreateUser::Created(user) => user,
            CreateUser::Taken(field) => return Err(duplicate(field)),
            CreateUser::NotAllowed(denied) => return Err(refusal(denied)),
        };
        let view = UserView::full(&self.core, auth.0.caller(), &created).await?;
        Ok(UserOk::Ok(Json(view)))
    }

    /// Change a user (permission `manage-users`); only the fields given
    /// change. Blocking the user (`status` 3 or `active: false`) ends all its
    /// tokens and sessions; a new password ends its login tokens and
    /// sessions. 404 `ResourceNotFound` for an unknown id. Changing one's own
    /// password or email is a protected action: a user with a second factor
    /// sends its code in `X-2FA-Code` (Basic auth already carries it).
    #[oai(
        path = "/node/api/users/:id",
        method = "patch",
        operation_id = "saymon.users.update"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
        body: Json<UserPatchBody>,
    ) -> Result<UserOk, SaymonError> {
        let body = body.0;
        let caller = auth.0.caller();
        let user = user_by_id(&self.core, caller, &id.0).await?;
        let mut changes = UserChanges::default();
        if let Some(login) = body.login.as_deref() {
            let login = login.trim();
            check_login(login)?;
            changes.username = Some(login.to_string());
        }
        if let Some(email) = body.email.as_deref() {
            let email = email.trim();
            check_email(email)?;
            changes.email = Some(EmailChange {
                address: Some(email.to_string()),
                verified: None,
            });
        }
        let login = changes
            .username
            .clone()
            .or_else(|| user.username.clone())
            .unwrap_or_default();
        if let Some(name) = body.display_name.as_deref() {
            let name = name.trim();
            if name.is_empty() {
                return Err(SaymonError::missing("displayName"));
            }
            changes.name = Some(name.to_string());
        }
        // The rule holds for the result: a new login may not take the
        // current display name either. Untouched users (e.g. made through
        // Rocket.Chat with name = username) are left alone.
        if changes.username.is_some() || changes.name.is_some() {
            if let Some(name) = changes.name.as_deref().or(user.name.as_deref()) {
                check_display_name(name, &login)?;
            }
        }
        if let Some(password) = body.password.as_deref() {
            check_password(password)?;
        }
        changes.password = body.password;
        changes.current_password = body.current_password.map(PasswordInput::Plain);
        changes.permissions = body.permissions;
        changes.active = active_flag(body.status, body.active)?;
        let second_factor = super::auth::second_factor_of(req);
        let ip = crate::http::client_ip(&self.core, req);
        match self
            .core
            .confirm_user_update(caller, &user.id, &changes, &second_factor, ip)
            .await?
        {
            crate::core::service::Confirmed::Yes => {}
            crate::core::service::Confirmed::Refused(r) => {
                return Err(super::auth::refused_error(
                    r,
                    SaymonError::invalid_credentials,
                ))
            }
        }
        match self.core.update_user(caller, &user.id, changes).await? {
            UpdateUser::Updated(updated) => {
                let view = UserView::full(&self.core, caller, &updated).await?;
                Ok(UserOk::Ok(Json(view)))
            }
            UpdateUser::NoSuchUser => Err(SaymonError::user_not_found(&id.0)),
            UpdateUser::Taken(field) => Err(duplicate(field)),
            UpdateUser::LastAdmin => Err(SaymonError::bad_request(LAST_ADMIN)),
            UpdateUser::NotAllowed(denied) => Err(refusal(denied)),
            UpdateUser::CurrentPassword(refused) => Err(refused_error(refused, || {
                SaymonError::bad_request("currentPassword is wrong.")
            })),
            // Roles are not set here.
            UpdateUser::UnknownRole => Err(SaymonError::forbidden(Permission::ManageUsers.id())),
        }
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
        auth: ManageUsers,
        /// The user's id.
        id: Path<String>,
    ) -> Result<UserDeleted, SaymonError> {
        let key = UserKey::Id(id.0.clone());
        match self.core.delete_user(&auth.0, &key).await? {
            DeleteUser::Deleted => Ok(UserDeleted::Ok),
            DeleteUser::NoSuchUser => Err(SaymonError::user_not_found(&id.0)),
            DeleteUser::LastAdmin => Err(SaymonError::bad_request(LAST_ADMIN)),
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

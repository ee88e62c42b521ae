//! User administration: `users.create`, `users.info`, `users.list`,
//! `users.update`, `users.setActiveStatus`, `users.delete`, `users.logout`.
//!
//! Checks run in Rocket.Chat's order and fail with its texts (`saveUser`'s
//! `validateUserData` for create and update). Bodies can only set the fields
//! named in their schema: never `_id` or `services`; unknown fields are ignored.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use super::tokens::{invalid_user, user_param};
use super::view::{ListedUserView, Projection, UserView};
use crate::core::model::User;
use crate::core::password::PasswordInput;
use crate::core::service::{
    Browse, BrowseUsers, CreateUser, DeleteUser, Denied, EmailChange, LogoutUser, NewUser,
    ReadUser, Refused, Register, SetActive, UpdateUser, UserChanges,
};
use crate::core::userquery::QueryError;
use crate::core::validate::{self, nonblank};
use crate::core::validate::{is_plausible_email, is_valid_username};
use crate::core::{ids, perm, Caller, Core, Granted, Perm, UniqueField, UserKey};
use crate::http::{ApiTags, DialectError};
use poem_openapi::param::Query;
use poem_openapi::{payload::Json, Object, OpenApi};
use serde_json::json;
use std::sync::Arc;

/// The user-administration routes.
pub struct UsersApi {
    pub core: Arc<Core>,
}

/// Default page size of `users.list`.
pub const DEFAULT_COUNT: u64 = 50;
/// Largest page size of `users.list`.
pub const MAX_COUNT: u64 = 100;

/// Body of `users.create`. `email`, `name`, `username` and `password` are
/// required (`password` not with `setRandomPassword`). Rocket.Chat's other
/// fields (`joinDefaultChannels`, `sendWelcomeEmail`, `customFields`, ...)
/// are accepted and ignored.
#[derive(Object, Clone, Default)]
pub struct CreateUserBody {
    pub email: Option<String>,
    /// Display name.
    pub name: Option<String>,
    pub password: Option<String>,
    /// Letters, digits, `-`, `_` and `.`.
    pub username: Option<String>,
    /// Default `true`.
    pub active: Option<bool>,
    /// Role ids; default `["user"]`. Each must exist.
    pub roles: Option<Vec<String>>,
    /// Default `false`.
    #[oai(rename = "requirePasswordChange")]
    pub require_password_change: Option<bool>,
    /// Whether the email address is verified; default `false`.
    pub verified: Option<bool>,
    /// Give the user a random password nobody knows (it can then only get
    /// tokens through `users.createToken`).
    #[oai(rename = "setRandomPassword")]
    pub set_random_password: Option<bool>,
}

crate::redacted_debug!(CreateUserBody, email, name, username, active, roles);

/// `{"user": {...}, "success": true}`
#[derive(Object, Debug)]
pub struct UserOk {
    pub user: UserView,
    pub success: bool,
}

/// A page of users.
#[derive(Object, Debug)]
pub struct UserListOk {
    pub users: Vec<ListedUserView>,
    /// Number of users in this page.
    pub count: u64,
    pub offset: u64,
    /// Number of users in all.
    pub total: u64,
    pub success: bool,
}

/// The fields `users.update` may change. Empty strings leave a field alone,
/// as in Rocket.Chat.
#[derive(Object, Clone, Default)]
pub struct UpdateUserData {
    /// Replaces the first email address (unverified unless `verified` is true).
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
    pub username: Option<String>,
    /// Needs `edit-other-user-active-status`; `false` ends every token and session.
    pub active: Option<bool>,
    /// Needs `edit-other-user-info`, also for oneself.
    pub roles: Option<Vec<String>>,
    /// Needs `edit-other-user-info`, also for oneself.
    #[oai(rename = "requirePasswordChange")]
    pub require_password_change: Option<bool>,
    /// Marks the email address verified or not; not for oneself.
    pub verified: Option<bool>,
}

crate::redacted_debug!(
    UpdateUserData,
    email,
    name,
    username,
    active,
    roles,
    verified
);

/// Body of `users.update`.
#[derive(Object, Debug, Clone, Default)]
pub struct UpdateUserBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    pub data: Option<UpdateUserData>,
}

/// The fields of `users.updateOwnBasicInfo`'s `data`. Empty strings leave
/// a field alone. Rocket.Chat's `nickname`, `bio`, `statusText` and
/// `customFields` are accepted and ignored (tokend keeps none of them).
#[derive(Object, Clone, Default)]
pub struct OwnBasicInfoData {
    /// Replaces the first email address (unverified).
    pub email: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    /// The current password as the lowercase SHA-256 hex of it, as
    /// Rocket.Chat's clients send it; required with `newPassword`.
    #[oai(rename = "currentPassword", write_only)]
    pub current_password: Option<String>,
    /// The new password, plain. Every other login token and session of the
    /// user ends; the one in use stays.
    #[oai(rename = "newPassword", write_only)]
    pub new_password: Option<String>,
}

crate::redacted_debug!(OwnBasicInfoData, email, name, username);

/// Body of `users.updateOwnBasicInfo`.
#[derive(Object, Debug, Clone, Default)]
pub struct OwnBasicInfoBody {
    pub data: Option<OwnBasicInfoData>,
}

/// Body of `users.register`: all four required.
#[derive(Object, Clone, Default)]
pub struct RegisterBody {
    pub username: Option<String>,
    pub email: Option<String>,
    /// The password.
    #[oai(write_only)]
    pub pass: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

crate::redacted_debug!(RegisterBody, username, email, name);

/// Body of `users.deactivateIdle`.
#[derive(Object, Debug, Clone, Default)]
pub struct DeactivateIdleBody {
    /// Deactivate users whose last login is at least this many days ago.
    #[oai(rename = "daysIdle")]
    pub days_idle: Option<u32>,
    /// Only users holding this role; default `user`.
    pub role: Option<String>,
}

/// `{"count": n, "success": true}`
#[derive(Object, Debug)]
pub struct CountOk {
    /// How many users were deactivated.
    pub count: u64,
    pub success: bool,
}

/// Body of `users.setActiveStatus`.
#[derive(Object, Debug, Clone, Default)]
pub struct SetActiveStatusBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    #[oai(rename = "activeStatus")]
    pub active_status: Option<bool>,
}

/// `{"_id", "active"}`
#[derive(Object, Debug)]
pub struct ActiveView {
    #[oai(rename = "_id")]
    pub id: String,
    pub active: bool,
}

/// `{"user": {"_id", "active"}, "success": true}`
#[derive(Object, Debug)]
pub struct ActiveOk {
    pub user: ActiveView,
    pub success: bool,
}

/// Body of `users.delete`: the first non-blank of `userId`, `username`, `user`.
#[derive(Object, Debug, Clone, Default)]
pub struct DeleteUserBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    pub username: Option<String>,
    pub user: Option<String>,
}

/// `{"deletedRooms": [], "success": true}` (tokend has no rooms).
#[derive(Object, Debug)]
pub struct DeleteOk {
    #[oai(rename = "deletedRooms")]
    pub deleted_rooms: Vec<String>,
    pub success: bool,
}

/// Body of `users.logout`; without `userId` the caller logs itself out.
#[derive(Object, Debug, Clone, Default)]
pub struct LogoutUserBody {
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
}

/// `{"message": "User <id> has been logged out!", "success": true}`
#[derive(Object, Debug)]
pub struct LogoutUserOk {
    pub message: String,
    pub success: bool,
}

const SAVE_USER: &str = "insertOrUpdateUser";

/// 400 of Rocket.Chat's body validation for a missing property.
fn missing(property: &str) -> RcError {
    RcError::thrown(
        "invalid-params",
        &format!("must have required property '{property}'"),
        None,
    )
}

/// 400 of Rocket.Chat's `parseJsonQuery` for a parameter it cannot use
/// (`error-invalid-query`, `-sort`, `-fields`). Rocket.Chat appends the
/// parameter in quotes; tokend echoes no submitted value.
fn parse_json_query_error(code: &str, reason: &str) -> RcError {
    RcError::thrown(
        code,
        reason,
        Some(json!({ "helperMethod": "parseJsonQuery" })),
    )
}

fn not_allowed(reason: &str, action: &str) -> RcError {
    RcError::thrown(
        "error-action-not-allowed",
        reason,
        Some(json!({ "method": SAVE_USER, "action": action })),
    )
}

/// Rocket.Chat's answer to a change the caller may not make
/// (`validateUserData` and `validateUserEditing` texts).
pub(super) fn refusal(denied: Denied) -> RcError {
    match denied {
        Denied::OwnVerification => {
            not_allowed("Editing email verification is not allowed", "Editing_user")
        }
        Denied::EditOthers
        | Denied::RequirePasswordChange
        | Denied::Permissions
        | Denied::Outranked => not_allowed("Editing user is not allowed", "Editing_user"),
        Denied::Roles | Denied::Escalation => {
            not_allowed("Assign roles is not allowed", "Assign_role")
        }
        Denied::AssignAdmin => not_allowed("Assigning admin is not allowed", "Assign_admin"),
        Denied::OthersPassword | Denied::CurrentPasswordRequired => {
            not_allowed("Edit user password is not allowed", "Update_user")
        }
        Denied::ActiveStatus => RcError::thrown(
            "error-not-allowed",
            "Not allowed",
            Some(json!({ "method": "setUserActiveStatus" })),
        ),
    }
}

/// Rocket.Chat's answer when the current password of a change is refused
/// (its password check is the second factor `password`).
pub(super) fn current_password_refused(refused: Refused) -> RcError {
    match refused {
        Refused::Rejected => RcError::thrown(
            "totp-invalid",
            "TOTP Invalid",
            Some(json!({ "method": "password" })),
        ),
        Refused::Blocked(b) => super::session::blocked(b),
        Refused::Busy(b) => RcError::too_busy(b.retry_after),
        second_factor @ Refused::SecondFactor(_) => super::twofactor::guard_error(second_factor),
    }
}

fn field_required(field: &str) -> RcError {
    RcError::thrown(
        "error-the-field-is-required",
        &format!("The field {field} is required"),
        Some(json!({ "method": SAVE_USER, "field": field })),
    )
}

fn field_unavailable(value: &str) -> RcError {
    RcError::thrown(
        "error-field-unavailable",
        &format!("{} is already in use :(", html_escape(value)),
        Some(json!({ "method": SAVE_USER, "field": value })),
    )
}

fn invalid_username(name: &str) -> RcError {
    RcError::thrown(
        "error-input-is-not-a-valid-field",
        &format!("{} is not a valid username", html_escape(name)),
        Some(json!({ "method": SAVE_USER, "input": name, "field": "Username" })),
    )
}

fn invalid_email(email: &str) -> RcError {
    RcError::thrown(
        "error-invalid-email",
        &format!("Invalid email {}", html_escape(email)),
        Some(json!({ "function": "RocketChat.validateEmailDomain", "email": email })),
    )
}

fn last_admin(method: &str) -> RcError {
    RcError::thrown(
        "error-action-not-allowed",
        "Leaving the app without an active admin is not allowed",
        Some(json!({ "method": method, "action": "Remove_last_admin" })),
    )
}

/// lodash `escape`, which Rocket.Chat applies to names it echoes in errors.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Rocket.Chat's `validateNameChars`: no `<`, `>`, `/` or `\`, also URL-encoded.
fn valid_name_chars(name: &str) -> bool {
    let bad = |s: &str| s.contains(['<', '>', '/', '\\']);
    let lower = name.to_ascii_lowercase();
    !bad(name)
        && !["%3c", "%3e", "%2f", "%5c"]
            .iter()
            .any(|e| lower.contains(e))
}

impl UsersApi {
    /// The capability `P`, or `refused`.
    async fn grant<P: Perm>(
        &self,
        caller: &Caller,
        refused: RcError,
    ) -> Result<Granted<P>, RcError> {
        self.core.authorize(caller).await?.ok_or(refused)
    }

    /// `users.update` and `users.updateOwnBasicInfo`: the second factor the
    /// request presents confirms the changes (the core decides when one is
    /// needed), then they are applied.
    async fn confirmed_update(
        &self,
        req: &poem::Request,
        caller: &Caller,
        user_id: &str,
        changes: UserChanges,
    ) -> Result<UpdateUser, RcError> {
        let second_factor = super::twofactor::second_factor_of(req);
        let ip = changes
            .ip
            .or_else(|| crate::http::client_ip(&self.core, req));
        match self
            .core
            .confirm_user_update(caller, user_id, &changes, &second_factor, ip)
            .await?
        {
            crate::core::service::Confirmed::Yes => {}
            crate::core::service::Confirmed::Refused(r) => {
                return Err(super::twofactor::guard_error(r))
            }
        }
        Ok(self.core.update_user(caller, user_id, changes).await?)
    }

    fn invalid_role() -> RcError {
        not_allowed("The field Roles consist invalid role id", "Assign_role")
    }

    /// How `caller` sees `user`: in full for oneself or with
    /// `view-full-other-user-info`, else without email addresses.
    fn view(caller: &User, user: &User, full_others: bool) -> UserView {
        if full_others || caller.id == user.id {
            UserView::full(user)
        } else {
            UserView::limited(user)
        }
    }
}

/// `saveUser`'s answer to a uniqueness clash on the username or email the
/// request set; a clash on anything else is a bug (500).
fn duplicate(field: UniqueField, username: Option<&str>, email: Option<&str>) -> RcError {
    match (field, username, email) {
        (UniqueField::Username, Some(u), _) => field_unavailable(u),
        (UniqueField::Email, _, Some(e)) => field_unavailable(e),
        _ => {
            tracing::error!(?field, "unexpected duplicate key");
            RcError::internal()
        }
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl UsersApi {
    /// Create a user (permission `create-user`). Answers the new user.
    #[oai(
        path = "/api/v1/users.create",
        method = "post",
        operation_id = "users.create"
    )]
    async fn create(
        &self,
        auth: RcAuth,
        body: RcBody<CreateUserBody>,
    ) -> Result<Json<UserOk>, RcError> {
        let b = body.0.unwrap_or_default();
        let random_password = b.set_random_password.unwrap_or(false);
        for (property, present) in [
            ("email", b.email.is_some()),
            ("name", b.name.is_some()),
            ("password", b.password.is_some() || random_password),
            ("username", b.username.is_some()),
        ] {
            if !present {
                return Err(missing(property));
            }
        }
        if b.name.as_deref().is_some_and(|n| !valid_name_chars(n)) {
            return Err(RcError::failure("Name contains invalid characters"));
        }
        let refused = not_allowed("Adding user is not allowed", "Adding_user");
        let grant: Granted<perm::CreateUser> = self.grant(&auth.0, refused).await?;
        if let Some(roles) = &b.roles {
            if !self.core.roles_exist(roles).await? {
                return Err(Self::invalid_role());
            }
        }
        let name = nonblank(b.name.as_deref()).ok_or_else(|| field_required("Name"))?;
        let username = nonblank(b.username.as_deref()).ok_or_else(|| field_required("Username"))?;
        if !is_valid_username(username) {
            return Err(invalid_username(username));
        }
        let password = match nonblank(b.password.as_deref()) {
            Some(p) => p.to_string(),
            None if random_password => ids::new_password(),
            None => return Err(field_required("Password")),
        };
        let email = nonblank(b.email.as_deref()).unwrap_or_default();
        if !is_plausible_email(email) {
            return Err(invalid_email(email));
        }
        let new = NewUser {
            username: username.to_string(),
            name: Some(name.to_string()),
            email: Some(email.to_string()),
            email_verified: b.verified.unwrap_or(false),
            password: Some(password),
            roles: b.roles.clone().unwrap_or_default(),
            permissions: Vec::new(),
            active: b.active.unwrap_or(true),
            require_password_change: b.require_password_change.unwrap_or(false),
            kind: "user".into(),
        };
        match self.core.create_user(&grant, new).await? {
            CreateUser::Created(user) => Ok(Json(UserOk {
                user: UserView::full(&user),
                success: true,
            })),
            CreateUser::Taken(field) => Err(duplicate(field, Some(username), Some(email))),
            CreateUser::NotAllowed(denied) => Err(refusal(denied)),
        }
    }

    /// One user, as Rocket.Chat's `users.info`: by `userId`, `username`,
    /// `importId` or `email` (the first one given). Any logged-in user reads
    /// any user's public fields; email addresses are shown for oneself or
    /// with `view-full-other-user-info`, and looking another user up by email
    /// needs that permission too. `importId` is an entry of Rocket.Chat's
    /// `importIds` (its importers set them): found in a MongoDB database
    /// shared with Rocket.Chat; the SQLite store holds none, so there it
    /// answers "User not found.".
    #[oai(
        path = "/api/v1/users.info",
        method = "get",
        operation_id = "users.info"
    )]
    async fn info(
        &self,
        auth: RcAuth,
        #[oai(name = "userId")] user_id: Query<Option<String>>,
        username: Query<Option<String>>,
        email: Query<Option<String>>,
        #[oai(name = "importId")] import_id: Query<Option<String>>,
    ) -> Result<Json<UserOk>, RcError> {
        let caller = auth.0;
        let key = if let Some(id) = nonblank(user_id.0.as_deref()) {
            UserKey::Id(id.to_string())
        } else if let Some(name) = nonblank(username.0.as_deref()) {
            UserKey::Username(name.to_string())
        } else if let Some(id) = nonblank(import_id.0.as_deref()) {
            UserKey::ImportId(id.to_string())
        } else if let Some(address) = nonblank(email.0.as_deref()) {
            UserKey::Email(address.to_string())
        } else {
            return Err(RcError::failure("Invalid search query."));
        };
        match self.core.read_user(&caller, &key).await? {
            ReadUser::Found { user, full } => Ok(Json(UserOk {
                user: if full {
                    UserView::full(&user)
                } else {
                    UserView::limited(&user)
                },
                success: true,
            })),
            ReadUser::NotFound => Err(RcError::failure("User not found.")),
        }
    }

    /// A page of users, as Rocket.Chat's `users.list`: permission
    /// `view-d-room` (roles admin, user, bot and app), else 403
    /// `{"success":false,"error":"unauthorized"}`; email addresses of others
    /// with `view-full-other-user-info`. `count` defaults to 50 and is capped
    /// at 100; `0` means the cap (Rocket.Chat, with its default
    /// `API_Allow_Infinite_Count`, answers every user: tokend never loads
    /// more than 100 in one request).
    ///
    /// `query`: a JSON filter over `_id`, `username`, `name`, `type`,
    /// `active`, `roles` and (with `view-full-other-user-info`)
    /// `emails.address`, with `$and`, `$or`, `$eq`, `$ne`, `$in`, `$nin`,
    /// `$exists`, `$regex` (`$options` `i`; a restricted, bounded syntax);
    /// anything else is 400 `error-invalid-query`. `sort`: JSON
    /// `{"<field>": 1|-1}` over `username`, `name`, `type`, `active`,
    /// `createdAt`, `_id` (default `username`), else 400
    /// `error-invalid-sort`. `fields`: JSON of `0`s (hide those fields) and
    /// `1`s (no effect), else 400 `error-invalid-fields`; it never shows more
    /// than the caller may see. `total` counts the users passing `query`.
    #[oai(
        path = "/api/v1/users.list",
        method = "get",
        operation_id = "users.list"
    )]
    async fn list(
        &self,
        auth: RcAuth,
        count: Query<Option<u64>>,
        offset: Query<Option<u64>>,
        /// JSON filter, e.g. `{"roles":"admin","active":true}`.
        query: Query<Option<String>>,
        /// JSON order, e.g. `{"createdAt":-1}`.
        sort: Query<Option<String>>,
        /// JSON projection, e.g. `{"emails":0}`.
        fields: Query<Option<String>>,
    ) -> Result<Json<UserListOk>, RcError> {
        let grant: Granted<perm::ViewDRoom> = self
            .grant(&auth.0, RcError::forbidden_unauthorized())
            .await?;
        let caller = grant.caller();
        let (count, offset) = (count.0.unwrap_or(DEFAULT_COUNT), offset.0.unwrap_or(0));
        for (name, n) in [("count", count), ("offset", offset)] {
            if !validate::is_page_number(n) {
                return Err(RcError::invalid_params(&format!(
                    "The parameter \"{name}\" must be at most {}",
                    validate::MAX_PAGE_NUMBER
                )));
            }
        }
        let count = match count {
            0 => MAX_COUNT,
            n => n.min(MAX_COUNT),
        };
        let projection = Projection::parse(fields.0.as_deref()).map_err(|_| {
            parse_json_query_error("error-invalid-fields", "Invalid fields parameter provided")
        })?;
        let request = Browse {
            query: query.0.as_deref(),
            sort: sort.0.as_deref(),
            offset,
            count,
        };
        let listing = match self.core.browse_users(&grant, request).await? {
            BrowseUsers::Page(listing) => listing,
            BrowseUsers::BadQuery(QueryError::Malformed) => {
                return Err(parse_json_query_error(
                    "error-invalid-query",
                    &QueryError::Malformed.to_string(),
                ))
            }
            BrowseUsers::BadQuery(refused) => {
                return Err(RcError::thrown(
                    "error-invalid-query",
                    &refused.to_string(),
                    None,
                ))
            }
            BrowseUsers::BadSort => {
                return Err(parse_json_query_error(
                    "error-invalid-sort",
                    "Invalid sort parameter provided",
                ))
            }
        };
        let users: Vec<ListedUserView> = listing
            .page
            .users
            .iter()
            .map(|u| projection.apply(Self::view(&caller.user, u, listing.full)))
            .collect();
        Ok(Json(UserListOk {
            count: users.len() as u64,
            users,
            offset,
            total: listing.page.total,
            success: true,
        }))
    }

    /// Change a user: oneself (name, username, email, password), or anyone with
    /// `edit-other-user-info`. Roles and `requirePasswordChange` need
    /// `edit-other-user-info`, `active` needs `edit-other-user-active-status`.
    /// A new password ends the user's login tokens and sessions (but the
    /// caller's own, when changing its own). Changing one's own password or
    /// email is a protected action (`X-2FA-Code` / `X-2FA-Method`).
    #[oai(
        path = "/api/v1/users.update",
        method = "post",
        operation_id = "users.update"
    )]
    async fn update(
        &self,
        req: &poem::Request,
        auth: RcAuth,
        body: RcBody<UpdateUserBody>,
    ) -> Result<Json<UserOk>, RcError> {
        let b = body.0.unwrap_or_default();
        let user_id = b.user_id.ok_or_else(|| missing("userId"))?;
        let data = b.data.ok_or_else(|| missing("data"))?;
        if nonblank(data.name.as_deref()).is_some_and(|n| !valid_name_chars(n)) {
            return Err(RcError::failure("Name contains invalid characters"));
        }
        let username = nonblank(data.username.as_deref());
        if let Some(name) = username {
            if !is_valid_username(name) {
                return Err(invalid_username(name));
            }
        }
        let new_email = nonblank(data.email.as_deref());
        if let Some(email) = new_email {
            if !is_plausible_email(email) {
                return Err(invalid_email(email));
            }
        }
        let changes = UserChanges {
            username: username.map(str::to_string),
            name: nonblank(data.name.as_deref()).map(str::to_string),
            email: (new_email.is_some() || data.verified.is_some()).then(|| EmailChange {
                address: new_email.map(str::to_string),
                verified: data.verified,
            }),
            password: nonblank(data.password.as_deref()).map(str::to_string),
            roles: data.roles.clone(),
            permissions: None,
            active: data.active,
            require_password_change: data.require_password_change,
            // Rocket.Chat's users.update takes no current password: one's
            // own goes through users.updateOwnBasicInfo.
            current_password: None,
            ip: None,
        };
        match self
            .confirmed_update(req, &auth.0, &user_id, changes)
            .await?
        {
            UpdateUser::Updated(user) => Ok(Json(UserOk {
                user: UserView::full(&user),
                success: true,
            })),
            UpdateUser::NotAllowed(denied) => Err(refusal(denied)),
            UpdateUser::CurrentPassword(refused) => Err(current_password_refused(refused)),
            UpdateUser::UnknownRole => Err(Self::invalid_role()),
            UpdateUser::NoSuchUser => Err(invalid_user()),
            UpdateUser::LastAdmin => Err(last_admin(SAVE_USER)),
            UpdateUser::Taken(field) => Err(duplicate(field, username, new_email)),
        }
    }

    /// Change one's own name, username, email address or password, as
    /// Rocket.Chat's `users.updateOwnBasicInfo`. A new password
    /// (`newPassword`) needs the current one (`currentPassword`, its SHA-256
    /// hex), checked like a login (a wrong one counts toward the failed-login
    /// block); it ends every other login token and session of the user.
    #[oai(
        path = "/api/v1/users.updateOwnBasicInfo",
        method = "post",
        operation_id = "users.updateOwnBasicInfo"
    )]
    async fn update_own_basic_info(
        &self,
        req: &poem::Request,
        auth: RcAuth,
        body: RcBody<OwnBasicInfoBody>,
    ) -> Result<Json<UserOk>, RcError> {
        let data = body.0.and_then(|b| b.data).ok_or_else(|| missing("data"))?;
        if nonblank(data.name.as_deref()).is_some_and(|n| !valid_name_chars(n)) {
            return Err(RcError::failure("Name contains invalid characters"));
        }
        let username = nonblank(data.username.as_deref());
        if let Some(name) = username {
            if !is_valid_username(name) {
                return Err(invalid_username(name));
            }
        }
        let new_email = nonblank(data.email.as_deref());
        if let Some(email) = new_email {
            if !is_plausible_email(email) {
                return Err(invalid_email(email));
            }
        }
        let new_password = nonblank(data.new_password.as_deref());
        let current_password = nonblank(data.current_password.as_deref());
        if new_password.is_some() && current_password.is_none() {
            return Err(RcError::thrown(
                "totp-required",
                "TOTP Required",
                Some(json!({ "method": "password" })),
            ));
        }
        let changes = UserChanges {
            username: username.map(str::to_string),
            name: nonblank(data.name.as_deref()).map(str::to_string),
            email: new_email.map(|e| EmailChange {
                address: Some(e.to_string()),
                verified: None,
            }),
            password: new_password.map(str::to_string),
            current_password: current_password.map(|d| PasswordInput::Sha256Digest(d.to_string())),
            ip: crate::http::client_ip(&self.core, req),
            ..UserChanges::default()
        };
        let me = auth.0.user.id.clone();
        match self.confirmed_update(req, &auth.0, &me, changes).await? {
            UpdateUser::Updated(user) => Ok(Json(UserOk {
                user: UserView::full(&user),
                success: true,
            })),
            UpdateUser::NotAllowed(denied) => Err(refusal(denied)),
            UpdateUser::CurrentPassword(refused) => Err(current_password_refused(refused)),
            UpdateUser::UnknownRole | UpdateUser::NoSuchUser => Err(invalid_user()),
            UpdateUser::LastAdmin => Err(last_admin(SAVE_USER)),
            UpdateUser::Taken(field) => Err(duplicate(field, username, new_email)),
        }
    }

    /// Activate or deactivate a user (permission `edit-other-user-active-status`).
    /// Deactivation ends every token and session the user has.
    #[oai(
        path = "/api/v1/users.setActiveStatus",
        method = "post",
        operation_id = "users.setActiveStatus"
    )]
    async fn set_active_status(
        &self,
        auth: RcAuth,
        body: RcBody<SetActiveStatusBody>,
    ) -> Result<Json<ActiveOk>, RcError> {
        let grant: Granted<perm::EditOtherUserActiveStatus> =
            self.grant(&auth.0, RcError::forbidden()).await?;
        let b = body.0.unwrap_or_default();
        let user_id = b.user_id.ok_or_else(|| missing("userId"))?;
        let active = b.active_status.ok_or_else(|| missing("activeStatus"))?;
        let user = match self.core.set_active(&grant, &user_id, active).await? {
            SetActive::Done(user) => user,
            SetActive::NoSuchUser => return Err(invalid_user()),
            SetActive::LastAdmin => return Err(last_admin("setUserActiveStatus")),
        };
        Ok(Json(ActiveOk {
            user: ActiveView {
                id: user.id,
                active: user.active,
            },
            success: true,
        }))
    }

    /// Register oneself, as Rocket.Chat's `users.register` (no
    /// authentication): a user with role `user`, only while
    /// `ACCOUNTS_REGISTRATION_FORM=Public` (default `Disabled`). Counted by
    /// the REST rate limit like `login`.
    #[oai(
        path = "/api/v1/users.register",
        method = "post",
        operation_id = "users.register"
    )]
    async fn register(
        &self,
        req: &poem::Request,
        body: RcBody<RegisterBody>,
    ) -> Result<Json<UserOk>, RcError> {
        super::auth::enforce_rate_limit(&self.core, req, None).await?;
        let b = body.0.unwrap_or_default();
        for (property, present) in [
            ("username", b.username.is_some()),
            ("email", b.email.is_some()),
            ("pass", b.pass.is_some()),
            ("name", b.name.is_some()),
        ] {
            if !present {
                return Err(missing(property));
            }
        }
        let name = nonblank(b.name.as_deref()).ok_or_else(|| field_required("Name"))?;
        if !valid_name_chars(name) {
            return Err(RcError::failure("Name contains invalid characters"));
        }
        let username = nonblank(b.username.as_deref()).ok_or_else(|| field_required("Username"))?;
        if !is_valid_username(username) {
            return Err(invalid_username(username));
        }
        let email = nonblank(b.email.as_deref()).unwrap_or_default();
        if !is_plausible_email(email) {
            return Err(invalid_email(email));
        }
        let password = nonblank(b.pass.as_deref()).ok_or_else(|| field_required("Password"))?;
        let new = NewUser {
            username: username.to_string(),
            name: Some(name.to_string()),
            email: Some(email.to_string()),
            password: Some(password.to_string()),
            ..NewUser::default()
        };
        match self.core.register(new).await? {
            Register::Created(user) => Ok(Json(UserOk {
                user: UserView::full(&user),
                success: true,
            })),
            Register::Disabled => Err(RcError::thrown(
                "error-user-registration-disabled",
                "User registration is disabled",
                Some(json!({ "method": "registerUser" })),
            )),
            Register::Taken(UniqueField::Email) => {
                Err(RcError::failure("Email already exists. [403]"))
            }
            Register::Taken(_) => Err(RcError::failure("Username is already in use")),
        }
    }

    /// Deactivate every active user holding `role` (default `user`) whose
    /// last login is `daysIdle` days ago or more, as Rocket.Chat's
    /// `users.deactivateIdle` (permission `edit-other-user-active-status`).
    /// Users never seen logging in stay; so does the last active admin;
    /// each deactivated user's tokens and sessions end.
    #[oai(
        path = "/api/v1/users.deactivateIdle",
        method = "post",
        operation_id = "users.deactivateIdle"
    )]
    async fn deactivate_idle(
        &self,
        auth: RcAuth,
        body: RcBody<DeactivateIdleBody>,
    ) -> Result<Json<CountOk>, RcError> {
        let grant: Granted<perm::EditOtherUserActiveStatus> =
            self.grant(&auth.0, RcError::forbidden()).await?;
        let b = body.0.unwrap_or_default();
        let days = b.days_idle.ok_or_else(|| missing("daysIdle"))?;
        let role = nonblank(b.role.as_deref()).unwrap_or(crate::core::permissions::USER_ROLE);
        let count = self.core.deactivate_idle(&grant, days, role).await?;
        Ok(Json(CountOk {
            count,
            success: true,
        }))
    }

    /// Delete a user and everything that authenticates as it (permission `delete-user`).
    #[oai(
        path = "/api/v1/users.delete",
        method = "post",
        operation_id = "users.delete"
    )]
    async fn delete(
        &self,
        auth: RcAuth,
        body: RcBody<DeleteUserBody>,
    ) -> Result<Json<DeleteOk>, RcError> {
        let grant: Granted<perm::DeleteUser> = self.grant(&auth.0, RcError::forbidden()).await?;
        let b = body.0.unwrap_or_default();
        let key = user_param(
            b.user_id.as_deref(),
            b.username.as_deref(),
            b.user.as_deref(),
        )?;
        match self.core.delete_user(&grant, &key).await? {
            DeleteUser::Deleted => Ok(Json(DeleteOk {
                deleted_rooms: Vec::new(),
                success: true,
            })),
            DeleteUser::NoSuchUser => Err(invalid_user()),
            DeleteUser::LastAdmin => Err(last_admin("deleteUser")),
        }
    }

    /// End every login token and personal access token of a user: oneself
    /// (no body), or another user with `logout-other-user`.
    #[oai(
        path = "/api/v1/users.logout",
        method = "post",
        operation_id = "users.logout"
    )]
    async fn logout(
        &self,
        auth: RcAuth,
        body: RcBody<LogoutUserBody>,
    ) -> Result<Json<LogoutUserOk>, RcError> {
        let caller = auth.0;
        let user_id = body
            .0
            .and_then(|b| b.user_id)
            .filter(|id| !id.trim().is_empty())
            .unwrap_or_else(|| caller.user.id.clone());
        match self.core.logout_user(&caller, &user_id).await? {
            LogoutUser::Done => Ok(Json(LogoutUserOk {
                message: format!("User {user_id} has been logged out!"),
                success: true,
            })),
            LogoutUser::NotAllowed => Err(RcError::forbidden_unauthorized()),
            LogoutUser::NoSuchUser => Err(invalid_user()),
        }
    }
}

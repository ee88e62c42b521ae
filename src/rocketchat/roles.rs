//! Roles and permissions: `permissions.listAll`, `permissions.update`,
//! `roles.list`, `roles.sync`, `roles.getUsersInRole`,
//! `roles.getUsersInPublicRoles`, `roles.addUserToRole`,
//! `roles.removeUserFromRole`, with Rocket.Chat's permissions, bodies and
//! texts (`apps/meteor/app/api/server/v1/roles.ts`, `permissions.ts`).
//! tokend has no rooms: a `roomId` finds nobody in the room.

use super::auth::RcAuth;
use super::body::RcBody;
use super::error::RcError;
use super::tokens::user_param;
use super::users::{refusal, DEFAULT_COUNT, MAX_COUNT};
use super::view::EmailView;
use crate::core::clock::iso;
use crate::core::model::{PermissionEntry, Role, Timestamp, User, UserKey};
use crate::core::service::{RoleMembership, UpdatePermissions, UsersInRole};
use crate::core::validate::{self, nonblank};
use crate::core::{perm, Core, Granted};
use crate::http::ApiTags;
use poem_openapi::param::Query;
use poem_openapi::{payload::Json, Object, OpenApi};
use serde_json::json;
use std::sync::Arc;

/// The roles and permissions routes.
pub struct RolesApi {
    pub core: Arc<Core>,
}

/// A permission: `{_id, roles, _updatedAt}`.
#[derive(Object, Debug, Clone)]
#[oai(rename = "RcPermission")]
pub struct PermissionView {
    #[oai(rename = "_id")]
    pub id: String,
    pub roles: Vec<String>,
    /// When its roles were last written; absent if never recorded.
    #[oai(rename = "_updatedAt", skip_serializing_if_is_none)]
    pub updated_at: Option<String>,
}

impl From<PermissionEntry> for PermissionView {
    fn from(p: PermissionEntry) -> Self {
        Self {
            id: p.id,
            roles: p.roles,
            updated_at: p.updated_at.as_ref().map(iso),
        }
    }
}

/// A role: `{_id, name, scope, description, protected, mandatory2fa, _updatedAt}`.
#[derive(Object, Debug, Clone)]
#[oai(rename = "RcRole")]
pub struct RoleView {
    #[oai(rename = "_id")]
    pub id: String,
    pub name: String,
    /// `Users` (global) or `Subscriptions` (per room).
    pub scope: String,
    pub description: String,
    pub protected: bool,
    /// tokend enforces no per-role 2FA: always `false`.
    pub mandatory2fa: bool,
    #[oai(rename = "_updatedAt", skip_serializing_if_is_none)]
    pub updated_at: Option<String>,
}

impl RoleView {
    fn new(r: Role, with_updated_at: bool) -> Self {
        Self {
            updated_at: r.updated_at.as_ref().filter(|_| with_updated_at).map(iso),
            id: r.id,
            name: r.name,
            scope: r.scope,
            description: r.description,
            protected: r.protected,
            mandatory2fa: false,
        }
    }
}

/// `{update, remove, success}`
#[derive(Object, Debug)]
pub struct PermissionsListOk {
    pub update: Vec<PermissionView>,
    /// Deleted permissions: tokend deletes none, always empty.
    pub remove: Vec<PermissionView>,
    pub success: bool,
}

/// One entry of `permissions.update`'s body.
#[derive(Object, Debug, Clone)]
pub struct PermissionChange {
    #[oai(rename = "_id")]
    pub id: String,
    /// Replaces the roles holding it; unique ids.
    pub roles: Vec<String>,
}

/// Body of `permissions.update`.
#[derive(Object, Debug, Clone, Default)]
pub struct PermissionsUpdateBody {
    pub permissions: Option<Vec<PermissionChange>>,
}

/// `{permissions, success}`
#[derive(Object, Debug)]
pub struct PermissionsUpdateOk {
    pub permissions: Vec<PermissionView>,
    pub success: bool,
}

/// `{roles, success}` (without `_updatedAt`, as Rocket.Chat).
#[derive(Object, Debug)]
pub struct RolesListOk {
    pub roles: Vec<RoleView>,
    pub success: bool,
}

/// `{update, remove}` of `roles.sync`.
#[derive(Object, Debug)]
pub struct RolesSync {
    pub update: Vec<RoleView>,
    /// Deleted roles: tokend deletes none, always empty.
    pub remove: Vec<RoleView>,
}

/// `{roles: {update, remove}, success}`
#[derive(Object, Debug)]
pub struct RolesSyncOk {
    pub roles: RolesSync,
    pub success: bool,
}

/// A role holder as `roles.getUsersInRole` shows it.
#[derive(Object, Debug)]
#[oai(rename = "RcRoleUser")]
pub struct RoleUserView {
    #[oai(rename = "_id")]
    pub id: String,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    pub emails: Vec<EmailView>,
    #[oai(rename = "createdAt")]
    pub created_at: String,
    #[oai(rename = "_updatedAt")]
    pub updated_at: String,
}

impl From<&User> for RoleUserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            name: u.name.clone(),
            emails: u.emails.iter().map(EmailView::from).collect(),
            created_at: iso(&u.created_at),
            updated_at: iso(&u.updated_at),
        }
    }
}

/// `{users, total, success}`
#[derive(Object, Debug)]
pub struct UsersInRoleOk {
    pub users: Vec<RoleUserView>,
    pub total: u64,
    pub success: bool,
}

/// A user with its public roles.
#[derive(Object, Debug)]
#[oai(rename = "RcPublicRoleUser")]
pub struct PublicRoleUserView {
    #[oai(rename = "_id")]
    pub id: String,
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    pub roles: Vec<String>,
}

/// `{users, success}`
#[derive(Object, Debug)]
pub struct PublicRolesOk {
    pub users: Vec<PublicRoleUserView>,
    pub success: bool,
}

/// Body of `roles.addUserToRole` and `roles.removeUserFromRole`: the role
/// (`roleId`, or the older `roleName`) and the user (`userId` or
/// `username`; `removeUserFromRole` takes `username`).
#[derive(Object, Debug, Clone, Default)]
pub struct RoleUserBody {
    #[oai(rename = "roleId")]
    pub role_id: Option<String>,
    #[oai(rename = "roleName")]
    pub role_name: Option<String>,
    #[oai(rename = "userId")]
    pub user_id: Option<String>,
    pub username: Option<String>,
    /// A room: tokend has none, so nobody is in it.
    #[oai(rename = "roomId")]
    pub room_id: Option<String>,
    /// `removeUserFromRole`'s name for the room.
    pub scope: Option<String>,
}

/// `{role, success}`
#[derive(Object, Debug)]
pub struct RoleOk {
    pub role: RoleView,
    pub success: bool,
}

/// `updatedSince` as Rocket.Chat's `Date.parse` takes it: an ISO date-time
/// or a date.
fn since(value: Option<&str>) -> Result<Option<Timestamp>, RcError> {
    let Some(value) = nonblank(value) else {
        return Ok(None);
    };
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.to_utc())
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        });
    parsed.map(Some).ok_or_else(|| {
        RcError::thrown(
            "error-roomId-param-invalid",
            "The \"updatedSince\" query parameter must be a valid date.",
            None,
        )
    })
}

fn role_error(method: &str, code: &str, reason: &str) -> RcError {
    RcError::thrown(code, reason, Some(json!({ "method": method })))
}

impl RolesApi {
    async fn access_permissions(
        &self,
        auth: &RcAuth,
        refused: RcError,
    ) -> Result<Granted<perm::AccessPermissions>, RcError> {
        self.core.authorize(&auth.0).await?.ok_or(refused)
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl RolesApi {
    /// Every permission and the roles holding it; with `updatedSince`,
    /// those changed after it (`update`) and removed (`remove`, always
    /// empty: tokend deletes none). Any logged-in user.
    #[oai(
        path = "/api/v1/permissions.listAll",
        method = "get",
        operation_id = "permissions.listAll"
    )]
    async fn permissions_list_all(
        &self,
        auth: RcAuth,
        #[oai(name = "updatedSince")] updated_since: Query<Option<String>>,
    ) -> Result<Json<PermissionsListOk>, RcError> {
        let since = since(updated_since.0.as_deref())?;
        let update = self.core.list_permissions(&auth.0, since).await?;
        Ok(Json(PermissionsListOk {
            update: update.into_iter().map(PermissionView::from).collect(),
            remove: Vec::new(),
            success: true,
        }))
    }

    /// Set which roles hold each listed permission (`access-permissions`).
    /// Every permission and role must exist; changing a permission's roles
    /// needs holding that permission (nobody hands out what they lack).
    /// Answers every permission.
    #[oai(
        path = "/api/v1/permissions.update",
        method = "post",
        operation_id = "permissions.update"
    )]
    async fn permissions_update(
        &self,
        auth: RcAuth,
        body: RcBody<PermissionsUpdateBody>,
    ) -> Result<Json<PermissionsUpdateOk>, RcError> {
        let grant = self.access_permissions(&auth, RcError::forbidden()).await?;
        let invalid = || RcError::failure_typed("Invalid body params", "error-invalid-body-params");
        let changes = body.0.and_then(|b| b.permissions).ok_or_else(invalid)?;
        let mut list = Vec::with_capacity(changes.len());
        for change in changes {
            let mut seen = std::collections::HashSet::new();
            if !change.roles.iter().all(|r| seen.insert(r)) {
                return Err(invalid());
            }
            list.push((change.id, change.roles));
        }
        match self.core.update_permissions(&grant, &list).await? {
            UpdatePermissions::Updated(all) => Ok(Json(PermissionsUpdateOk {
                permissions: all.into_iter().map(PermissionView::from).collect(),
                success: true,
            })),
            UpdatePermissions::UnknownPermission => Err(RcError::failure_typed(
                "Invalid permission",
                "error-invalid-permission",
            )),
            UpdatePermissions::UnknownRole => {
                Err(RcError::failure_typed("Invalid role", "error-invalid-role"))
            }
            UpdatePermissions::NotHeld => Err(RcError::failure_typed(
                "Editing permissions is not allowed",
                "error-edit-permissions-not-allowed",
            )),
        }
    }

    /// Every role (without `_updatedAt`, as Rocket.Chat). Any logged-in user.
    #[oai(
        path = "/api/v1/roles.list",
        method = "get",
        operation_id = "roles.list"
    )]
    async fn roles_list(&self, auth: RcAuth) -> Result<Json<RolesListOk>, RcError> {
        let roles = self.core.list_roles(&auth.0).await?;
        Ok(Json(RolesListOk {
            roles: roles.into_iter().map(|r| RoleView::new(r, false)).collect(),
            success: true,
        }))
    }

    /// The roles written after `updatedSince` (`update`) and removed
    /// (`remove`, always empty); without `updatedSince` both are empty, as
    /// Rocket.Chat. Any logged-in user.
    #[oai(
        path = "/api/v1/roles.sync",
        method = "get",
        operation_id = "roles.sync"
    )]
    async fn roles_sync(
        &self,
        auth: RcAuth,
        #[oai(name = "updatedSince")] updated_since: Query<Option<String>>,
    ) -> Result<Json<RolesSyncOk>, RcError> {
        let update = match since(updated_since.0.as_deref())? {
            Some(since) => self.core.roles_updated_since(&auth.0, since).await?,
            None => Vec::new(),
        };
        Ok(Json(RolesSyncOk {
            roles: RolesSync {
                update: update.into_iter().map(|r| RoleView::new(r, true)).collect(),
                remove: Vec::new(),
            },
            success: true,
        }))
    }

    /// The users holding a role, sorted by username (`access-permissions`);
    /// `count` (default 50, at most 100) and `offset`.
    #[oai(
        path = "/api/v1/roles.getUsersInRole",
        method = "get",
        operation_id = "roles.getUsersInRole"
    )]
    async fn get_users_in_role(
        &self,
        auth: RcAuth,
        role: Query<Option<String>>,
        #[oai(name = "roomId")] room_id: Query<Option<String>>,
        count: Query<Option<u64>>,
        offset: Query<Option<u64>>,
    ) -> Result<Json<UsersInRoleOk>, RcError> {
        let grant = self.access_permissions(&auth, RcError::forbidden()).await?;
        let (count, offset) = (count.0.unwrap_or(DEFAULT_COUNT), offset.0.unwrap_or(0));
        for (name, n) in [("count", count), ("offset", offset)] {
            if !validate::is_page_number(n) {
                return Err(RcError::invalid_params(&format!(
                    "The parameter \"{name}\" must be at most {}",
                    validate::MAX_PAGE_NUMBER
                )));
            }
        }
        let Some(role) = nonblank(role.0.as_deref()) else {
            return Err(RcError::thrown(
                "error-param-not-provided",
                "Query param \"role\" is required",
                None,
            ));
        };
        let room = nonblank(room_id.0.as_deref()).is_some();
        let count = match count {
            0 => MAX_COUNT,
            n => n.min(MAX_COUNT),
        };
        match self
            .core
            .users_in_role(&grant, role, room, offset, count)
            .await?
        {
            UsersInRole::Page { users, total } => Ok(Json(UsersInRoleOk {
                users: users.iter().map(RoleUserView::from).collect(),
                total,
                success: true,
            })),
            UsersInRole::UnknownRole => Err(RcError::failure_typed(
                "[error-invalid-roleId]",
                "error-invalid-roleId",
            )),
        }
    }

    /// Every user holding a public role (a global role with a description,
    /// such as `admin`), with only those roles. Any logged-in user.
    #[oai(
        path = "/api/v1/roles.getUsersInPublicRoles",
        method = "get",
        operation_id = "roles.getUsersInPublicRoles"
    )]
    async fn get_users_in_public_roles(
        &self,
        auth: RcAuth,
    ) -> Result<Json<PublicRolesOk>, RcError> {
        let users = self.core.users_in_public_roles(&auth.0).await?;
        Ok(Json(PublicRolesOk {
            users: users
                .into_iter()
                .map(|u| PublicRoleUserView {
                    id: u.user.id,
                    username: u.user.username,
                    roles: u.roles,
                })
                .collect(),
            success: true,
        }))
    }

    /// Give a user a role (`access-permissions`; the `admin` role also
    /// `assign-admin-role`). The role may confer nothing the caller lacks,
    /// and a user holding permissions the caller lacks is not changed.
    #[oai(
        path = "/api/v1/roles.addUserToRole",
        method = "post",
        operation_id = "roles.addUserToRole"
    )]
    async fn add_user_to_role(
        &self,
        auth: RcAuth,
        body: RcBody<RoleUserBody>,
    ) -> Result<Json<RoleOk>, RcError> {
        const METHOD: &str = "authorization:addUserToRole";
        let b = body.0.unwrap_or_default();
        let key = user_param(b.user_id.as_deref(), b.username.as_deref(), None)?;
        let Some(role) = nonblank(b.role_id.as_deref()).or(nonblank(b.role_name.as_deref())) else {
            return Err(RcError::failure("error-invalid-role-properties"));
        };
        let refused = RcError::thrown(
            "error-action-not-allowed",
            "Accessing permissions is not allowed",
            Some(json!({ "method": METHOD, "action": "Accessing_permissions" })),
        );
        let grant = self.access_permissions(&auth, refused).await?;
        if nonblank(b.room_id.as_deref()).is_some() {
            return Err(role_error(
                METHOD,
                "error-invalid-user",
                "User is not part of given room",
            ));
        }
        let outcome = self.core.add_user_to_role(&grant, role, &key).await?;
        membership(outcome, METHOD)
    }

    /// Take a role from a user (`access-permissions`). Never from a user
    /// holding permissions the caller lacks, nor the last active admin's
    /// `admin` role.
    #[oai(
        path = "/api/v1/roles.removeUserFromRole",
        method = "post",
        operation_id = "roles.removeUserFromRole"
    )]
    async fn remove_user_from_role(
        &self,
        auth: RcAuth,
        body: RcBody<RoleUserBody>,
    ) -> Result<Json<RoleOk>, RcError> {
        let grant = self.access_permissions(&auth, RcError::forbidden()).await?;
        let b = body.0.unwrap_or_default();
        let Some(role) = nonblank(b.role_id.as_deref()).or(nonblank(b.role_name.as_deref())) else {
            return Err(RcError::failure("error-invalid-role-properties"));
        };
        let key = match nonblank(b.username.as_deref()) {
            Some(name) => UserKey::Username(name.to_string()),
            None => user_param(b.user_id.as_deref(), None, None)?,
        };
        let room = nonblank(b.scope.as_deref())
            .or(nonblank(b.room_id.as_deref()))
            .is_some();
        let outcome = self
            .core
            .remove_user_from_role(&grant, role, &key, room)
            .await?;
        membership(outcome, "removeUserFromRole")
    }
}

/// The answer to a role membership change, in Rocket.Chat's texts.
fn membership(outcome: RoleMembership, method: &str) -> Result<Json<RoleOk>, RcError> {
    match outcome {
        RoleMembership::Done(role) => Ok(Json(RoleOk {
            role: RoleView::new(*role, true),
            success: true,
        })),
        RoleMembership::UnknownRole => Err(role_error(
            method,
            "error-invalid-roleId",
            "This role does not exist",
        )),
        RoleMembership::NoSuchUser => Err(super::tokens::invalid_user()),
        RoleMembership::AlreadyInRole => Err(RcError::thrown(
            "error-user-already-in-role",
            "User already in role",
            None,
        )),
        RoleMembership::NotInRole => Err(RcError::thrown(
            "error-user-not-in-role",
            "User is not in this role",
            None,
        )),
        RoleMembership::NotAllowed(denied) => Err(refusal(denied)),
        RoleMembership::LastAdmin => Err(RcError::thrown(
            "error-admin-required",
            "You need to have at least one admin",
            None,
        )),
    }
}

//! Roles and permissions as Rocket.Chat's `roles.*` and `permissions.*`
//! routes see them: listing, syncing, which roles hold which permission,
//! and who holds which role. Every change obeys the escalation rule (see
//! [`Core::update_user`]): nobody hands out a permission they do not hold,
//! the `admin` role needs `assign-admin-role`, and nobody changes the roles
//! of a user who holds permissions they lack.

use super::users::Denied;
use super::Core;
use crate::core::credential::Caller;
use crate::core::error::CoreError;
use crate::core::model::{PermissionEntry, Role, Timestamp, User, UserKey};
use crate::core::permissions::{perm, Granted, Permission, ADMIN_ROLE};
use crate::store::{AdminGuard, LastAdmin, UserPatch};

/// The global role scope; roles of other scopes (`Subscriptions`) are per room.
pub const GLOBAL_SCOPE: &str = "Users";

/// Outcome of [`Core::update_permissions`].
#[derive(Debug)]
pub enum UpdatePermissions {
    /// Every permission afterwards.
    Updated(Vec<PermissionEntry>),
    /// A permission id that does not exist.
    UnknownPermission,
    /// A role id that does not exist.
    UnknownRole,
    /// Changing the roles of a permission the caller does not hold.
    NotHeld,
}

/// Outcome of [`Core::users_in_role`].
#[derive(Debug)]
pub enum UsersInRole {
    /// A page of the role's holders sorted by username, and their number.
    Page {
        users: Vec<User>,
        total: u64,
    },
    UnknownRole,
}

/// Outcome of [`Core::add_user_to_role`] and [`Core::remove_user_from_role`].
#[derive(Debug)]
pub enum RoleMembership {
    /// Done: the role.
    Done(Box<Role>),
    UnknownRole,
    NoSuchUser,
    /// Adding: the user already holds it.
    AlreadyInRole,
    /// Removing: the user does not hold it (per room: tokend has no rooms).
    NotInRole,
    /// `assign-admin-role` missing, or the escalation rule refuses.
    NotAllowed(Denied),
    /// Removing the last active admin's `admin` role.
    LastAdmin,
}

/// A user and its public roles (`roles.getUsersInPublicRoles`).
#[derive(Debug)]
pub struct PublicRoles {
    pub user: User,
    pub roles: Vec<String>,
}

/// Whether a role is public: a global role with a description (Rocket.Chat
/// shows those beside user names).
fn is_public(role: &Role) -> bool {
    role.scope == GLOBAL_SCOPE && !role.description.trim().is_empty()
}

impl Core {
    /// `permissions.listAll`: every permission, or with `since` those whose
    /// roles changed after it. tokend never deletes a permission, so
    /// nothing is ever reported removed.
    pub async fn list_permissions(
        &self,
        _by: &Caller,
        since: Option<Timestamp>,
    ) -> Result<Vec<PermissionEntry>, CoreError> {
        let all = self.store.permissions().await?;
        Ok(match since {
            None => all,
            Some(since) => all
                .into_iter()
                .filter(|p| p.updated_at.is_some_and(|at| at > since))
                .collect(),
        })
    }

    /// `roles.list`: every role.
    pub async fn list_roles(&self, _by: &Caller) -> Result<Vec<Role>, CoreError> {
        Ok(self.store.roles().await?)
    }

    /// `roles.sync`: the roles written after `since` (tokend deletes none).
    pub async fn roles_updated_since(
        &self,
        _by: &Caller,
        since: Timestamp,
    ) -> Result<Vec<Role>, CoreError> {
        let roles = self.store.roles().await?;
        Ok(roles
            .into_iter()
            .filter(|r| r.updated_at.is_some_and(|at| at > since))
            .collect())
    }

    /// `permissions.update` (`access-permissions`): sets which roles hold
    /// each listed permission. Every permission and role must exist, and the
    /// caller must hold each permission whose roles it changes (so it hands
    /// out, or takes away, only what it holds itself). The permission cache
    /// is cleared at once.
    pub async fn update_permissions(
        &self,
        grant: &Granted<perm::AccessPermissions>,
        changes: &[(String, Vec<String>)],
    ) -> Result<UpdatePermissions, CoreError> {
        let current = self.store.permissions().await?;
        if !changes
            .iter()
            .all(|(id, _)| current.iter().any(|p| p.id == *id))
        {
            return Ok(UpdatePermissions::UnknownPermission);
        }
        let roles: Vec<String> = changes.iter().flat_map(|(_, r)| r.clone()).collect();
        if !self.roles_exist(&roles).await? {
            return Ok(UpdatePermissions::UnknownRole);
        }
        let perms = self.permission_snapshot().await?;
        let mine = perms.enforced(&grant.caller().user);
        for (id, roles) in changes {
            let before = current.iter().find(|p| p.id == *id);
            let changed = before.is_none_or(|p| !super::users::same_set(&p.roles, roles));
            if changed && !mine.contains(id) {
                return Ok(UpdatePermissions::NotHeld);
            }
        }
        let now = self.now();
        for (id, roles) in changes {
            self.store.set_permission_roles(id, roles, now).await?;
        }
        self.permissions.invalidate();
        Ok(UpdatePermissions::Updated(self.store.permissions().await?))
    }

    async fn role(&self, id_or_name: &str) -> Result<Option<Role>, CoreError> {
        let roles = self.store.roles().await?;
        let by_id = roles.iter().find(|r| r.id == id_or_name).cloned();
        Ok(by_id.or_else(|| roles.into_iter().find(|r| r.name == id_or_name)))
    }

    /// `roles.getUsersInRole` (`access-permissions`): a page of the role's
    /// holders sorted by username. Per room (`room`), nobody: tokend has no rooms.
    pub async fn users_in_role(
        &self,
        _grant: &Granted<perm::AccessPermissions>,
        role: &str,
        room: bool,
        offset: u64,
        count: u64,
    ) -> Result<UsersInRole, CoreError> {
        let Some(role) = self.role(role).await? else {
            return Ok(UsersInRole::UnknownRole);
        };
        if room {
            return Ok(UsersInRole::Page {
                users: Vec::new(),
                total: 0,
            });
        }
        let (users, total) = self
            .store
            .users_in_roles(std::slice::from_ref(&role.id), offset, count)
            .await?;
        Ok(UsersInRole::Page { users, total })
    }

    /// `roles.getUsersInPublicRoles`: every user holding a public role (a
    /// global role with a description), with only those roles.
    pub async fn users_in_public_roles(&self, _by: &Caller) -> Result<Vec<PublicRoles>, CoreError> {
        const PAGE: u64 = 500;
        let public: Vec<String> = self
            .store
            .roles()
            .await?
            .into_iter()
            .filter(is_public)
            .map(|r| r.id)
            .collect();
        let mut out = Vec::new();
        if public.is_empty() {
            return Ok(out);
        }
        let mut offset = 0;
        loop {
            let (users, total) = self.store.users_in_roles(&public, offset, PAGE).await?;
            offset += users.len() as u64;
            let fetched = users.len();
            out.extend(users.into_iter().map(|user| {
                PublicRoles {
                    roles: user
                        .roles
                        .iter()
                        .filter(|r| public.contains(r))
                        .cloned()
                        .collect(),
                    user,
                }
            }));
            if fetched == 0 || offset >= total {
                return Ok(out);
            }
        }
    }

    /// `roles.addUserToRole` (`access-permissions`): gives the user the role
    /// (by id, or by name). The `admin` role needs `assign-admin-role`; the
    /// role may confer nothing the caller lacks, and a user holding
    /// permissions the caller lacks is not changed. Per room: refused as
    /// not a member (tokend has no rooms).
    pub async fn add_user_to_role(
        &self,
        grant: &Granted<perm::AccessPermissions>,
        role: &str,
        user: &UserKey,
    ) -> Result<RoleMembership, CoreError> {
        let by = grant.caller();
        let Some(role) = self.role(role).await? else {
            return Ok(RoleMembership::UnknownRole);
        };
        if role.id == ADMIN_ROLE && !self.holds(by, Permission::AssignAdminRole).await? {
            return Ok(RoleMembership::NotAllowed(Denied::AssignAdmin));
        }
        let Some(target) = self.lookup(user).await? else {
            return Ok(RoleMembership::NoSuchUser);
        };
        if target.roles.contains(&role.id) {
            return Ok(RoleMembership::AlreadyInRole);
        }
        let mut after = target.clone();
        after.roles.push(role.id.clone());
        let perms = self.permission_snapshot().await?;
        if perms.outranks(&target, &by.user) {
            return Ok(RoleMembership::NotAllowed(Denied::Outranked));
        }
        if perms.escalates(&by.user, &target, &after) {
            return Ok(RoleMembership::NotAllowed(Denied::Escalation));
        }
        self.write_roles(&target, after.roles, AdminGuard::Off, role)
            .await
    }

    /// `roles.removeUserFromRole` (`access-permissions`): takes the role
    /// away. Never from a user holding permissions the caller lacks, nor the
    /// last active admin's `admin` role.
    pub async fn remove_user_from_role(
        &self,
        grant: &Granted<perm::AccessPermissions>,
        role: &str,
        user: &UserKey,
        room: bool,
    ) -> Result<RoleMembership, CoreError> {
        let by = grant.caller();
        let Some(target) = self.lookup(user).await? else {
            return Ok(RoleMembership::NoSuchUser);
        };
        let Some(role) = self.role(role).await? else {
            return Ok(RoleMembership::UnknownRole);
        };
        if room || !target.roles.contains(&role.id) {
            return Ok(RoleMembership::NotInRole);
        }
        if self.outranks(&target, &by.user).await? {
            return Ok(RoleMembership::NotAllowed(Denied::Outranked));
        }
        let roles: Vec<String> = target
            .roles
            .iter()
            .filter(|r| **r != role.id)
            .cloned()
            .collect();
        let guard = if role.id == ADMIN_ROLE {
            AdminGuard::KeepLastAdmin
        } else {
            AdminGuard::Off
        };
        self.write_roles(&target, roles, guard, role).await
    }

    async fn write_roles(
        &self,
        target: &User,
        roles: Vec<String>,
        guard: AdminGuard,
        role: Role,
    ) -> Result<RoleMembership, CoreError> {
        let patch = UserPatch {
            roles: Some(roles),
            ..UserPatch::default()
        };
        Ok(
            match self
                .store
                .update_user(&target.id, &patch, self.now(), guard)
                .await?
            {
                Ok(Some(_)) => RoleMembership::Done(Box::new(role)),
                Ok(None) => RoleMembership::NoSuchUser,
                Err(LastAdmin) => RoleMembership::LastAdmin,
            },
        )
    }
}

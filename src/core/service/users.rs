//! Users: create, read, list, change, (de)activate, delete, log out
//! everywhere. The rules: who may change what, password changes (hash and
//! revoke together), deactivation and deletion ending every credential, and
//! the last-admin guard, for both dialects.

use super::auth::{Authenticated, Refused};
use super::{unique, Core};
use crate::core::audit::AuditKind;
use crate::core::credential::{Caller, Credential, PasswordAttempt, SecondFactor, Via};
use crate::core::error::CoreError;
use crate::core::model::{Email, User, UserKey};
use crate::core::password::PasswordInput;
use crate::core::permissions::{
    CreatesUsers, DeletesUsers, Granted, ListsUsers, Permission, SetsActiveStatus, USER_ROLE,
};
use crate::core::userquery::{self, QueryError, UserQuery};
use crate::core::{ids, permissions::ADMIN_ROLE, validate};
use crate::store::{AdminGuard, LastAdmin, UniqueField, UserPatch};
use std::net::IpAddr;

/// A user to create. Syntax checks of the fields are the dialect's job.
#[derive(Clone, Default)]
pub struct NewUser {
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    /// Plain password; hashed here.
    pub password: Option<String>,
    /// Role ids; empty means `["user"]`.
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    pub active: bool,
    pub require_password_change: bool,
    /// `user`, `bot` or `app`; empty means `user`.
    pub kind: String,
}

crate::redacted_debug!(
    NewUser,
    username,
    name,
    email,
    roles,
    permissions,
    active,
    kind
);

/// A change to the first email address.
#[derive(Debug, Clone, Default)]
pub struct EmailChange {
    /// The new address (replacing the first one); `None` keeps it.
    pub address: Option<String>,
    /// Marks it verified or not; `None`: a new address is unverified, the
    /// current one keeps its flag.
    pub verified: Option<bool>,
}

/// Changes to a user; `None` leaves a field alone.
#[derive(Clone, Default)]
pub struct UserChanges {
    pub username: Option<String>,
    pub name: Option<String>,
    pub email: Option<EmailChange>,
    /// A new password, plain; hashed here, and every other login token and
    /// session of the user ends.
    pub password: Option<String>,
    pub roles: Option<Vec<String>>,
    /// The user's own permissions (SAYMON).
    pub permissions: Option<Vec<String>>,
    pub active: Option<bool>,
    pub require_password_change: Option<bool>,
    /// The caller's current password: required to change one's own.
    pub current_password: Option<PasswordInput>,
    /// The client's address, for the login throttle that the current
    /// password check goes through.
    pub ip: Option<IpAddr>,
}

crate::redacted_debug!(
    UserChanges,
    username,
    name,
    email,
    roles,
    permissions,
    active,
    require_password_change
);

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Marking one's own email address verified.
    OwnVerification,
    /// Changing another user without `edit-other-user-info` / `manage-users`.
    EditOthers,
    /// Changing roles without `assign-roles`.
    Roles,
    /// Setting `requirePasswordChange` without `edit-other-user-info` / `manage-users`.
    RequirePasswordChange,
    /// Changing a user's own permissions without `manage-users` / `assign-roles`.
    Permissions,
    /// Changing `active` without `edit-other-user-active-status` / `manage-users`.
    ActiveStatus,
    /// Giving the `admin` role without `assign-admin-role`.
    AssignAdmin,
    /// Setting another user's password without `edit-other-user-password` / `manage-users`.
    OthersPassword,
    /// The target holds permissions the caller lacks: no password, token or
    /// privilege change for it.
    Outranked,
    /// The change would give a permission the caller does not hold.
    Escalation,
    /// Changing one's own password without giving the current one.
    CurrentPasswordRequired,
}

/// Outcome of [`Core::create_user`].
#[derive(Debug)]
pub enum CreateUser {
    Created(Box<User>),
    /// The roles or permissions asked for are beyond the caller.
    NotAllowed(Denied),
    /// The username or email address is taken (ignoring case).
    Taken(UniqueField),
}

/// Outcome of [`Core::register`].
#[derive(Debug)]
pub enum Register {
    Created(Box<User>),
    /// Registration is switched off.
    Disabled,
    /// The username or email address is taken (ignoring case).
    Taken(UniqueField),
}

/// Outcome of [`Core::update_user`].
#[derive(Debug)]
pub enum UpdateUser {
    Updated(Box<User>),
    NotAllowed(Denied),
    /// A role id that does not exist.
    UnknownRole,
    NoSuchUser,
    /// The username or email address is taken (ignoring case).
    Taken(UniqueField),
    /// It would leave no active admin.
    LastAdmin,
    /// The current password given for one's own password change was
    /// refused (wrong, or the login throttle blocks, or bcrypt is busy).
    CurrentPassword(Refused),
}

/// Outcome of [`Core::set_active`].
#[derive(Debug)]
pub enum SetActive {
    Done(Box<User>),
    NoSuchUser,
    LastAdmin,
}

/// Outcome of [`Core::delete_user`].
#[derive(Debug, PartialEq, Eq)]
pub enum DeleteUser {
    Deleted,
    NoSuchUser,
    LastAdmin,
}

/// Outcome of [`Core::logout_user`].
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutUser {
    Done,
    /// Another user, without `logout-other-user`.
    NotAllowed,
    NoSuchUser,
}

/// Outcome of [`Core::read_user`].
#[derive(Debug)]
pub enum ReadUser {
    /// The user, and whether the caller sees it in full (its email addresses).
    Found {
        user: Box<User>,
        full: bool,
    },
    NotFound,
}

/// Outcome of [`Core::browse_users`]: a page, and whether the caller sees
/// the users in full (their email addresses).
#[derive(Debug)]
pub struct UserListing {
    pub page: UserPage,
    pub full: bool,
}

/// Outcome of [`Core::browse_users`].
#[derive(Debug)]
pub enum BrowseUsers {
    Page(UserListing),
    /// The `query` was refused (see [`crate::core::userquery`]).
    BadQuery(QueryError),
    /// The `sort` was refused.
    BadSort,
}

/// What `users.list` asks for, as the client sent it: the raw `query` and
/// `sort` parameters (JSON) and the page.
#[derive(Debug, Clone, Default)]
pub struct Browse<'a> {
    pub query: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub offset: u64,
    pub count: u64,
}

/// A page of users.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Number of users in all.
    pub total: u64,
}

impl Core {
    /// Creates a user (hashing its password). Roles other than `["user"]`
    /// need `assign-roles`, the `admin` role `assign-admin-role`, own
    /// permissions `assign-roles` or `manage-users`; and the new user may
    /// hold no permission beyond a plain user's that the caller lacks.
    pub async fn create_user<P: CreatesUsers>(
        &self,
        grant: &Granted<P>,
        new: NewUser,
    ) -> Result<CreateUser, CoreError> {
        let by = grant.caller();
        let plain = vec![USER_ROLE.to_string()];
        let roles = if new.roles.is_empty() {
            plain.clone()
        } else {
            new.roles.clone()
        };
        if roles.iter().any(|r| r == ADMIN_ROLE)
            && !self.holds(by, Permission::AssignAdminRole).await?
        {
            return Ok(CreateUser::NotAllowed(Denied::AssignAdmin));
        }
        if !same_set(&roles, &plain) && !self.holds(by, Permission::AssignRoles).await? {
            return Ok(CreateUser::NotAllowed(Denied::Roles));
        }
        let may_grant = new.permissions.is_empty()
            || self.holds(by, Permission::ManageUsers).await?
            || self.holds(by, Permission::AssignRoles).await?;
        if !may_grant {
            return Ok(CreateUser::NotAllowed(Denied::Permissions));
        }
        let before = sketch(plain, Vec::new());
        let after = sketch(roles, new.permissions.clone());
        if self.escalates(&by.user, &before, &after).await? {
            return Ok(CreateUser::NotAllowed(Denied::Escalation));
        }
        self.insert_user(new).await
    }

    /// Rocket.Chat's `users.register` (no caller): a new user with role
    /// `user` and nothing else, only while `ACCOUNTS_REGISTRATION_FORM` is
    /// `Public` (Rocket.Chat's `Accounts_RegistrationForm`).
    pub async fn register(&self, new: NewUser) -> Result<Register, CoreError> {
        if !self.config.registration_public {
            return Ok(Register::Disabled);
        }
        let new = NewUser {
            roles: Vec::new(),
            permissions: Vec::new(),
            active: true,
            require_password_change: false,
            email_verified: false,
            kind: "user".into(),
            ..new
        };
        Ok(match self.insert_user(new).await? {
            CreateUser::Created(user) => Register::Created(user),
            CreateUser::Taken(field) => Register::Taken(field),
            CreateUser::NotAllowed(_) => Register::Disabled,
        })
    }

    /// Creates a user without a caller: start-up seeding and operator tools
    /// (never reachable over HTTP).
    pub async fn insert_user(&self, new: NewUser) -> Result<CreateUser, CoreError> {
        let password_bcrypt = match &new.password {
            Some(p) => Some(self.bcrypt.hash(p).await?),
            None => None,
        };
        let now = self.now();
        let user = User {
            id: ids::new_user_id(),
            created_at: now,
            updated_at: now,
            kind: if new.kind.is_empty() {
                "user".into()
            } else {
                new.kind
            },
            username: Some(new.username),
            name: new.name,
            emails: new
                .email
                .into_iter()
                .map(|address| Email {
                    address,
                    verified: new.email_verified,
                })
                .collect(),
            roles: if new.roles.is_empty() {
                vec![USER_ROLE.to_string()]
            } else {
                new.roles
            },
            permissions: new.permissions,
            active: new.active,
            require_password_change: new.require_password_change,
            password_bcrypt,
            last_login: None,
        };
        Ok(match unique(self.store.insert_user(&user).await)? {
            Ok(()) => CreateUser::Created(Box::new(user)),
            Err(field) => CreateUser::Taken(field),
        })
    }

    /// One user, for an authenticated caller.
    pub async fn find_user(&self, _by: &Caller, key: &UserKey) -> Result<Option<User>, CoreError> {
        Ok(self.store.find_user(key).await?)
    }

    /// Rocket.Chat's `users.info`: any authenticated caller reads any user's
    /// public fields; the email addresses are shown for oneself or with
    /// `view-full-other-user-info`. Looking another user up by email address
    /// also needs that permission (else it is "not found"), so the lookup
    /// tells nobody which address belongs to whom.
    pub async fn read_user(&self, by: &Caller, key: &UserKey) -> Result<ReadUser, CoreError> {
        let full_others = self.holds(by, Permission::ViewFullOtherUserInfo).await?;
        let Some(user) = self.store.find_user(key).await? else {
            return Ok(ReadUser::NotFound);
        };
        let myself = user.id == by.user.id;
        if matches!(key, UserKey::Email(_) | UserKey::Login(_)) && !myself && !full_others {
            return Ok(ReadUser::NotFound);
        }
        Ok(ReadUser::Found {
            full: myself || full_others,
            user: Box::new(user),
        })
    }

    /// Rocket.Chat's `users.list`: a page of the users passing the client's
    /// `query`, in its `sort` (default: by username), in full with
    /// `view-full-other-user-info` (oneself always in full is the dialect's
    /// view). The filter may test `emails.address` only with that permission
    /// too, so nobody learns through a filter what they could not read; its
    /// other rules are [`crate::core::userquery`]'s. `total` counts the
    /// users passing the filter. `offset` and `count` beyond
    /// [`validate::MAX_PAGE_NUMBER`] are clamped to it.
    pub async fn browse_users<P: ListsUsers>(
        &self,
        grant: &Granted<P>,
        request: Browse<'_>,
    ) -> Result<BrowseUsers, CoreError> {
        let full = self
            .holds(grant.caller(), Permission::ViewFullOtherUserInfo)
            .await?;
        let filter = match userquery::parse_filter(request.query.unwrap_or_default(), full) {
            Ok(f) => f,
            Err(e) => return Ok(BrowseUsers::BadQuery(e)),
        };
        let Ok(sort) = userquery::parse_sort(request.sort.unwrap_or_default()) else {
            return Ok(BrowseUsers::BadSort);
        };
        let query = UserQuery {
            filter,
            sort,
            offset: request.offset.min(validate::MAX_PAGE_NUMBER),
            count: request.count.min(validate::MAX_PAGE_NUMBER),
        };
        let (users, total) = self.store.find_users(&query).await?;
        Ok(BrowseUsers::Page(UserListing {
            page: UserPage { users, total },
            full,
        }))
    }

    /// A user by key, for the core itself (seeding, checks).
    pub(crate) async fn lookup(&self, key: &UserKey) -> Result<Option<User>, CoreError> {
        Ok(self.store.find_user(key).await?)
    }

    /// Whether an active user holds the admin role (seeding). Pages through
    /// the users, stopping at the first admin: the store has no query for it
    /// (its last-admin check lives inside its guarded writes), and this runs
    /// once, at start-up.
    pub(crate) async fn admin_exists(&self) -> Result<bool, CoreError> {
        const PAGE: u64 = 1000;
        let mut offset = 0;
        loop {
            let (users, total) = self.store.list_users(offset, PAGE).await?;
            if users.iter().any(User::is_active_admin) {
                return Ok(true);
            }
            offset += users.len() as u64;
            if users.is_empty() || offset >= total {
                return Ok(false);
            }
        }
    }

    /// The active user of type `user` created first (seeding's recovery).
    pub(crate) async fn oldest_active_user(&self) -> Result<Option<User>, CoreError> {
        const PAGE: u64 = 1000;
        let mut oldest: Option<User> = None;
        let mut offset = 0;
        loop {
            let (users, total) = self.store.list_users(offset, PAGE).await?;
            offset += users.len() as u64;
            let fetched = users.len();
            for user in users {
                if user.active
                    && user.kind == "user"
                    && oldest
                        .as_ref()
                        .is_none_or(|o| user.created_at < o.created_at)
                {
                    oldest = Some(user);
                }
            }
            if fetched == 0 || offset >= total {
                return Ok(oldest);
            }
        }
    }

    /// Number of users (seeding).
    pub(crate) async fn count_users(&self) -> Result<u64, CoreError> {
        Ok(self.store.count_users().await?)
    }

    /// A page of users sorted by username, for an authenticated caller.
    /// `offset` and `count` beyond [`validate::MAX_PAGE_NUMBER`] are clamped
    /// to it (the dialects refuse them first; no store can skip further).
    pub async fn list_users(
        &self,
        _by: &Caller,
        offset: u64,
        count: u64,
    ) -> Result<UserPage, CoreError> {
        let offset = offset.min(validate::MAX_PAGE_NUMBER);
        let count = count.min(validate::MAX_PAGE_NUMBER);
        let (users, total) = self.store.list_users(offset, count).await?;
        Ok(UserPage { users, total })
    }

    /// Changes a user. Oneself: name, username, email, and the password
    /// with the current one. Others: `edit-other-user-info` or
    /// `manage-users`; their password also `edit-other-user-password` (or
    /// `manage-users`). Roles: `assign-roles` when they change,
    /// `assign-admin-role` when they include `admin`; the user's own
    /// permissions: `assign-roles` or `manage-users`; `requirePasswordChange`:
    /// as for others; `active`: `edit-other-user-active-status` or
    /// `manage-users`. The escalation rule on top: no change gives a user a
    /// permission the caller lacks, and nobody sets the password or the
    /// privileges of a user who holds permissions the caller lacks.
    /// Deactivation ends every credential of the user; a new password ends
    /// every login token and session but the caller's own.
    pub async fn update_user(
        &self,
        by: &Caller,
        id: &str,
        changes: UserChanges,
    ) -> Result<UpdateUser, CoreError> {
        let myself = id == by.user.id;
        let manage = self.holds(by, Permission::ManageUsers).await?;
        let others = manage || self.holds(by, Permission::EditOtherUserInfo).await?;
        let verifying = changes.email.as_ref().and_then(|e| e.verified);
        if myself && verifying == Some(true) {
            return Ok(UpdateUser::NotAllowed(Denied::OwnVerification));
        }
        if !myself && !others {
            return Ok(UpdateUser::NotAllowed(Denied::EditOthers));
        }
        if let Some(roles) = &changes.roles {
            if !self.roles_exist(roles).await? {
                return Ok(UpdateUser::UnknownRole);
            }
            if roles.iter().any(|r| r == ADMIN_ROLE)
                && !self.holds(by, Permission::AssignAdminRole).await?
            {
                return Ok(UpdateUser::NotAllowed(Denied::AssignAdmin));
            }
        }
        let Some(target) = self.lookup(&UserKey::Id(id.to_string())).await? else {
            return Ok(UpdateUser::NoSuchUser);
        };
        let roles_change = changes
            .roles
            .as_ref()
            .is_some_and(|r| !same_set(r, &target.roles));
        if roles_change && !self.holds(by, Permission::AssignRoles).await? {
            return Ok(UpdateUser::NotAllowed(Denied::Roles));
        }
        if changes.require_password_change.is_some() && !others {
            return Ok(UpdateUser::NotAllowed(Denied::RequirePasswordChange));
        }
        let permissions_change = changes
            .permissions
            .as_ref()
            .is_some_and(|p| !same_set(p, &target.permissions));
        if permissions_change && !(manage || self.holds(by, Permission::AssignRoles).await?) {
            return Ok(UpdateUser::NotAllowed(Denied::Permissions));
        }
        if changes.active.is_some()
            && !(manage
                || self
                    .holds(by, Permission::EditOtherUserActiveStatus)
                    .await?)
        {
            return Ok(UpdateUser::NotAllowed(Denied::ActiveStatus));
        }
        if changes.password.is_some() && !myself {
            if !(manage || self.holds(by, Permission::EditOtherUserPassword).await?) {
                return Ok(UpdateUser::NotAllowed(Denied::OthersPassword));
            }
            if self.outranks(&target, &by.user).await? {
                return Ok(UpdateUser::NotAllowed(Denied::Outranked));
            }
        }
        if roles_change || permissions_change {
            if self.outranks(&target, &by.user).await? {
                return Ok(UpdateUser::NotAllowed(Denied::Outranked));
            }
            let mut after = target.clone();
            if let Some(roles) = &changes.roles {
                after.roles = roles.clone();
            }
            if let Some(permissions) = &changes.permissions {
                after.permissions = permissions.clone();
            }
            if self.escalates(&by.user, &target, &after).await? {
                return Ok(UpdateUser::NotAllowed(Denied::Escalation));
            }
        }
        // One's own password changes only with the current one, checked as
        // a password login (so guessing it is throttled like a login), and
        // last: it costs a bcrypt.
        if changes.password.is_some() && myself {
            let Some(current) = changes.current_password.clone() else {
                return Ok(UpdateUser::NotAllowed(Denied::CurrentPasswordRequired));
            };
            // The password only: the second factor of this protected action
            // is `Core::confirm_user_update`'s, asked by the dialect first.
            let attempt = PasswordAttempt {
                user: UserKey::Id(target.id.clone()),
                password: current,
                ip: changes.ip,
                second_factor: SecondFactor::none(),
            };
            match self.authenticate(Credential::Password(attempt)).await? {
                Authenticated::Caller(_) => {}
                // Asked for a code only after the right password (a missing
                // code is not a failure): the current password is proven.
                Authenticated::Refused(Refused::SecondFactor(r)) if !r.is_wrong_code() => {}
                Authenticated::Refused(refused) => return Ok(UpdateUser::CurrentPassword(refused)),
            }
        }
        // Deactivating or demoting may leave nobody to administer tokend:
        // the store refuses it for the last active admin, atomically with
        // the write.
        let drops_admin = changes.active == Some(false)
            || changes
                .roles
                .as_ref()
                .is_some_and(|r| !r.iter().any(|r| r == ADMIN_ROLE));
        let guard = if drops_admin {
            AdminGuard::KeepLastAdmin
        } else {
            AdminGuard::Off
        };
        let new_password = match &changes.password {
            // Hashed only once every check has passed: bcrypt is the costly part.
            Some(p) => Some(self.bcrypt.hash(p).await?),
            None => None,
        };
        let patch = UserPatch {
            username: changes.username,
            name: changes.name,
            emails: changes.email.map(|c| changed_emails(&target.emails, c)),
            roles: changes.roles,
            permissions: changes.permissions,
            active: changes.active,
            require_password_change: changes.require_password_change,
            password_bcrypt: new_password,
            last_login: None,
            clear_login_tokens: false,
        };
        let keep = myself.then_some(&by.via);
        Ok(
            match self
                .apply_patch(by.id(), &target.id, patch, guard, keep)
                .await?
            {
                Patched::Updated(user) => UpdateUser::Updated(user),
                Patched::NoSuchUser => UpdateUser::NoSuchUser,
                Patched::Taken(field) => UpdateUser::Taken(field),
                Patched::LastAdmin => UpdateUser::LastAdmin,
            },
        )
    }

    /// Writes a patch with its consequences: deactivation ends every token
    /// and session; a new password ends every login token and session but
    /// `keep` (the credential of a user changing its own password).
    pub(super) async fn apply_patch(
        &self,
        actor: &str,
        id: &str,
        mut patch: UserPatch,
        guard: AdminGuard,
        keep: Option<&Via>,
    ) -> Result<Patched, CoreError> {
        let deactivating = patch.active == Some(false);
        let new_password = patch.password_bcrypt.is_some();
        if deactivating {
            patch.clear_login_tokens = true;
        }
        let written = self.store.update_user(id, &patch, self.now(), guard).await;
        let updated = match unique(written)? {
            Ok(Ok(updated)) => updated,
            Ok(Err(LastAdmin)) => return Ok(Patched::LastAdmin),
            Err(field) => return Ok(Patched::Taken(field)),
        };
        if updated.is_some() {
            if deactivating {
                self.end_saymon_credentials(id).await?;
            } else if new_password {
                let (token, session) = match keep {
                    Some(Via::LoginToken(h)) => (Some(h), None),
                    Some(Via::Session(h)) => (None, Some(h)),
                    _ => (None, None),
                };
                self.store.remove_login_tokens(id, token).await?;
                self.store.delete_sessions_of(id, session).await?;
            }
            if deactivating {
                self.audit(AuditKind::UserDeactivated, Some(actor), Some(id), None)
                    .await;
            }
            if new_password {
                self.audit(AuditKind::PasswordChanged, Some(actor), Some(id), None)
                    .await;
            }
        }
        Ok(match updated {
            Some(user) => Patched::Updated(Box::new(user)),
            None => Patched::NoSuchUser,
        })
    }

    /// Activates or deactivates a user; deactivation ends every token and
    /// session it has.
    pub async fn set_active<P: SetsActiveStatus>(
        &self,
        grant: &Granted<P>,
        id: &str,
        active: bool,
    ) -> Result<SetActive, CoreError> {
        let Some(target) = self.lookup(&UserKey::Id(id.to_string())).await? else {
            return Ok(SetActive::NoSuchUser);
        };
        let patch = UserPatch {
            active: Some(active),
            ..UserPatch::default()
        };
        let guard = if active {
            AdminGuard::Off
        } else {
            AdminGuard::KeepLastAdmin
        };
        Ok(
            match self
                .apply_patch(grant.caller().id(), &target.id, patch, guard, None)
                .await?
            {
                Patched::Updated(user) => SetActive::Done(user),
                Patched::LastAdmin => SetActive::LastAdmin,
                // Only `active` changes, so no unique field can clash.
                Patched::NoSuchUser | Patched::Taken(_) => SetActive::NoSuchUser,
            },
        )
    }

    /// Rocket.Chat's `users.deactivateIdle`: deactivates every active user
    /// holding `role` whose last login is `days_idle` days ago or more (a user
    /// never seen logging in is left alone, as Rocket.Chat does), ending its
    /// credentials; the last active admin stays. Answers how many.
    pub async fn deactivate_idle<P: SetsActiveStatus>(
        &self,
        grant: &Granted<P>,
        days_idle: u32,
        role: &str,
    ) -> Result<u64, CoreError> {
        const PAGE: u64 = 500;
        // A span reaching before the earliest representable time leaves no
        // one idle long enough: nobody is deactivated (never a panic).
        let Some(cutoff) = chrono::Duration::try_days(i64::from(days_idle))
            .and_then(|span| self.now().checked_sub_signed(span))
        else {
            return Ok(0);
        };
        let mut idle = Vec::new();
        let mut offset = 0;
        loop {
            let (users, total) = self
                .store
                .users_in_roles(&[role.to_string()], offset, PAGE)
                .await?;
            offset += users.len() as u64;
            let fetched = users.len();
            idle.extend(
                users
                    .into_iter()
                    .filter(|u| u.active && u.last_login.is_some_and(|at| at <= cutoff))
                    .map(|u| u.id),
            );
            if fetched == 0 || offset >= total {
                break;
            }
        }
        let mut count = 0;
        for id in idle {
            let patch = UserPatch {
                active: Some(false),
                ..UserPatch::default()
            };
            if let Patched::Updated(_) = self
                .apply_patch(
                    grant.caller().id(),
                    &id,
                    patch,
                    AdminGuard::KeepLastAdmin,
                    None,
                )
                .await?
            {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Deletes a user and everything that authenticates as it.
    pub async fn delete_user<P: DeletesUsers>(
        &self,
        grant: &Granted<P>,
        key: &UserKey,
    ) -> Result<DeleteUser, CoreError> {
        let Some(target) = self.lookup(key).await? else {
            return Ok(DeleteUser::NoSuchUser);
        };
        // Deleting the last active admin would leave nobody to administer
        // tokend: the store refuses it atomically with the delete.
        let deleted = match self
            .store
            .delete_user(&target.id, AdminGuard::KeepLastAdmin)
            .await?
        {
            Ok(deleted) => deleted,
            Err(LastAdmin) => return Ok(DeleteUser::LastAdmin),
        };
        // Also when the user was already gone: leave no orphans behind.
        self.end_saymon_credentials(&target.id).await?;
        Ok(if deleted {
            self.audit(
                AuditKind::UserDeleted,
                Some(grant.caller().id()),
                Some(&target.id),
                None,
            )
            .await;
            DeleteUser::Deleted
        } else {
            DeleteUser::NoSuchUser
        })
    }

    /// Ends every credential of a user (Rocket.Chat `users.logout`): its
    /// login tokens and PATs, and its SAYMON sessions and API token, so no
    /// way in survives a "log out everywhere". Oneself, or another user with
    /// `logout-other-user`.
    pub async fn logout_user(&self, by: &Caller, id: &str) -> Result<LogoutUser, CoreError> {
        if id != by.user.id && !self.holds(by, Permission::LogoutOtherUser).await? {
            return Ok(LogoutUser::NotAllowed);
        }
        let patch = UserPatch {
            clear_login_tokens: true,
            ..UserPatch::default()
        };
        let updated = self
            .store
            .update_user(id, &patch, self.now(), AdminGuard::Off)
            .await?;
        Ok(match updated {
            Ok(Some(_)) => {
                self.end_saymon_credentials(id).await?;
                self.audit(
                    AuditKind::Logout,
                    Some(by.id()),
                    Some(id),
                    Some("everywhere"),
                )
                .await;
                LogoutUser::Done
            }
            // Unguarded: `LastAdmin` cannot come back.
            Ok(None) | Err(LastAdmin) => LogoutUser::NoSuchUser,
        })
    }

    async fn end_saymon_credentials(&self, id: &str) -> Result<(), CoreError> {
        self.store.delete_api_token(id).await?;
        self.store.delete_sessions_of(id, None).await?;
        Ok(())
    }
}

/// What [`Core::apply_patch`] did.
pub(super) enum Patched {
    Updated(Box<User>),
    NoSuchUser,
    /// The username or email address is taken (ignoring case).
    Taken(UniqueField),
    /// The store's guard refused: it would leave no active admin.
    LastAdmin,
}

/// A user with only these roles and permissions, for the escalation rule.
fn sketch(roles: Vec<String>, permissions: Vec<String>) -> User {
    let epoch = chrono::DateTime::UNIX_EPOCH;
    User {
        id: String::new(),
        created_at: epoch,
        updated_at: epoch,
        kind: "user".into(),
        username: None,
        name: None,
        emails: Vec::new(),
        roles,
        permissions,
        active: true,
        require_password_change: false,
        password_bcrypt: None,
        last_login: None,
    }
}

/// Whether two lists hold the same ids, in any order.
pub(super) fn same_set(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| b.contains(x)) && b.iter().all(|x| a.contains(x))
}

/// The email list after a change of the first address.
fn changed_emails(current: &[Email], change: EmailChange) -> Vec<Email> {
    let mut emails = current.to_vec();
    match (change.address, emails.first_mut()) {
        (Some(address), Some(first)) => {
            if !first.address.eq_ignore_ascii_case(&address) || change.verified.is_some() {
                *first = Email {
                    address,
                    verified: change.verified.unwrap_or(false),
                }
            }
        }
        (Some(address), None) => emails.push(Email {
            address,
            verified: change.verified.unwrap_or(false),
        }),
        (None, Some(first)) => first.verified = change.verified.unwrap_or(first.verified),
        (None, None) => {}
    }
    emails
}

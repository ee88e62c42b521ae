//! Permissions: the [`Permission`] enum, the roles that hold them by
//! default, capabilities ([`Granted`]) and a user's effective set (roles'
//! permissions ∪ the user's own), read through a short-lived cache.
//!
//! A core operation that needs a permission takes a [`Granted<P>`], which
//! only `Core::authorize` makes, so "which operation needs what" is read off
//! the signatures. Which permission confers which power is stated once, by
//! the capability traits ([`CreatesUsers`], [`DeletesUsers`], ...).

use super::credential::Caller;
use super::model::{PermissionEntry, Role, User};
use crate::store::{RoleStore, StoreResult};
use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The role that administers tokend (the last-admin guard protects it).
pub const ADMIN_ROLE: &str = "admin";
/// The role every user created through the APIs gets by default.
pub const USER_ROLE: &str = "user";

macro_rules! permissions {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal by [$($role:literal),*] ),* $(,)?) => {
        /// A permission tokend checks, by its Rocket.Chat / SAYMON id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Permission {
            $( $(#[$doc])* $variant, )*
        }

        impl Permission {
            /// Every permission tokend knows.
            pub const ALL: &'static [Permission] = &[$(Permission::$variant),*];

            /// The permission's id as stored (`rocketchat_permissions._id`).
            pub fn id(self) -> &'static str {
                match self { $(Permission::$variant => $id,)* }
            }

            /// The roles that hold it in a fresh store.
            pub fn default_roles(self) -> &'static [&'static str] {
                match self { $(Permission::$variant => &[$($role),*],)* }
            }
        }

        /// Marker types, one per permission, for [`Granted`].
        pub mod perm {
            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Copy)]
                pub struct $variant;
                impl super::Perm for $variant {
                    const PERMISSION: super::Permission = super::Permission::$variant;
                }
            )*
        }
    };
}

permissions! {
    /// Mint login tokens for other users (`users.createToken`).
    UserGenerateAccessToken = "user-generate-access-token" by ["admin"],
    /// Create, list, regenerate and remove one's own personal access tokens.
    CreatePersonalAccessTokens = "create-personal-access-tokens" by ["admin", "user"],
    /// End every token of another user (`users.logout`).
    LogoutOtherUser = "logout-other-user" by ["admin"],
    /// Create users (Rocket.Chat).
    CreateUser = "create-user" by ["admin"],
    /// Delete users (Rocket.Chat).
    DeleteUser = "delete-user" by ["admin"],
    /// Change other users' profiles (Rocket.Chat).
    EditOtherUserInfo = "edit-other-user-info" by ["admin"],
    /// Set other users' passwords (Rocket.Chat; with `edit-other-user-info`).
    EditOtherUserPassword = "edit-other-user-password" by ["admin"],
    /// Change which roles a user has (Rocket.Chat), and a user's own
    /// permissions (SAYMON, also with `manage-users`).
    AssignRoles = "assign-roles" by ["admin"],
    /// Give the `admin` role (Rocket.Chat).
    AssignAdminRole = "assign-admin-role" by ["admin"],
    /// Read and change which roles hold which permission (Rocket.Chat
    /// `permissions.update`, `roles.getUsersInRole`).
    AccessPermissions = "access-permissions" by ["admin"],
    /// Activate and deactivate users (Rocket.Chat).
    EditOtherUserActiveStatus = "edit-other-user-active-status" by ["admin"],
    /// Open direct messages; Rocket.Chat lets it list users (`users.list`).
    ViewDRoom = "view-d-room" by ["admin", "user", "bot", "app"],
    /// See other users' email addresses (Rocket.Chat).
    ViewFullOtherUserInfo = "view-full-other-user-info" by ["admin"],
    /// Everything about users and their SAYMON credentials (SAYMON).
    ManageUsers = "manage-users" by ["admin"],
    /// The full server version and build in `/api/info` (Rocket.Chat).
    ViewStatistics = "view-statistics" by ["admin"],
    /// Not counted by the REST rate limiter.
    ApiBypassRateLimit = "api-bypass-rate-limit" by ["admin", "bot", "app"],
    /// Read the audit trail of credential events (tokend).
    ViewAuditLog = "view-audit-log" by ["admin"],
    /// List and revoke any user's personal access tokens (tokend).
    ManagePersonalAccessTokens = "manage-personal-access-tokens" by ["admin"],
}

/// A permission as a type, so that a [`Granted`] names it.
pub trait Perm: Send + Sync + 'static {
    const PERMISSION: Permission;
}

/// Proof that the caller it holds has permission `P`. Only the core makes
/// one (`Core::authorize`); operations that need `P` take it.
#[derive(Debug, Clone)]
pub struct Granted<P: Perm> {
    caller: Caller,
    _permission: PhantomData<P>,
}

impl<P: Perm> Granted<P> {
    /// Made by `Core::authorize` once the check passed.
    pub(super) fn new(caller: Caller) -> Self {
        Self {
            caller,
            _permission: PhantomData,
        }
    }

    /// The permitted caller.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

/// Permissions that allow creating users.
pub trait CreatesUsers: Perm {}
impl CreatesUsers for perm::CreateUser {}
impl CreatesUsers for perm::ManageUsers {}

/// Permissions that allow deleting users.
pub trait DeletesUsers: Perm {}
impl DeletesUsers for perm::DeleteUser {}
impl DeletesUsers for perm::ManageUsers {}

/// Permissions that allow activating and deactivating users.
pub trait SetsActiveStatus: Perm {}
impl SetsActiveStatus for perm::EditOtherUserActiveStatus {}
impl SetsActiveStatus for perm::ManageUsers {}

/// Permissions that allow managing other users' SAYMON API tokens.
pub trait ManagesApiTokens: Perm {}
impl ManagesApiTokens for perm::ManageUsers {}

/// Permissions that allow listing every user.
pub trait ListsUsers: Perm {}
impl ListsUsers for perm::ViewDRoom {}

/// The permissions seeded at start-up (inserted when missing, never
/// overwritten), stamped `now`.
pub fn default_permissions(now: super::model::Timestamp) -> Vec<PermissionEntry> {
    Permission::ALL
        .iter()
        .map(|p| PermissionEntry {
            id: p.id().to_string(),
            roles: p.default_roles().iter().map(|r| r.to_string()).collect(),
            updated_at: Some(now),
        })
        .collect()
}

/// Rocket.Chat's protected global roles, seeded when missing, stamped `now`.
pub fn default_roles(now: super::model::Timestamp) -> Vec<Role> {
    [
        (ADMIN_ROLE, "Admin"),
        (USER_ROLE, ""),
        ("bot", ""),
        ("app", ""),
        ("guest", ""),
        ("anonymous", ""),
    ]
    .into_iter()
    .map(|(id, description)| Role {
        id: id.into(),
        name: id.into(),
        scope: "Users".into(),
        description: description.into(),
        protected: true,
        updated_at: Some(now),
    })
    .collect()
}

type PermissionMap = Arc<HashMap<String, Vec<String>>>;

/// Caches the permission → roles map for a configurable time, so an
/// authorization check costs no store round trip on the hot path. A change
/// made through tokend clears it at once; one made in the database directly
/// is seen within the cache time.
pub struct PermissionCache {
    ttl: Duration,
    slot: Mutex<Option<(Instant, PermissionMap)>>,
}

impl PermissionCache {
    /// A cache holding entries for `ttl` (zero: always read the store).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            slot: Mutex::new(None),
        }
    }

    /// Forgets the cached map.
    pub fn invalidate(&self) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn map(&self, store: &dyn RoleStore) -> StoreResult<PermissionMap> {
        if let Some((at, map)) = &*self.slot.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < self.ttl {
                return Ok(map.clone());
            }
        }
        let map: PermissionMap = Arc::new(
            store
                .permissions()
                .await?
                .into_iter()
                .map(|p| (p.id, p.roles))
                .collect(),
        );
        if !self.ttl.is_zero() {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), map.clone()));
        }
        Ok(map)
    }

    /// Whether the user holds the permission through a role or directly.
    pub async fn has(
        &self,
        store: &dyn RoleStore,
        user: &User,
        permission: Permission,
    ) -> StoreResult<bool> {
        let permission = permission.id();
        if user.permissions.iter().any(|p| p == permission) {
            return Ok(true);
        }
        let map = self.map(store).await?;
        Ok(map
            .get(permission)
            .is_some_and(|roles| roles.iter().any(|r| user.roles.contains(r))))
    }

    /// The user's effective permissions, sorted.
    pub async fn effective(&self, store: &dyn RoleStore, user: &User) -> StoreResult<Vec<String>> {
        let map = self.map(store).await?;
        let mut set: BTreeSet<String> = user.permissions.iter().cloned().collect();
        for (perm, roles) in map.iter() {
            if roles.iter().any(|r| user.roles.contains(r)) {
                set.insert(perm.clone());
            }
        }
        Ok(set.into_iter().collect())
    }

    /// The permission map as of now, for several checks in one operation
    /// (one store read at most).
    pub async fn snapshot(&self, store: &dyn RoleStore) -> StoreResult<Snapshot> {
        Ok(Snapshot(self.map(store).await?))
    }
}

/// The permission → roles map at one moment (see [`PermissionCache::snapshot`]).
pub struct Snapshot(PermissionMap);

impl Snapshot {
    /// Whether the user holds the permission through a role or directly.
    pub fn has(&self, user: &User, permission: Permission) -> bool {
        let permission = permission.id();
        user.permissions.iter().any(|p| p == permission)
            || self
                .0
                .get(permission)
                .is_some_and(|roles| roles.iter().any(|r| user.roles.contains(r)))
    }

    /// The permissions tokend enforces that the user holds: its effective
    /// set, less ids neither tokend nor the permission store knows (a
    /// SAYMON permission such as `manage-objects` confers nothing here).
    /// The escalation rule compares these sets.
    pub fn enforced(&self, user: &User) -> BTreeSet<String> {
        self.enforced_ids(user).map(str::to_string).collect()
    }

    /// [`Self::enforced`] as borrowed ids, unsorted and possibly repeated:
    /// the checks below run on every mint, and building two sets of ~100
    /// strings each cost more than the rest of the check.
    fn enforced_ids<'a>(&'a self, user: &'a User) -> impl Iterator<Item = &'a str> + 'a {
        let map = &self.0;
        let known = |p: &str| map.contains_key(p) || Permission::ALL.iter().any(|k| k.id() == p);
        let direct = user
            .permissions
            .iter()
            .map(String::as_str)
            .filter(move |p| known(p));
        let through_roles = map
            .iter()
            .filter(|(_, roles)| roles.iter().any(|r| user.roles.contains(r)))
            .map(|(perm, _)| perm.as_str());
        direct.chain(through_roles)
    }

    /// Whether `user` holds the enforced permission `id` (one that
    /// [`Self::enforced_ids`] yields for some user).
    fn holds_enforced(&self, user: &User, id: &str) -> bool {
        user.permissions.iter().any(|p| p == id)
            || self
                .0
                .get(id)
                .is_some_and(|roles| roles.iter().any(|r| user.roles.contains(r)))
    }

    /// Whether `target` holds an enforced permission `caller` lacks.
    pub fn outranks(&self, target: &User, caller: &User) -> bool {
        target.id != caller.id
            && self
                .enforced_ids(target)
                .any(|p| !self.holds_enforced(caller, p))
    }

    /// Whether turning `before` into `after` gives it an enforced
    /// permission `caller` does not hold.
    pub fn escalates(&self, caller: &User, before: &User, after: &User) -> bool {
        self.enforced_ids(after)
            .any(|p| !self.holds_enforced(before, p) && !self.holds_enforced(caller, p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::User;

    fn user(id: &str, roles: &[&str], permissions: &[&str]) -> User {
        let now = chrono::Utc::now();
        User {
            id: id.into(),
            created_at: now,
            updated_at: now,
            kind: "user".into(),
            username: Some(id.into()),
            name: None,
            emails: Vec::new(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
            active: true,
            require_password_change: false,
            password_bcrypt: None,
            last_login: None,
        }
    }

    /// The escalation rule as sets, written as the rule reads: the
    /// borrowed-id checks must agree with it for every pair and triple.
    #[test]
    fn the_escalation_checks_agree_with_the_set_definition() {
        let map: HashMap<String, Vec<String>> = [
            ("view-user-administration", vec!["admin", "auditor"]),
            ("edit-other-user-info", vec!["admin", "user-manager"]),
            ("create-user", vec!["admin", "user-manager"]),
            ("custom-known", vec!["custom"]),
            ("nobody-has-this", vec![]),
        ]
        .into_iter()
        .map(|(p, r)| (p.to_string(), r.into_iter().map(str::to_string).collect()))
        .collect();
        let snapshot = Snapshot(Arc::new(map));
        let users = [
            user("a", &["admin"], &[]),
            user("m", &["user-manager"], &[]),
            user("au", &["auditor"], &[]),
            user("u", &["user"], &[]),
            user("d", &["user"], &["create-user"]),
            // Unknown to tokend and the store: confers nothing.
            user("s", &["user"], &["manage-objects"]),
            user("c", &["custom", "auditor"], &["nobody-has-this"]),
            user("e", &[], &[]),
        ];
        let outranks = |t: &User, c: &User| {
            t.id != c.id && !snapshot.enforced(t).is_subset(&snapshot.enforced(c))
        };
        let escalates = |c: &User, b: &User, a: &User| {
            let (had, mine) = (snapshot.enforced(b), snapshot.enforced(c));
            snapshot
                .enforced(a)
                .difference(&had)
                .any(|p| !mine.contains(p))
        };
        let mut checked = 0;
        for t in &users {
            for c in &users {
                assert_eq!(
                    snapshot.outranks(t, c),
                    outranks(t, c),
                    "{} over {}",
                    t.id,
                    c.id
                );
                for a in &users {
                    assert_eq!(
                        snapshot.escalates(c, t, a),
                        escalates(c, t, a),
                        "{} turning {} into {}",
                        c.id,
                        t.id,
                        a.id
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, users.len().pow(3));
        // And the rule itself, on cases whose answer is known.
        assert!(
            snapshot.outranks(&users[0], &users[1]),
            "admin over manager"
        );
        assert!(
            !snapshot.outranks(&users[1], &users[0]),
            "manager over admin"
        );
        assert!(
            !snapshot.outranks(&users[5], &users[3]),
            "an unknown id confers nothing"
        );
        assert!(
            snapshot.outranks(&users[4], &users[3]),
            "a direct grant counts"
        );
    }
}

//! Permissions: the seeded defaults and a user's effective set (roles'
//! permissions ∪ the user's own), read through a short-lived cache.

use super::model::{Permission, Role, User};
use crate::store::{Store, StoreResult};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const USER_GENERATE_ACCESS_TOKEN: &str = "user-generate-access-token";
pub const CREATE_PERSONAL_ACCESS_TOKENS: &str = "create-personal-access-tokens";
pub const LOGOUT_OTHER_USER: &str = "logout-other-user";
pub const CREATE_USER: &str = "create-user";
pub const DELETE_USER: &str = "delete-user";
pub const EDIT_OTHER_USER_INFO: &str = "edit-other-user-info";
pub const EDIT_OTHER_USER_ACTIVE_STATUS: &str = "edit-other-user-active-status";
pub const VIEW_OTHER_USER_INFO: &str = "view-other-user-info";
pub const VIEW_FULL_OTHER_USER_INFO: &str = "view-full-other-user-info";
pub const MANAGE_USERS: &str = "manage-users";
pub const API_BYPASS_RATE_LIMIT: &str = "api-bypass-rate-limit";

/// The permissions seeded at start-up (inserted when missing, never overwritten).
pub fn default_permissions() -> Vec<Permission> {
    let admin_only = [
        USER_GENERATE_ACCESS_TOKEN,
        LOGOUT_OTHER_USER,
        CREATE_USER,
        DELETE_USER,
        EDIT_OTHER_USER_INFO,
        EDIT_OTHER_USER_ACTIVE_STATUS,
        VIEW_OTHER_USER_INFO,
        VIEW_FULL_OTHER_USER_INFO,
        MANAGE_USERS,
    ];
    let mut out: Vec<Permission> = admin_only
        .iter()
        .map(|id| Permission {
            id: id.to_string(),
            roles: vec!["admin".into()],
        })
        .collect();
    out.push(Permission {
        id: CREATE_PERSONAL_ACCESS_TOKENS.into(),
        roles: vec!["admin".into(), "user".into()],
    });
    out.push(Permission {
        id: API_BYPASS_RATE_LIMIT.into(),
        roles: vec!["admin".into(), "bot".into(), "app".into()],
    });
    out
}

/// Rocket.Chat's protected global roles, seeded when missing.
pub fn default_roles() -> Vec<Role> {
    [
        ("admin", "Admin"),
        ("user", ""),
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

    async fn map(&self, store: &dyn Store) -> StoreResult<PermissionMap> {
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
    pub async fn has(&self, store: &dyn Store, user: &User, permission: &str) -> StoreResult<bool> {
        if user.permissions.iter().any(|p| p == permission) {
            return Ok(true);
        }
        let map = self.map(store).await?;
        Ok(map
            .get(permission)
            .is_some_and(|roles| roles.iter().any(|r| user.roles.contains(r))))
    }

    /// The user's effective permissions, sorted.
    pub async fn effective(&self, store: &dyn Store, user: &User) -> StoreResult<Vec<String>> {
        let map = self.map(store).await?;
        let mut set: BTreeSet<String> = user.permissions.iter().cloned().collect();
        for (perm, roles) in map.iter() {
            if roles.iter().any(|r| user.roles.contains(r)) {
                set.insert(perm.clone());
            }
        }
        Ok(set.into_iter().collect())
    }
}

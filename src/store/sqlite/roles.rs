//! Roles and permissions: the `roles` and `permissions` tables.

use super::{from_json, to_json, SqliteStore};
use crate::core::model::{PermissionEntry, Role};
use crate::store::{RoleStore, StoreResult};
use async_trait::async_trait;
use rusqlite::params;

#[async_trait]
impl RoleStore for SqliteStore {
    async fn ensure_role(&self, role: &Role) -> StoreResult<()> {
        let role = role.clone();
        // An operator's edits stay: an existing role is left alone.
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO roles (id, name, scope, description, protected) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                role.id,
                role.name,
                role.scope,
                role.description,
                role.protected
            ])?;
            Ok(())
        })
        .await
    }

    async fn ensure_permission(&self, permission: &PermissionEntry) -> StoreResult<()> {
        let p = permission.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO permissions (id, roles) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![p.id, to_json(&p.roles)])?;
            Ok(())
        })
        .await
    }

    async fn set_permission_roles(&self, id: &str, roles: &[String]) -> StoreResult<()> {
        let (id, roles) = (id.to_string(), to_json(roles));
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO permissions (id, roles) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET roles = excluded.roles",
            )?
            .execute(params![id, roles])?;
            Ok(())
        })
        .await
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionEntry>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT id, roles FROM permissions ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(PermissionEntry {
                    id: r.get(0)?,
                    roles: from_json(1, &r.get::<_, String>(1)?)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, scope, description, protected FROM roles ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Role {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    scope: r.get(2)?,
                    description: r.get(3)?,
                    protected: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

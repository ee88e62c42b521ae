//! Roles and permissions: the `roles` and `permissions` tables.

use super::{from_json, ms, time, to_json, SqliteStore};
use crate::core::model::{PermissionEntry, Role, Timestamp};
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
                "INSERT INTO roles (id, name, scope, description, protected, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![
                role.id,
                role.name,
                role.scope,
                role.description,
                role.protected,
                role.updated_at.map(ms)
            ])?;
            Ok(())
        })
        .await
    }

    async fn ensure_permission(&self, permission: &PermissionEntry) -> StoreResult<()> {
        let p = permission.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO permissions (id, roles, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO NOTHING",
            )?
            .execute(params![p.id, to_json(&p.roles), p.updated_at.map(ms)])?;
            Ok(())
        })
        .await
    }

    async fn set_permission_roles(
        &self,
        id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        let (id, roles) = (id.to_string(), to_json(roles));
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO permissions (id, roles, updated_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (id) DO UPDATE SET roles = excluded.roles, \
                 updated_at = excluded.updated_at",
            )?
            .execute(params![id, roles, ms(now)])?;
            Ok(())
        })
        .await
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionEntry>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT id, roles, updated_at FROM permissions ORDER BY id")?;
            let rows = stmt.query_map([], |r| {
                Ok(PermissionEntry {
                    id: r.get(0)?,
                    roles: from_json(1, &r.get::<_, String>(1)?)?,
                    updated_at: r
                        .get::<_, Option<i64>>(2)?
                        .map(|v| time(2, v))
                        .transpose()?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn rc_login_expiration_days(&self) -> StoreResult<Option<f64>> {
        // Rocket.Chat's settings live only in its MongoDB.
        Ok(None)
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, name, scope, description, protected, updated_at FROM roles ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Role {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    scope: r.get(2)?,
                    description: r.get(3)?,
                    protected: r.get(4)?,
                    updated_at: r
                        .get::<_, Option<i64>>(5)?
                        .map(|v| time(5, v))
                        .transpose()?,
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }
}

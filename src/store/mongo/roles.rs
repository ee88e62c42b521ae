//! [`RoleStore`]: Rocket.Chat's `rocketchat_roles` and `rocketchat_permissions`.

use super::*;

/// Inserts `d` unless a document with its `_id` exists (which is left as it is).
async fn insert_if_absent(db: &Database, collection: &str, d: Document) -> Outcome<()> {
    match coll(db, collection).insert_one(d).await {
        Err(e) if !matches!(classify(&e), Failure::Duplicate(_)) => Err(e.into()),
        _ => Ok(()),
    }
}

#[async_trait]
impl RoleStore for MongoStore {
    async fn ensure_role(&self, role: &Role) -> StoreResult<()> {
        // An operator's edits to an existing role stay.
        self.run("ensure_role", |db| async move {
            insert_if_absent(&db, ROLES, role_doc(role)).await
        })
        .await
    }

    async fn ensure_permission(&self, permission: &PermissionEntry) -> StoreResult<()> {
        self.run("ensure_permission", |db| async move {
            let mut d = doc! {
                "_id": &permission.id,
                "roles": permission.roles.clone(),
            };
            if let Some(at) = permission.updated_at {
                d.insert("_updatedAt", date(at));
            }
            insert_if_absent(&db, PERMISSIONS, d).await
        })
        .await
    }

    async fn set_permission_roles(
        &self,
        id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        self.run("set_permission_roles", |db| async move {
            coll(&db, PERMISSIONS)
                .update_one(
                    doc! { "_id": id },
                    doc! { "$set": { "roles": roles.to_vec(), "_updatedAt": date(now) } },
                )
                .upsert(true)
                .await?;
            Ok(())
        })
        .await
    }

    async fn permissions(&self) -> StoreResult<Vec<PermissionEntry>> {
        self.run("permissions", |db| async move {
            let cursor = coll(&db, PERMISSIONS)
                .find(doc! {})
                .projection(doc! { "roles": 1, "_updatedAt": 1 })
                .await?;
            collect(cursor, permission_from).await
        })
        .await
    }

    async fn rc_login_expiration_days(&self) -> StoreResult<Option<f64>> {
        self.run("rc_login_expiration_days", |db| async move {
            let setting = coll(&db, SETTINGS)
                .find_one(doc! { "_id": "Accounts_LoginExpiration" })
                .projection(doc! { "value": 1 })
                .await?;
            Ok(setting.and_then(|d| match d.get("value") {
                Some(mongodb::bson::Bson::Double(v)) => Some(*v),
                Some(mongodb::bson::Bson::Int32(v)) => Some(f64::from(*v)),
                Some(mongodb::bson::Bson::Int64(v)) => Some(*v as f64),
                _ => None,
            }))
        })
        .await
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        self.run("roles", |db| async move {
            let cursor = coll(&db, ROLES).find(doc! {}).await?;
            collect(cursor, role_from).await
        })
        .await
    }
}

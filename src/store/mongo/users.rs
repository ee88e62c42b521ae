//! [`UserStore`]: Rocket.Chat's user documents, read without their tokens.

use super::*;

#[async_trait]
impl UserStore for MongoStore {
    async fn count_users(&self) -> StoreResult<u64> {
        self.run("count_users", |db| async move {
            Ok(coll(&db, USERS).count_documents(doc! {}).await?)
        })
        .await
    }

    /// Three commands: the check against existing users (Rocket.Chat's
    /// included), the claims, the insert.
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        self.run("insert_user", |db| async move {
            let keys = unique_keys(user.username.as_deref(), &user.emails);
            self.check_unheld(&db, &keys, None).await?;
            let claimed = self.claim(&db, &user.id, &keys, user.created_at).await?;
            if let Err(e) = coll(&db, USERS).insert_one(user_doc(user)).await {
                let fault = self
                    .user_write_fault(&db, e, &user.id, user.username.as_deref(), &user.emails)
                    .await;
                self.release(&db, &user.id, &claimed).await;
                return Err(fault);
            }
            Ok(())
        })
        .await
    }

    /// One `find`, projected on the fields tokend decodes (no tokens).
    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>> {
        self.run("find_user", |db| async move {
            let Some(filter) = key_filter(key) else {
                return Ok(None);
            };
            let UserKey::Login(login) = key else {
                let found = coll(&db, USERS)
                    .find_one(filter)
                    .projection(user_projection())
                    .await?;
                return Ok(found.as_ref().and_then(user_from));
            };
            // A login may name one user's username and another's email: prefer the username.
            let cursor = coll(&db, USERS)
                .find(filter)
                .projection(user_projection())
                .limit(2)
                .await?;
            let users = collect(cursor, user_from).await?;
            let by_name = UserKey::Username(login.clone());
            Ok(users
                .iter()
                .find(|u| by_name.matches(u))
                .or(users.first())
                .cloned())
        })
        .await
    }

    /// Two commands: the count and the page (projected, no tokens).
    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)> {
        self.run("list_users", |db| async move {
            let users = coll(&db, USERS);
            let total = users.count_documents(doc! {}).await?;
            if count == 0 {
                return Ok((Vec::new(), total));
            }
            let cursor = users
                .find(doc! {})
                .sort(doc! { user::USERNAME: 1, user::ID: 1 })
                .skip(offset)
                .limit(i64::try_from(count).unwrap_or(i64::MAX))
                .projection(user_projection())
                .await?;
            Ok((collect(cursor, user_from).await?, total))
        })
        .await
    }

    /// Two commands: the count and the page (projected, no tokens), with a
    /// filter built from the core's validated AST only ([`query_filter`]).
    async fn find_users(&self, query: &UserQuery) -> StoreResult<(Vec<User>, u64)> {
        self.run("find_users", |db| async move {
            let users = coll(&db, USERS);
            let filter = query_filter(&query.filter);
            let total = users.count_documents(filter.clone()).await?;
            if query.count == 0 {
                return Ok((Vec::new(), total));
            }
            let cursor = users
                .find(filter)
                .sort(query_sort(query))
                .skip(query.offset)
                .limit(i64::try_from(query.count).unwrap_or(i64::MAX))
                .projection(user_projection())
                .await?;
            Ok((collect(cursor, user_from).await?, total))
        })
        .await
    }

    async fn users_in_roles(
        &self,
        roles: &[String],
        offset: u64,
        count: u64,
    ) -> StoreResult<(Vec<User>, u64)> {
        self.run("users_in_roles", |db| async move {
            let users = coll(&db, USERS);
            let filter = doc! { user::ROLES: { "$in": roles.to_vec() } };
            let total = users.count_documents(filter.clone()).await?;
            if count == 0 {
                return Ok((Vec::new(), total));
            }
            let cursor = users
                .find(filter)
                .sort(doc! { user::USERNAME: 1, user::ID: 1 })
                .skip(offset)
                .limit(i64::try_from(count).unwrap_or(i64::MAX))
                .projection(user_projection())
                .await?;
            Ok((collect(cursor, user_from).await?, total))
        })
        .await
    }

    /// One `findAndModify`; a new username or email also costs a uniqueness
    /// check, its claims, and releasing the claims no longer used. Guarded:
    /// under the admin lease, a read of the user and one of another active
    /// admin first (see `admin_guard`).
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
        guard: AdminGuard,
    ) -> StoreResult<Result<Option<User>, LastAdmin>> {
        self.run("update_user", |db| async move {
            if guard == AdminGuard::Off {
                return Ok(Ok(self.patch_user(&db, id, patch, now).await?));
            }
            self.holding_admin_lease(&db, async {
                let Some(before) = self.admin_view(&db, id).await? else {
                    return Ok(Ok(None));
                };
                let mut after = before.clone();
                patch.apply(&mut after, now);
                if removes_active_admin(&before, Some(&after))
                    && !self.other_active_admin_exists(&db, id).await?
                {
                    return Ok(Err(LastAdmin));
                }
                Ok(Ok(self.patch_user(&db, id, patch, now).await?))
            })
            .await
        })
        .await
    }

    /// One `delete`, plus freeing the user's names. Guarded: under the admin
    /// lease, a read of the user and one of another active admin first.
    async fn delete_user(
        &self,
        id: &str,
        guard: AdminGuard,
    ) -> StoreResult<Result<bool, LastAdmin>> {
        self.run("delete_user", |db| async move {
            if guard == AdminGuard::Off {
                return Ok(Ok(self.remove_user(&db, id).await?));
            }
            self.holding_admin_lease(&db, async {
                if let Some(before) = self.admin_view(&db, id).await? {
                    if removes_active_admin(&before, None)
                        && !self.other_active_admin_exists(&db, id).await?
                    {
                        return Ok(Err(LastAdmin));
                    }
                }
                Ok(Ok(self.remove_user(&db, id).await?))
            })
            .await
        })
        .await
    }
}

impl MongoStore {
    /// The patch as one `findAndModify`, with the claims of new names.
    async fn patch_user(
        &self,
        db: &Database,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
    ) -> Outcome<Option<User>> {
        let emails = patch.emails.as_deref().unwrap_or_default();
        let new_keys = unique_keys(patch.username.as_deref(), emails);
        self.check_unheld(db, &new_keys, Some(id)).await?;
        let claimed = self.claim(db, id, &new_keys, now).await?;
        let updated = coll(db, USERS)
            .find_one_and_update(doc! { user::ID: id }, user_update(patch, now))
            .projection(user_projection())
            .return_document(ReturnDocument::After)
            .await;
        let user = match updated {
            Ok(Some(d)) => user_from(&d),
            Ok(None) => {
                self.release(db, id, &claimed).await;
                return Ok(None);
            }
            Err(e) => {
                let fault = self
                    .user_write_fault(db, e, id, patch.username.as_deref(), emails)
                    .await;
                self.release(db, id, &claimed).await;
                return Err(fault);
            }
        };
        if let Some(u) = &user {
            if patch.username.is_some() || patch.emails.is_some() {
                // Free the names this user no longer has.
                let kept = unique_keys(u.username.as_deref(), &u.emails);
                self.release_all_but(db, id, Some(&kept)).await;
            }
        }
        Ok(user)
    }

    async fn remove_user(&self, db: &Database, id: &str) -> Outcome<bool> {
        let deleted = coll(db, USERS)
            .delete_one(doc! { user::ID: id })
            .await?
            .deleted_count
            > 0;
        self.release_all_but(db, id, None).await;
        Ok(deleted)
    }
}

//! [`SaymonStore`]: SAYMON API tokens (`tokend_api_tokens`, `_id` = user id)
//! and sessions (`tokend_sessions`, `_id` = hash of the session id).

use super::*;

/// `$set` of the token's fields; a new token's `lastUsedAt` is `$unset`.
fn set_api_token_update(token: &ApiToken) -> Document {
    let mut fields = api_token_fields(token);
    match token.last_used_at {
        Some(t) => {
            fields.insert("lastUsedAt", date(t));
            doc! { "$set": fields }
        }
        None => doc! { "$set": fields, "$unset": { "lastUsedAt": "" } },
    }
}

#[async_trait]
impl SaymonStore for MongoStore {
    /// One upsert (two when a concurrent upsert of the same user wins the insert).
    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        self.run("set_api_token", |db| async move {
            let tokens = coll(&db, API_TOKENS);
            let upsert = || {
                tokens
                    .update_one(doc! { "_id": &token.user_id }, set_api_token_update(token))
                    .upsert(true)
            };
            match upsert().await {
                Ok(_) => {}
                // Two upserts of one `_id` may race on the insert: the loser retries as an update.
                Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => {
                    upsert().await?;
                }
                Err(e) => return Err(e.into()),
            }
            Ok(())
        })
        .await
    }

    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>> {
        self.run("api_token_of", |db| async move {
            let found = coll(&db, API_TOKENS)
                .find_one(doc! { "_id": user_id })
                .await?;
            Ok(found.as_ref().and_then(api_token_from))
        })
        .await
    }

    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        self.run("api_tokens_of", |db| async move {
            let cursor = coll(&db, API_TOKENS)
                .find(doc! { "_id": { "$in": user_ids } })
                .await?;
            collect(cursor, api_token_from).await
        })
        .await
    }

    async fn find_api_token(&self, hashed_token: &TokenHash) -> StoreResult<Option<ApiToken>> {
        self.run("find_api_token", |db| async move {
            let found = coll(&db, API_TOKENS)
                .find_one(doc! { "hashedToken": hashed_token.as_str() })
                .await?;
            Ok(found.as_ref().and_then(api_token_from))
        })
        .await
    }

    /// One conditional update: `lastUsedAt` absent or older than `stale_before`.
    async fn touch_api_token(
        &self,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool> {
        self.run("touch_api_token", |db| async move {
            let result = coll(&db, API_TOKENS)
                .update_one(
                    doc! {
                        "hashedToken": hashed_token.as_str(),
                        "lastUsedAt": { "$not": { "$gte": date(stale_before) } },
                    },
                    doc! { "$set": { "lastUsedAt": date(now) } },
                )
                .await?;
            Ok(result.modified_count > 0)
        })
        .await
    }

    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool> {
        self.run("delete_api_token", |db| async move {
            let result = coll(&db, API_TOKENS)
                .delete_one(doc! { "_id": user_id })
                .await?;
            Ok(result.deleted_count > 0)
        })
        .await
    }

    /// An insert, then a trim (as `push_login_token`): the sessions beyond
    /// the user's newest `max` are found and deleted. Every insert trims
    /// after itself, so once concurrent opens have finished the user holds
    /// at most `max`; while they run, at most one more per open in flight.
    async fn insert_session(&self, session: &Session, max: usize) -> StoreResult<()> {
        self.run("insert_session", |db| async move {
            coll(&db, SESSIONS).insert_one(session_doc(session)).await?;
            Ok(())
        })
        .await?;
        let skip = u64::try_from(max).unwrap_or(u64::MAX);
        // The session is stored: a failed trim must not turn a successful
        // open into an error; the next open trims again (`run` logs it).
        let _ = self
            .run("insert_session (cap)", |db| async move {
                let sessions = coll(&db, SESSIONS);
                let cursor = sessions
                    .find(doc! { "userId": &session.user_id })
                    .sort(doc! { "createdAt": -1, "_id": -1 })
                    .skip(skip)
                    .projection(doc! { "_id": 1 })
                    .await?;
                let victims: Vec<mongodb::bson::Bson> =
                    collect(cursor, |d| d.get("_id").cloned()).await?;
                if !victims.is_empty() {
                    sessions
                        .delete_many(doc! { "_id": { "$in": victims } })
                        .await?;
                }
                Ok(())
            })
            .await;
        Ok(())
    }

    /// One `findAndModify`, filtered on both expiries.
    async fn touch_session(
        &self,
        hashed_id: &TokenHash,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>> {
        self.run("touch_session", |db| async move {
            let found = coll(&db, SESSIONS)
                .find_one_and_update(
                    doc! {
                        "_id": hashed_id.as_str(),
                        "expiresAt": { "$gt": date(now) },
                        "absoluteExpiresAt": { "$gt": date(now) },
                    },
                    doc! { "$set": { "lastSeenAt": date(now), "expiresAt": date(new_expires_at) } },
                )
                .return_document(ReturnDocument::After)
                .await?;
            Ok(found.as_ref().and_then(session_from))
        })
        .await
    }

    async fn delete_session(&self, hashed_id: &TokenHash) -> StoreResult<bool> {
        self.run("delete_session", |db| async move {
            let result = coll(&db, SESSIONS)
                .delete_one(doc! { "_id": hashed_id.as_str() })
                .await?;
            Ok(result.deleted_count > 0)
        })
        .await
    }

    async fn delete_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        self.run("delete_sessions_of", |db| async move {
            let mut filter = doc! { "userId": user_id };
            if let Some(keep) = keep {
                filter.insert("_id", doc! { "$ne": keep.as_str() });
            }
            let result = coll(&db, SESSIONS).delete_many(filter).await?;
            Ok(result.deleted_count)
        })
        .await
    }
}

//! [`TokenStore`]: login tokens and personal access tokens, the entries of
//! `services.resume.loginTokens`.
//!
//! What each call reads of the entries: `find_by_token` only the entry it
//! matched (positional projection), `find_personal_access_token` only the
//! named PAT (positional projection), the PAT writes and `remove_login_token`
//! nothing (conditions on the array, `$pull`, positional `$set`). Reading
//! every entry remains where the answer depends on all of them:
//! `tokens_of` (all of them, by definition), `push_login_token` (`when` and
//! `type` of each, to find the cap's cutoff) and `remove_login_tokens` (`type`
//! and hash of each, to count what it removed).

use super::*;

#[async_trait]
impl TokenStore for MongoStore {
    /// One `find`: Rocket.Chat's own lookup
    /// `{_id, 'services.resume.loginTokens.hashedToken'}`, projected on the
    /// user fields and, positionally, the one matched entry.
    async fn find_by_token(
        &self,
        user_id: Option<&str>,
        hashed_token: &TokenHash,
    ) -> StoreResult<Option<(User, LoginToken)>> {
        self.run("find_by_token", |db| async move {
            let mut filter = Document::new();
            if let Some(id) = user_id {
                filter.insert(user::ID, id);
            }
            filter.insert(user::TOKEN_HASH, hashed_token.as_str());
            let found = coll(&db, USERS)
                .find_one(filter)
                .projection(user_and_matched_token_projection())
                .await?;
            let Some(d) = found else {
                return Ok(None);
            };
            let entry = login_tokens_of(&d)
                .into_iter()
                .find(|t| t.hashed_token() == hashed_token);
            // No entry: the matched one is of a kind tokend does not know.
            Ok(user_from(&d).zip(entry))
        })
        .await
    }

    async fn tokens_of(&self, user_id: &str) -> StoreResult<Vec<LoginToken>> {
        self.run("tokens_of", |db| async move {
            let found = coll(&db, USERS)
                .find_one(doc! { user::ID: user_id })
                .projection(doc! { user::LOGIN_TOKENS: 1 })
                .await?;
            Ok(found.as_ref().map(login_tokens_of).unwrap_or_default())
        })
        .await
    }

    /// One `find`: `$elemMatch` on the PAT's name and type, projected
    /// positionally on that one entry (no user fields, no other entry).
    async fn find_personal_access_token(
        &self,
        user_id: &str,
        name: &str,
    ) -> StoreResult<Option<PersonalAccessToken>> {
        self.run("find_personal_access_token", |db| async move {
            let found = coll(&db, USERS)
                .find_one(doc! {
                    user::ID: user_id,
                    user::LOGIN_TOKENS: { "$elemMatch": pat_named(name) },
                })
                .projection(doc! { in_tokens("$"): 1 })
                .await?;
            Ok(found.as_ref().and_then(|d| {
                login_tokens_of(d).into_iter().find_map(|t| match t {
                    LoginToken::Personal(p) if p.name == name => Some(p),
                    _ => None,
                })
            }))
        })
        .await
    }

    /// One `findAndModify` (`$push`, returning `when` and `type` of each
    /// entry), plus a `$pull` only when the user is over the cap.
    ///
    /// Why the cap holds under concurrent pushes without transactions: the
    /// pull after a push removes only resume tokens strictly older than the
    /// `max`-th newest of the list that push saw. A token among the `max`
    /// newest of all tokens ever pushed has fewer than `max` newer tokens in
    /// any list, so no pull ever removes it; and the last push to land sees
    /// every token still present, so its pull (or the fact that none is
    /// needed) leaves exactly the `max` newest. PATs carry no `when` and are
    /// excluded by `type` as well, so they are never pulled. The entries
    /// counted are exactly those the pull may remove (a `when`, not a PAT).
    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>> {
        let pushed = self
            .run("push_login_token", |db| async move {
                let Some(filter) = key_filter(key) else {
                    return Ok(None);
                };
                let entry = token_doc(&LoginToken::Resume(token.clone()));
                let after = coll(&db, USERS)
                    .find_one_and_update(filter, doc! { "$push": { user::LOGIN_TOKENS: entry } })
                    .projection(cap_projection())
                    .return_document(ReturnDocument::After)
                    .await?;
                let Some(after) = after else {
                    return Ok(None);
                };
                let (Some(id), Some(raw_id)) = (id_of(&after), after.get(user::ID)) else {
                    return Err(StoreError::Internal("user document without an _id".into()).into());
                };
                let cutoff = cap_trim(cap_counted(&after), max);
                Ok(Some((id, raw_id.clone(), cutoff)))
            })
            .await?;
        let Some((id, raw_id, cutoff)) = pushed else {
            return Ok(None);
        };
        if let Some((cutoff, tied)) = cutoff {
            // The token is stored: a failed trim must not turn a successful
            // mint into an error (the client would never see a token that
            // exists). The next push trims again from the full list; the
            // failure itself is logged once by `run`.
            let _ = self
                .run("push_login_token (cap)", |db| async move {
                    coll(&db, USERS)
                        .update_one(
                            doc! { user::ID: raw_id },
                            doc! { "$pull": { user::LOGIN_TOKENS: cap_victims(cutoff, &tied) } },
                        )
                        .await?;
                    Ok(())
                })
                .await;
        }
        Ok(Some(id))
    }

    /// One `findAndModify` (`$pull`, returning `type` and hash of each entry
    /// as they were, to count what went).
    async fn remove_login_tokens(
        &self,
        user_id: &str,
        keep: Option<&TokenHash>,
    ) -> StoreResult<u64> {
        self.run("remove_login_tokens", |db| async move {
            let before = coll(&db, USERS)
                .find_one_and_update(
                    doc! { user::ID: user_id },
                    doc! { "$pull": { user::LOGIN_TOKENS: non_pat_entries_except(keep) } },
                )
                .projection(removal_projection())
                .return_document(ReturnDocument::Before)
                .await?;
            Ok(before.map_or(0, |d| count_non_pat_except(&d, keep)))
        })
        .await
    }

    async fn remove_login_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
    ) -> StoreResult<bool> {
        self.run("remove_login_token", |db| async move {
            let hash = hashed_token.as_str();
            let result = coll(&db, USERS)
                .update_one(
                    doc! { user::ID: user_id, user::TOKEN_HASH: hash },
                    doc! { "$pull": { user::LOGIN_TOKENS: { entry::HASHED_TOKEN: hash } } },
                )
                .await?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    /// One update, filtered on the list not holding a PAT of that name
    /// (`$not` + `$elemMatch`), so two concurrent adds cannot both succeed. A
    /// second command only tells "name taken" from "no such user".
    async fn add_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
        max: usize,
    ) -> StoreResult<PatInsert> {
        self.run("add_personal_access_token", |db| async move {
            let users = coll(&db, USERS);
            let filter = doc! {
                user::ID: user_id,
                user::LOGIN_TOKENS: { "$not": { "$elemMatch": pat_named(&pat.name) } },
            };
            // A push, then a check of the array it returns: the array keeps
            // push order, so of concurrent adds exactly the ones beyond the
            // `max`-th PAT take themselves out again; the user never keeps
            // more than `max`.
            let after = users
                .find_one_and_update(
                    filter,
                    doc! { "$push": { user::LOGIN_TOKENS: pat_doc(pat) } },
                )
                .projection(pat_cap_projection())
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(after) = after {
                if pat_position(&after, &pat.hashed_token).is_some_and(|i| i >= max) {
                    users
                        .update_one(
                            doc! { user::ID: user_id },
                            doc! { "$pull": { user::LOGIN_TOKENS: {
                                entry::HASHED_TOKEN: pat.hashed_token.as_str()
                            } } },
                        )
                        .await?;
                    return Ok(PatInsert::TooMany);
                }
                return Ok(PatInsert::Inserted);
            }
            let exists = users
                .find_one(doc! { user::ID: user_id })
                .projection(doc! { user::ID: 1 })
                .await?
                .is_some();
            Ok(if exists {
                PatInsert::NameTaken
            } else {
                PatInsert::NoSuchUser
            })
        })
        .await
    }

    /// One update: `$elemMatch` on the name, positional `$set` of the entry.
    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool> {
        self.run("replace_personal_access_token", |db| async move {
            let result = coll(&db, USERS)
                .update_one(
                    doc! {
                        user::ID: user_id,
                        user::LOGIN_TOKENS: { "$elemMatch": pat_named(&pat.name) },
                    },
                    doc! { "$set": { in_tokens("$"): pat_doc(pat) } },
                )
                .await?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool> {
        self.run("remove_personal_access_token", |db| async move {
            let result = coll(&db, USERS)
                .update_one(
                    doc! { user::ID: user_id, user::LOGIN_TOKENS: { "$elemMatch": pat_named(name) } },
                    doc! { "$pull": { user::LOGIN_TOKENS: pat_named(name) } },
                )
                .await?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    /// One conditional update: `$elemMatch` on the PAT's hash with
    /// `lastUsedAt` absent or older than `stale_before`, positional `$set`.
    async fn touch_personal_access_token(
        &self,
        user_id: &str,
        hashed_token: &TokenHash,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> StoreResult<bool> {
        self.run("touch_personal_access_token", |db| async move {
            let result = coll(&db, USERS)
                .update_one(
                    doc! {
                        user::ID: user_id,
                        user::LOGIN_TOKENS: { "$elemMatch": {
                            entry::HASHED_TOKEN: hashed_token.as_str(),
                            entry::TYPE: entry::PAT_TYPE,
                            entry::LAST_USED_AT: { "$not": { "$gte": date(stale_before) } },
                        } },
                    },
                    doc! { "$set": { in_tokens(&format!("$.{}", entry::LAST_USED_AT)): date(now) } },
                )
                .await?;
            Ok(result.modified_count > 0)
        })
        .await
    }
}

/// The trim after a push: the `when` of the `max`-th newest counted entry,
/// and the hashes of the entries tied with it that fall outside the newest
/// `max` (ordered by `when`, then hash, both descending). Every pusher
/// orders alike, so a trim never removes one of the newest `max` overall,
/// and the last push leaves exactly `max` even when two instances stamped
/// the same millisecond. `None`: nothing to trim.
fn cap_trim(
    mut entries: Vec<(Timestamp, Option<String>)>,
    max: usize,
) -> Option<(Timestamp, Vec<String>)> {
    if entries.len() <= max || max == 0 {
        return None;
    }
    entries.sort_unstable_by(|a, b| b.cmp(a));
    let cutoff = entries[max - 1].0;
    let tied = entries[max..]
        .iter()
        .filter(|(when, _)| *when == cutoff)
        .filter_map(|(_, hash)| hash.clone())
        .collect();
    Some((cutoff, tied))
}

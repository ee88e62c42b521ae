//! Uniqueness of usernames and emails ignoring case: the check against the
//! users themselves (Rocket.Chat's included), and tokend's claims in
//! `tokend_user_keys`.

use super::*;
use mongodb::bson::Bson;

/// A claim on a username or email whose user never appeared (or no longer
/// holds it) is considered abandoned after this long and may be taken over.
/// Younger claims belong to a create or rename still in flight.
fn stale_claim_after() -> chrono::Duration {
    chrono::Duration::seconds(60)
}

/// Outcome of trying to take over a claim someone else holds.
enum Takeover {
    AlreadyMine,
    TakenOver,
    Held,
}

/// A claim of `tokend_user_keys`: the key (its `_id`) belongs to `user_id`.
fn claim_doc(key_id: &str, user_id: &str, now: Timestamp) -> Document {
    doc! { "_id": key_id, "userId": user_id, "createdAt": date(now) }
}

impl MongoStore {
    /// Fails with `Duplicate` if a user other than `except` holds one of
    /// `keys` ignoring case. Sees users Rocket.Chat created, which have no claims.
    pub(super) async fn check_unheld(
        &self,
        db: &Database,
        keys: &[UniqueKey],
        except: Option<&str>,
    ) -> Outcome<()> {
        let Some(mut filter) = holders_filter(keys) else {
            return Ok(());
        };
        if let Some(id) = except {
            filter.insert(user::ID, doc! { "$ne": id });
        }
        let holder = coll(db, USERS)
            .find_one(filter)
            .projection(names_projection())
            .await?;
        match holder {
            Some(d) => Err(StoreError::Duplicate(
                held_key(&d, keys).map_or(UniqueField::Other, |k| k.field),
            )
            .into()),
            None => Ok(()),
        }
    }

    /// Claims `keys` (lowercase usernames and emails) for `user_id` in
    /// `tokend_user_keys`, whose `_id` is the key: MongoDB's unique `_id`
    /// makes "one user per name, ignoring case" atomic across concurrent
    /// tokend writers without transactions, without collations, and without
    /// adding fields to Rocket.Chat's user documents. Returns the claims this
    /// call created (to release if the user write fails); on a clash,
    /// releases them and fails with `Duplicate(field)`.
    ///
    /// A claim whose holder no longer holds the key (user deleted or renamed
    /// outside tokend, or a crash between claim and insert) is taken over
    /// once older than [`stale_claim_after`], by compare-and-swap on its holder.
    pub(super) async fn claim(
        &self,
        db: &Database,
        user_id: &str,
        keys: &[UniqueKey],
        now: Timestamp,
    ) -> Outcome<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let docs = keys.iter().map(|k| claim_doc(&k.id, user_id, now));
        let clashes: Vec<usize> = match coll(db, USER_KEYS).insert_many(docs).ordered(false).await {
            Ok(_) => Vec::new(),
            Err(e) => match e.kind.as_ref() {
                ErrorKind::InsertMany(m)
                    if m.write_concern_error.is_none()
                        && m.write_errors.iter().flatten().all(|w| w.code == 11000) =>
                {
                    m.write_errors.iter().flatten().map(|w| w.index).collect()
                }
                _ => return Err(e.into()),
            },
        };
        let mut mine: Vec<String> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| !clashes.contains(i))
            .map(|(_, k)| k.id.clone())
            .collect();
        for i in clashes {
            let Some(key) = keys.get(i) else { continue };
            match self.take_over(db, user_id, key, now).await {
                Ok(Takeover::AlreadyMine) => {}
                Ok(Takeover::TakenOver) => mine.push(key.id.clone()),
                Ok(Takeover::Held) => {
                    self.release(db, user_id, &mine).await;
                    return Err(StoreError::Duplicate(key.field).into());
                }
                Err(e) => {
                    self.release(db, user_id, &mine).await;
                    return Err(e);
                }
            }
        }
        Ok(mine)
    }

    async fn take_over(
        &self,
        db: &Database,
        me: &str,
        key: &UniqueKey,
        now: Timestamp,
    ) -> Outcome<Takeover> {
        let claims = coll(db, USER_KEYS);
        let Some(claim) = claims.find_one(doc! { "_id": &key.id }).await? else {
            // Released meanwhile: one more try.
            return match claims.insert_one(claim_doc(&key.id, me, now)).await {
                Ok(_) => Ok(Takeover::TakenOver),
                Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => Ok(Takeover::Held),
                Err(e) => Err(e.into()),
            };
        };
        let holder = claim.get_str("userId").unwrap_or_default().to_string();
        if holder == me {
            return Ok(Takeover::AlreadyMine);
        }
        if let Some(re) = exact_ignoring_case(&key.value) {
            let held = coll(db, USERS)
                .find_one(doc! { user::ID: &holder, key.path(): re })
                .projection(doc! { user::ID: 1 })
                .await?
                .is_some();
            if held {
                return Ok(Takeover::Held);
            }
        }
        let claimed_at = timestamp(claim.get("createdAt")).unwrap_or_default();
        if claimed_at > now - stale_claim_after() {
            return Ok(Takeover::Held);
        }
        let swapped = claims
            .find_one_and_update(
                doc! { "_id": &key.id, "userId": &holder },
                doc! { "$set": { "userId": me, "createdAt": date(now) } },
            )
            .await?
            .is_some();
        if swapped {
            tracing::info!(field = ?key.field, "took over an abandoned username/email claim");
        }
        Ok(if swapped {
            Takeover::TakenOver
        } else {
            Takeover::Held
        })
    }

    /// Best effort: drops claims of `user_id` (those left behind are taken
    /// over once stale).
    pub(super) async fn release(&self, db: &Database, user_id: &str, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let filter = doc! { "_id": { "$in": ids }, "userId": user_id };
        if let Err(e) = coll(db, USER_KEYS).delete_many(filter).await {
            tracing::warn!(error = %e, "could not release username/email claims; they become reclaimable once stale");
        }
    }

    /// Best effort: drops the claims of `user_id` but `kept` (all of them
    /// without `kept`).
    pub(super) async fn release_all_but(
        &self,
        db: &Database,
        user_id: &str,
        kept: Option<&[UniqueKey]>,
    ) {
        let mut filter = doc! { "userId": user_id };
        if let Some(kept) = kept {
            let ids: Vec<Bson> = kept.iter().map(|k| Bson::from(k.id.as_str())).collect();
            filter.insert("_id", doc! { "$nin": ids });
        }
        if let Err(e) = coll(db, USER_KEYS).delete_many(filter).await {
            tracing::warn!(error = %e, "could not release old username/email claims");
        }
    }

    /// The fault for a failed insert or update of a user document. When the
    /// server does not name the index of a duplicate key (the emulator does
    /// not), looks up which field collides; other errors are left to `run`.
    pub(super) async fn user_write_fault(
        &self,
        db: &Database,
        e: mongodb::error::Error,
        id: &str,
        username: Option<&str>,
        emails: &[Email],
    ) -> Fault {
        if classify(&e) != Failure::Duplicate(None) {
            return e.into();
        }
        let mut clauses = Vec::new();
        if let Some(name) = username {
            clauses.push(doc! { user::USERNAME: name });
        }
        let addresses: Vec<&str> = emails.iter().map(|e| e.address.as_str()).collect();
        if !addresses.is_empty() {
            clauses.push(doc! { user::EMAIL_ADDRESS: { "$in": addresses } });
        }
        if clauses.is_empty() {
            return StoreError::Duplicate(UniqueField::Other).into();
        }
        let other = coll(db, USERS)
            .find_one(doc! { user::ID: { "$ne": id }, "$or": clauses })
            .projection(doc! { user::USERNAME: 1 })
            .await;
        let field = match other {
            Ok(Some(d)) if username.is_some() && d.get_str(user::USERNAME).ok() == username => {
                UniqueField::Username
            }
            Ok(Some(_)) => UniqueField::Email,
            _ => UniqueField::Other,
        };
        tracing::debug!(?field, "duplicate key");
        StoreError::Duplicate(field).into()
    }
}

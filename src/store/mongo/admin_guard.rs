//! The last-admin guard without multi-document transactions.
//!
//! "Is another active admin left?" reads other documents than the one a
//! deactivation, demotion or delete writes, and MongoDB is atomic per
//! document only (a standalone server and the emulator have no
//! transactions). So every guarded write of every tokend instance on the
//! database runs holding one lease, the document `{_id: "last-admin"}` of
//! `tokend_admin_guard`:
//!
//! 1. take it with one conditional upsert: `{_id, until: {$lt: now}}` →
//!    `$set {holder, until: now + lease}`. While another holder's lease runs
//!    the filter does not match and the upsert collides on `_id` (duplicate
//!    key): wait a little and try again, within the call's timeout;
//! 2. read the target and look for another active admin; refuse or write;
//! 3. give the lease back (`until` in the past), only if still the holder.
//!
//! Guarded writes are therefore serialised, and an unguarded write never
//! removes an active admin (the core asks for the guard whenever a write
//! may), so the check cannot go stale between 2's read and its write: two
//! admins deactivating each other cannot both succeed.
//!
//! What remains (documented in `docs/mongodb.md`):
//! * the lease lasts the store timeout. A holder that outlives it (a call
//!   cut off by the timeout whose command the server still runs, a process
//!   paused for longer) overlaps the next holder, and the race is back for
//!   that one pair of writes. A holder that dies leaves the lease taken until
//!   it runs out: guarded writes answer 503 meanwhile;
//! * `until` is the clock of the instance that took the lease, so instances
//!   sharing a database need clocks within a fraction of the store timeout;
//! * writers that are not tokend (Rocket.Chat itself, `mongosh`) ignore the
//!   lease.

use super::*;
use mongodb::bson::DateTime as BsonDate;

/// `_id` of the lease document.
const LEASE_ID: &str = "last-admin";

/// How long to wait before trying to take a held lease again.
const RETRY: Duration = Duration::from_millis(5);

impl MongoStore {
    /// Runs `body` holding the admin lease (taken within the call's timeout,
    /// given back whatever `body` answers).
    pub(super) async fn holding_admin_lease<T>(
        &self,
        db: &Database,
        body: impl Future<Output = Outcome<T>>,
    ) -> Outcome<T> {
        let holder = crate::core::ids::new_user_id();
        self.take_admin_lease(db, &holder).await?;
        let result = body.await;
        let given_back = coll(db, ADMIN_GUARD)
            .update_one(
                doc! { "_id": LEASE_ID, "holder": &holder },
                doc! { "$set": { "until": BsonDate::from_millis(0) } },
            )
            .await;
        if let Err(e) = given_back {
            // The write is done either way; the lease runs out by itself.
            tracing::warn!(error = %e, "cannot give back the admin lease");
        }
        result
    }

    async fn take_admin_lease(&self, db: &Database, holder: &str) -> Outcome<()> {
        // The lease is infrastructure, not data: it measures real time
        // between instances, not the core's clock.
        let lease = chrono::Duration::from_std(self.timeout).unwrap_or(chrono::Duration::MAX);
        loop {
            let now = chrono::Utc::now();
            let taken = coll(db, ADMIN_GUARD)
                .update_one(
                    doc! { "_id": LEASE_ID, "until": { "$lt": date(now) } },
                    doc! { "$set": {
                        "holder": holder,
                        "until": date(now.checked_add_signed(lease).unwrap_or(now)),
                    } },
                )
                .upsert(true)
                .await;
            match taken {
                Ok(_) => return Ok(()),
                // Held by someone else: the upsert collided on `_id`.
                Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => {
                    tokio::time::sleep(RETRY).await
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The user as the guard sees it (projected, no tokens).
    pub(super) async fn admin_view(&self, db: &Database, id: &str) -> Outcome<Option<User>> {
        let found = coll(db, USERS)
            .find_one(doc! { user::ID: id })
            .projection(user_projection())
            .await?;
        Ok(found.as_ref().and_then(user_from))
    }

    /// Whether an active user holding the `admin` role exists other than `except_id`.
    pub(super) async fn other_active_admin_exists(
        &self,
        db: &Database,
        except_id: &str,
    ) -> Outcome<bool> {
        let filter = doc! {
            user::ID: { "$ne": except_id },
            user::ACTIVE: true,
            user::ROLES: crate::core::permissions::ADMIN_ROLE,
        };
        let found = coll(db, USERS)
            .find_one(filter)
            .projection(doc! { user::ID: 1 })
            .await?;
        Ok(found.is_some())
    }
}

//! The MongoDB store, in Rocket.Chat's own document layout, so tokend can
//! work on a Rocket.Chat database and mint tokens Rocket.Chat accepts.
//!
//! * `users`: Rocket.Chat's user documents; login tokens and personal access
//!   tokens in `services.resume.loginTokens`, the password in
//!   `services.password.bcrypt`, plus tokend's user-level `permissions`.
//!   Every write is a targeted update operator: fields tokend does not know
//!   (Rocket.Chat's `settings`, `__rooms`, 2FA data, ...) always survive.
//! * `rocketchat_permissions`, `rocketchat_roles`: as Rocket.Chat has them.
//! * `tokend_api_tokens`, `tokend_sessions`: SAYMON data Rocket.Chat has no
//!   place for (hashes only; sessions expire through a TTL index as well as
//!   by the expiry check of every read).
//! * `tokend_user_keys`: claims on lowercase usernames and emails, which make
//!   uniqueness ignoring case hold under concurrent writers (see [`MongoStore::claim`]).
//!
//! Without transactions (a standalone mongod has none, nor has the emulator)
//! every method that must be atomic is one single-document write.
//!
//! Faults: the client is created without any I/O, so tokend starts with
//! MongoDB down; every call is bounded by `STORE_TIMEOUT_SECONDS` (server
//! selection and connect timeouts no longer than it, and a hard timeout around
//! the whole call); network, timeout and server-selection failures become
//! [`StoreError::Unavailable`] (503), logged once here with their context.

mod codec;
mod errors;

use self::codec::*;
use self::errors::{classify, Failure};
use super::*;
use mongodb::bson::{doc, Bson, DateTime as BsonDate, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, IndexOptions, ReturnDocument};
use mongodb::{Client, Collection, Cursor, Database, IndexModel};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};
use tracing::Instrument;

/// Database used when `MONGO_URL` names none.
pub const DEFAULT_DATABASE: &str = "tokend";

/// A claim on a username or email whose user never appeared (or no longer
/// holds it) is considered abandoned after this long and may be taken over.
/// Younger claims belong to a create or rename still in flight.
fn stale_claim_after() -> chrono::Duration {
    chrono::Duration::seconds(60)
}

/// [`Store`] on MongoDB.
pub struct MongoStore {
    /// The connection string; kept to build the client on first use when it
    /// could not be built at start (e.g. `mongodb+srv://` with DNS down).
    /// Never logged: it may hold credentials.
    uri: String,
    timeout: Duration,
    db: OnceCell<Database>,
    /// Whether the indexes are known to exist. Cleared by every
    /// unavailability, so a server that comes back (possibly restored or
    /// replaced) gets them ensured again, idempotently.
    indexed: AtomicBool,
    indexing: Mutex<()>,
}

/// Outcome of trying to take over a claim someone else holds.
enum Takeover {
    AlreadyMine,
    TakenOver,
    Held,
}

/// Adds the operation name to driver errors and maps them to store errors.
trait Context<T> {
    fn ctx(self, store: &MongoStore, op: &'static str) -> StoreResult<T>;
}

impl<T> Context<T> for mongodb::error::Result<T> {
    fn ctx(self, store: &MongoStore, op: &'static str) -> StoreResult<T> {
        self.map_err(|e| store.fail(op, e))
    }
}

fn coll(db: &Database, name: &str) -> Collection<Document> {
    db.collection::<Document>(name)
}

/// The filter finding the user `key` names; `None` when nothing can match.
fn key_filter(key: &UserKey) -> Option<Document> {
    match key {
        UserKey::Id(id) => Some(doc! { "_id": id }),
        UserKey::Username(name) => exact_ignoring_case(name).map(|re| doc! { "username": re }),
        UserKey::Email(email) => exact_ignoring_case(email).map(|re| doc! { "emails.address": re }),
        UserKey::Login(login) => exact_ignoring_case(login).map(|re| {
            doc! { "$or": [ { "username": re.clone() }, { "emails.address": re } ] }
        }),
    }
}

/// The update document for a patch: `$set`/`$unset` of exactly the fields it names.
fn patch_update(patch: &UserPatch, now: Timestamp) -> Document {
    let mut set = doc! { "_updatedAt": date(now) };
    let mut unset = Document::new();
    if let Some(v) = &patch.username {
        set.insert("username", v);
    }
    if let Some(v) = &patch.name {
        set.insert("name", v);
    }
    match &patch.emails {
        Some(v) if v.is_empty() => {
            unset.insert("emails", "");
        }
        Some(v) => {
            set.insert("emails", emails_bson(v));
        }
        None => {}
    }
    if let Some(v) = &patch.roles {
        set.insert("roles", v.clone());
    }
    match &patch.permissions {
        Some(v) if v.is_empty() => {
            unset.insert("permissions", "");
        }
        Some(v) => {
            set.insert("permissions", v.clone());
        }
        None => {}
    }
    if let Some(v) = patch.active {
        set.insert("active", v);
    }
    match patch.require_password_change {
        Some(true) => {
            set.insert("requirePasswordChange", true);
        }
        // As Rocket.Chat's `unsetRequirePasswordChange`.
        Some(false) => {
            unset.insert("requirePasswordChange", "");
            unset.insert("requirePasswordChangeReason", "");
        }
        None => {}
    }
    if let Some(v) = &patch.password_bcrypt {
        set.insert("services.password.bcrypt", v);
    }
    if patch.clear_login_tokens {
        set.insert(LOGIN_TOKENS, Bson::Array(Vec::new()));
    }
    let mut update = doc! { "$set": set };
    if !unset.is_empty() {
        update.insert("$unset", unset);
    }
    update
}

fn index(keys: Document, options: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

/// Every index tokend needs, per collection. The `users` ones are exactly
/// Meteor's (`accounts-base`: unique + sparse, default names), so creating
/// them on a Rocket.Chat database is a no-op.
fn index_plan() -> Vec<(&'static str, Vec<IndexModel>)> {
    let unique_sparse = || IndexOptions::builder().unique(true).sparse(true).build();
    vec![
        (
            USERS,
            vec![
                index(doc! { "username": 1 }, unique_sparse()),
                index(doc! { "emails.address": 1 }, unique_sparse()),
                index(
                    doc! { LOGIN_TOKENS.to_string() + ".hashedToken": 1 },
                    unique_sparse(),
                ),
            ],
        ),
        (
            USER_KEYS,
            vec![index(doc! { "userId": 1 }, IndexOptions::default())],
        ),
        (
            API_TOKENS,
            vec![index(
                doc! { "hashedToken": 1 },
                IndexOptions::builder().unique(true).build(),
            )],
        ),
        (
            SESSIONS,
            vec![
                index(
                    doc! { "expiresAt": 1 },
                    IndexOptions::builder().expire_after(Duration::ZERO).build(),
                ),
                index(doc! { "userId": 1 }, IndexOptions::default()),
            ],
        ),
    ]
}

/// A claim of `tokend_user_keys`: the key (its `_id`) belongs to `user_id`.
fn claim_doc(key_id: &str, user_id: &str, now: Timestamp) -> Document {
    doc! { "_id": key_id, "userId": user_id, "createdAt": date(now) }
}

/// Bookkeeping date for `_updatedAt` where the trait passes no time (seeded
/// permissions). Rocket.Chat's clients sync on it; no rule of tokend reads it.
fn bookkeeping_now() -> Bson {
    Bson::DateTime(BsonDate::now())
}

async fn collect(
    store: &MongoStore,
    op: &'static str,
    mut cursor: Cursor<Document>,
) -> StoreResult<Vec<Document>> {
    let mut out = Vec::new();
    while cursor.advance().await.ctx(store, op)? {
        out.push(cursor.deserialize_current().ctx(store, op)?);
    }
    Ok(out)
}

impl MongoStore {
    /// A store on the database named by `uri` (default [`DEFAULT_DATABASE`]).
    /// Does no network I/O for `mongodb://` URIs, so it succeeds with MongoDB
    /// down; every later call waits at most `timeout`. Fails only on a URI
    /// the driver cannot parse.
    pub async fn connect(uri: &str, timeout: Duration) -> StoreResult<Self> {
        let store = Self {
            uri: uri.to_string(),
            timeout,
            db: OnceCell::new(),
            indexed: AtomicBool::new(false),
            indexing: Mutex::new(()),
        };
        match tokio::time::timeout(timeout, store.open_client()).await {
            Ok(Ok(db)) => {
                tracing::info!(database = db.name(), "using MongoDB");
                let _ = store.db.set(db);
            }
            Ok(Err(e)) if matches!(*e.kind, ErrorKind::InvalidArgument { .. }) => {
                return Err(StoreError::Internal(format!(
                    "MONGO_URL is not a usable MongoDB URI: {e}"
                )));
            }
            // `mongodb+srv://` resolves DNS while parsing: retry on first use.
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot set up the MongoDB client yet; will retry on use")
            }
            Err(_) => tracing::warn!("setting up the MongoDB client timed out; will retry on use"),
        }
        Ok(store)
    }

    /// Parses the URI and builds the client (lazy: connects in the background).
    async fn open_client(&self) -> mongodb::error::Result<Database> {
        let mut options = ClientOptions::parse(&self.uri).await?;
        options.app_name.get_or_insert_with(|| "tokend".into());
        let bound = |t: Option<Duration>| Some(t.map_or(self.timeout, |t| t.min(self.timeout)));
        options.server_selection_timeout = bound(options.server_selection_timeout);
        options.connect_timeout = bound(options.connect_timeout);
        let name = options
            .default_database
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let client = Client::with_options(options)?;
        Ok(client.database(&name))
    }

    /// Creates the indexes now (idempotent); start-up and tests call it, every
    /// other call makes sure of it on its own.
    pub async fn ensure_indexes(&self) -> StoreResult<()> {
        self.call("ensure_indexes", async {
            self.database().await.map(|_| ())
        })
        .await
    }

    /// The database, with the client built and the indexes ensured.
    async fn database(&self) -> StoreResult<Database> {
        let db = self
            .db
            .get_or_try_init(|| async { self.open_client().await.ctx(self, "connect") })
            .await?;
        if !self.indexed.load(Ordering::Acquire) {
            self.create_indexes(db).await?;
        }
        Ok(db.clone())
    }

    async fn create_indexes(&self, db: &Database) -> StoreResult<()> {
        let _guard = self.indexing.lock().await;
        if self.indexed.load(Ordering::Acquire) {
            return Ok(());
        }
        for (name, models) in index_plan() {
            if let Err(e) = coll(db, name).create_indexes(models).await {
                if classify(&e) == Failure::Unavailable {
                    return Err(self.fail("create indexes", e));
                }
                // E.g. an existing database with conflicting index options or
                // duplicates: serve anyway, loudly.
                tracing::error!(collection = name, error = %e, "cannot create indexes; continuing without them");
            }
        }
        self.indexed.store(true, Ordering::Release);
        Ok(())
    }

    /// Maps a driver error to a store error, logging it once with its context.
    fn fail(&self, op: &'static str, e: mongodb::error::Error) -> StoreError {
        match classify(&e) {
            Failure::Unavailable => {
                self.indexed.store(false, Ordering::Release);
                tracing::warn!(op, error = %e, "MongoDB unavailable");
                StoreError::Unavailable(format!("MongoDB unavailable ({op})"))
            }
            Failure::Duplicate(field) => {
                tracing::debug!(op, ?field, "duplicate key");
                StoreError::Duplicate(field.unwrap_or(UniqueField::Other))
            }
            Failure::Other => {
                tracing::error!(op, error = %e, "MongoDB command failed");
                StoreError::Internal(format!("MongoDB command failed ({op})"))
            }
        }
    }

    /// Runs one store call within the configured bound, in a span naming
    /// the call, so its log lines say which store call failed.
    async fn call<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let fut = fut.instrument(tracing::info_span!("mongo", call = op));
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(result) => result,
            Err(_) => {
                self.indexed.store(false, Ordering::Release);
                tracing::warn!(
                    op,
                    timeout_ms = self.timeout.as_millis() as u64,
                    "MongoDB call timed out"
                );
                Err(StoreError::Unavailable(format!("MongoDB timed out ({op})")))
            }
        }
    }

    /// Fails with `Duplicate` if a user other than `except` holds one of
    /// `keys` ignoring case. Sees users Rocket.Chat created, which have no claims.
    async fn check_unheld(
        &self,
        db: &Database,
        keys: &[UniqueKey],
        except: Option<&str>,
    ) -> StoreResult<()> {
        let Some(mut filter) = holders_filter(keys) else {
            return Ok(());
        };
        if let Some(id) = except {
            filter.insert("_id", doc! { "$ne": id });
        }
        let holder = coll(db, USERS)
            .find_one(filter)
            .projection(doc! { "username": 1, "emails": 1 })
            .await
            .ctx(self, "check unique")?;
        match holder {
            Some(d) => Err(StoreError::Duplicate(
                held_key(&d, keys).map_or(UniqueField::Other, |k| k.field),
            )),
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
    async fn claim(
        &self,
        db: &Database,
        user_id: &str,
        keys: &[UniqueKey],
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
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
                _ => return Err(self.fail("claim", e)),
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
                    return Err(StoreError::Duplicate(key.field));
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
    ) -> StoreResult<Takeover> {
        let claims = coll(db, USER_KEYS);
        let Some(claim) = claims
            .find_one(doc! { "_id": &key.id })
            .await
            .ctx(self, "claim")?
        else {
            // Released meanwhile: one more try.
            return match claims.insert_one(claim_doc(&key.id, me, now)).await {
                Ok(_) => Ok(Takeover::TakenOver),
                Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => Ok(Takeover::Held),
                Err(e) => Err(self.fail("claim", e)),
            };
        };
        let holder = claim.get_str("userId").unwrap_or_default().to_string();
        if holder == me {
            return Ok(Takeover::AlreadyMine);
        }
        if let Some(re) = exact_ignoring_case(&key.value) {
            let held = coll(db, USERS)
                .find_one(doc! { "_id": &holder, key.path(): re })
                .projection(doc! { "_id": 1 })
                .await
                .ctx(self, "claim")?
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
            .await
            .ctx(self, "claim")?
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
    async fn release(&self, db: &Database, user_id: &str, ids: &[String]) {
        if ids.is_empty() {
            return;
        }
        let filter = doc! { "_id": { "$in": ids }, "userId": user_id };
        if let Err(e) = coll(db, USER_KEYS).delete_many(filter).await {
            tracing::warn!(error = %e, "could not release username/email claims; they become reclaimable once stale");
        }
    }

    /// The store error for a failed insert or update of a user document.
    /// When the server does not name the index of a duplicate key (the
    /// emulator does not), looks up which field collides.
    async fn user_write_error(
        &self,
        db: &Database,
        op: &'static str,
        e: mongodb::error::Error,
        id: &str,
        username: Option<&str>,
        emails: &[Email],
    ) -> StoreError {
        if classify(&e) != Failure::Duplicate(None) {
            return self.fail(op, e);
        }
        let mut clauses = Vec::new();
        if let Some(name) = username {
            clauses.push(doc! { "username": name });
        }
        let addresses: Vec<&str> = emails.iter().map(|e| e.address.as_str()).collect();
        if !addresses.is_empty() {
            clauses.push(doc! { "emails.address": { "$in": addresses } });
        }
        if clauses.is_empty() {
            return StoreError::Duplicate(UniqueField::Other);
        }
        let other = coll(db, USERS)
            .find_one(doc! { "_id": { "$ne": id }, "$or": clauses })
            .projection(doc! { "username": 1 })
            .await;
        let field = match other {
            Ok(Some(d)) if username.is_some() && d.get_str("username").ok() == username => {
                UniqueField::Username
            }
            Ok(Some(_)) => UniqueField::Email,
            _ => UniqueField::Other,
        };
        tracing::debug!(op, ?field, "duplicate key");
        StoreError::Duplicate(field)
    }

    /// Inserts `d` unless a document with its `_id` exists (which is left as it is).
    async fn insert_if_absent(
        &self,
        db: &Database,
        collection: &str,
        op: &'static str,
        d: Document,
    ) -> StoreResult<()> {
        match coll(db, collection).insert_one(d).await {
            Err(e) if !matches!(classify(&e), Failure::Duplicate(_)) => Err(self.fail(op, e)),
            _ => Ok(()),
        }
    }

    async fn find_user_doc(&self, db: &Database, filter: Document) -> StoreResult<Option<User>> {
        Ok(coll(db, USERS)
            .find_one(filter)
            .projection(user_projection())
            .await
            .ctx(self, "find user")?
            .as_ref()
            .and_then(user_from))
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.call("ping", async {
            let db = self.database().await?;
            db.run_command(doc! { "ping": 1 }).await.ctx(self, "ping")?;
            Ok(())
        })
        .await
    }

    async fn ensure_role(&self, role: &Role) -> StoreResult<()> {
        self.call("ensure_role", async {
            let db = self.database().await?;
            // An operator's edits to an existing role stay.
            self.insert_if_absent(&db, ROLES, "ensure_role", role_doc(role))
                .await
        })
        .await
    }

    async fn ensure_permission(&self, permission: &Permission) -> StoreResult<()> {
        self.call("ensure_permission", async {
            let db = self.database().await?;
            let d = doc! {
                "_id": &permission.id,
                "roles": permission.roles.clone(),
                "_updatedAt": bookkeeping_now(),
            };
            self.insert_if_absent(&db, PERMISSIONS, "ensure_permission", d)
                .await
        })
        .await
    }

    async fn set_permission_roles(&self, id: &str, roles: &[String]) -> StoreResult<()> {
        self.call("set_permission_roles", async {
            let db = self.database().await?;
            coll(&db, PERMISSIONS)
                .update_one(
                    doc! { "_id": id },
                    doc! { "$set": { "roles": roles.to_vec(), "_updatedAt": bookkeeping_now() } },
                )
                .upsert(true)
                .await
                .ctx(self, "set_permission_roles")?;
            Ok(())
        })
        .await
    }

    async fn permissions(&self) -> StoreResult<Vec<Permission>> {
        self.call("permissions", async {
            let db = self.database().await?;
            let cursor = coll(&db, PERMISSIONS)
                .find(doc! {})
                .projection(doc! { "roles": 1 })
                .await
                .ctx(self, "permissions")?;
            let docs = collect(self, "permissions", cursor).await?;
            Ok(docs.iter().filter_map(permission_from).collect())
        })
        .await
    }

    async fn roles(&self) -> StoreResult<Vec<Role>> {
        self.call("roles", async {
            let db = self.database().await?;
            let cursor = coll(&db, ROLES).find(doc! {}).await.ctx(self, "roles")?;
            let docs = collect(self, "roles", cursor).await?;
            Ok(docs.iter().filter_map(role_from).collect())
        })
        .await
    }

    async fn other_active_admin_exists(&self, except_id: &str) -> StoreResult<bool> {
        self.call("other_active_admin_exists", async {
            let db = self.database().await?;
            let found = coll(&db, USERS)
                .find_one(doc! { "_id": { "$ne": except_id }, "active": true, "roles": "admin" })
                .projection(doc! { "_id": 1 })
                .await
                .ctx(self, "other_active_admin_exists")?;
            Ok(found.is_some())
        })
        .await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.call("count_users", async {
            let db = self.database().await?;
            coll(&db, USERS)
                .count_documents(doc! {})
                .await
                .ctx(self, "count_users")
        })
        .await
    }

    /// Three commands: the check against existing users (Rocket.Chat's
    /// included), the claims, the insert.
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        self.call("insert_user", async {
            let db = self.database().await?;
            let keys = unique_keys(user.username.as_deref(), &user.emails);
            self.check_unheld(&db, &keys, None).await?;
            let claimed = self.claim(&db, &user.id, &keys, user.created_at).await?;
            if let Err(e) = coll(&db, USERS).insert_one(user_doc(user)).await {
                let err = self
                    .user_write_error(
                        &db,
                        "insert_user",
                        e,
                        &user.id,
                        user.username.as_deref(),
                        &user.emails,
                    )
                    .await;
                self.release(&db, &user.id, &claimed).await;
                return Err(err);
            }
            Ok(())
        })
        .await
    }

    async fn find_user(&self, key: &UserKey) -> StoreResult<Option<User>> {
        self.call("find_user", async {
            let Some(filter) = key_filter(key) else {
                return Ok(None);
            };
            let db = self.database().await?;
            let UserKey::Login(login) = key else {
                return self.find_user_doc(&db, filter).await;
            };
            // A login may name one user's username and another's email: prefer the username.
            let cursor = coll(&db, USERS)
                .find(filter)
                .projection(user_projection())
                .limit(2)
                .await
                .ctx(self, "find_user")?;
            let users: Vec<User> = collect(self, "find_user", cursor)
                .await?
                .iter()
                .filter_map(user_from)
                .collect();
            let by_name = UserKey::Username(login.clone());
            Ok(users
                .iter()
                .find(|u| by_name.matches(u))
                .or(users.first())
                .cloned())
        })
        .await
    }

    /// One command: Rocket.Chat's own lookup `{_id, 'services.resume.loginTokens.hashedToken'}`.
    async fn find_user_by_token_hash(
        &self,
        user_id: Option<&str>,
        hashed_token: &str,
    ) -> StoreResult<Option<User>> {
        self.call("find_user_by_token_hash", async {
            let db = self.database().await?;
            let mut filter = Document::new();
            if let Some(id) = user_id {
                filter.insert("_id", id);
            }
            filter.insert(format!("{LOGIN_TOKENS}.hashedToken"), hashed_token);
            self.find_user_doc(&db, filter).await
        })
        .await
    }

    async fn list_users(&self, offset: u64, count: u64) -> StoreResult<(Vec<User>, u64)> {
        self.call("list_users", async {
            let db = self.database().await?;
            let users = coll(&db, USERS);
            let total = users
                .count_documents(doc! {})
                .await
                .ctx(self, "list_users")?;
            if count == 0 {
                return Ok((Vec::new(), total));
            }
            let cursor = users
                .find(doc! {})
                .sort(doc! { "username": 1, "_id": 1 })
                .skip(offset)
                .limit(i64::try_from(count).unwrap_or(i64::MAX))
                .projection(user_projection())
                .await
                .ctx(self, "list_users")?;
            let page = collect(self, "list_users", cursor)
                .await?
                .iter()
                .filter_map(user_from)
                .collect();
            Ok((page, total))
        })
        .await
    }

    /// One `findAndModify`; a new username or email also costs a uniqueness
    /// check, its claims, and releasing the claims no longer used.
    async fn update_user(
        &self,
        id: &str,
        patch: &UserPatch,
        now: Timestamp,
    ) -> StoreResult<Option<User>> {
        self.call("update_user", async {
            let db = self.database().await?;
            let new_keys = unique_keys(
                patch.username.as_deref(),
                patch.emails.as_deref().unwrap_or_default(),
            );
            self.check_unheld(&db, &new_keys, Some(id)).await?;
            let claimed = self.claim(&db, id, &new_keys, now).await?;
            let updated = coll(&db, USERS)
                .find_one_and_update(doc! { "_id": id }, patch_update(patch, now))
                .projection(user_projection())
                .return_document(ReturnDocument::After)
                .await;
            let user = match updated {
                Ok(Some(d)) => user_from(&d),
                Ok(None) => {
                    self.release(&db, id, &claimed).await;
                    return Ok(None);
                }
                Err(e) => {
                    let err = self
                        .user_write_error(
                            &db,
                            "update_user",
                            e,
                            id,
                            patch.username.as_deref(),
                            patch.emails.as_deref().unwrap_or_default(),
                        )
                        .await;
                    self.release(&db, id, &claimed).await;
                    return Err(err);
                }
            };
            if let Some(u) = &user {
                if patch.username.is_some() || patch.emails.is_some() {
                    // Free the names this user no longer has.
                    let kept: Vec<String> = unique_keys(u.username.as_deref(), &u.emails)
                        .into_iter()
                        .map(|k| k.id)
                        .collect();
                    let filter = doc! { "userId": id, "_id": { "$nin": kept } };
                    if let Err(e) = coll(&db, USER_KEYS).delete_many(filter).await {
                        tracing::warn!(error = %e, "could not release old username/email claims");
                    }
                }
            }
            Ok(user)
        })
        .await
    }

    async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        self.call("delete_user", async {
            let db = self.database().await?;
            let deleted = coll(&db, USERS)
                .delete_one(doc! { "_id": id })
                .await
                .ctx(self, "delete_user")?
                .deleted_count
                > 0;
            if let Err(e) = coll(&db, USER_KEYS).delete_many(doc! { "userId": id }).await {
                tracing::warn!(error = %e, "could not release the deleted user's username/email claims");
            }
            Ok(deleted)
        })
        .await
    }

    /// One `findAndModify` (`$push`, returning the user's token list), plus a
    /// `$pull` only when the user is over the cap.
    ///
    /// Why the cap holds under concurrent pushes without transactions: the
    /// pull after a push removes only resume tokens strictly older than the
    /// `max`-th newest of the list that push saw. A token among the `max`
    /// newest of all tokens ever pushed has fewer than `max` newer tokens in
    /// any list, so no pull ever removes it; and the last push to land sees
    /// every token still present, so its pull (or the fact that none is
    /// needed) leaves exactly the `max` newest. PATs carry no `when` and are
    /// excluded by `type` as well, so they are never pulled.
    async fn push_login_token(
        &self,
        key: &UserKey,
        token: &ResumeToken,
        max: usize,
    ) -> StoreResult<Option<String>> {
        let pushed = self
            .call("push_login_token", async {
                let Some(filter) = key_filter(key) else {
                    return Ok(None);
                };
                let db = self.database().await?;
                let users = coll(&db, USERS);
                let entry = token_doc(&LoginToken::Resume(token.clone()));
                let after = users
                    .find_one_and_update(filter, doc! { "$push": { LOGIN_TOKENS: entry } })
                    .projection(doc! { LOGIN_TOKENS: 1 })
                    .return_document(ReturnDocument::After)
                    .await
                    .ctx(self, "push_login_token")?;
                let Some(after) = after else {
                    return Ok(None);
                };
                let (Some(id), Some(raw_id)) = (id_of(&after), after.get("_id")) else {
                    return Err(StoreError::Internal("user document without an _id".into()));
                };
                let cutoff = resume_cutoff(&login_tokens_of(&after), max);
                Ok(Some((id, raw_id.clone(), cutoff)))
            })
            .await?;
        let Some((id, raw_id, cutoff)) = pushed else {
            return Ok(None);
        };
        if let Some(cutoff) = cutoff {
            // The token is stored: a failed trim must not turn a successful
            // mint into an error (the client would never see a token that
            // exists). The next push trims again from the full list; the
            // failure itself is logged once by `ctx`.
            let _ = self
                .call("push_login_token (cap)", async {
                    let db = self.database().await?;
                    coll(&db, USERS)
                        .update_one(
                            doc! { "_id": raw_id },
                            doc! { "$pull": { LOGIN_TOKENS: {
                                "when": { "$lt": date(cutoff) },
                                "type": { "$ne": PAT_TYPE },
                            } } },
                        )
                        .await
                        .ctx(self, "push_login_token (cap)")
                })
                .await;
        }
        Ok(Some(id))
    }

    async fn remove_login_token(&self, user_id: &str, hashed_token: &str) -> StoreResult<bool> {
        self.call("remove_login_token", async {
            let db = self.database().await?;
            let result = coll(&db, USERS)
                .update_one(
                    doc! { "_id": user_id, format!("{LOGIN_TOKENS}.hashedToken"): hashed_token },
                    doc! { "$pull": { LOGIN_TOKENS: { "hashedToken": hashed_token } } },
                )
                .await
                .ctx(self, "remove_login_token")?;
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
    ) -> StoreResult<PatInsert> {
        self.call("add_personal_access_token", async {
            let db = self.database().await?;
            let users = coll(&db, USERS);
            let filter = doc! {
                "_id": user_id,
                LOGIN_TOKENS: { "$not": { "$elemMatch": { "type": PAT_TYPE, "name": &pat.name } } },
            };
            let result = users
                .update_one(filter, doc! { "$push": { LOGIN_TOKENS: pat_doc(pat) } })
                .await
                .ctx(self, "add_personal_access_token")?;
            if result.matched_count > 0 {
                return Ok(PatInsert::Inserted);
            }
            let exists = users
                .find_one(doc! { "_id": user_id })
                .projection(doc! { "_id": 1 })
                .await
                .ctx(self, "add_personal_access_token")?
                .is_some();
            Ok(if exists {
                PatInsert::NameTaken
            } else {
                PatInsert::NoSuchUser
            })
        })
        .await
    }

    async fn replace_personal_access_token(
        &self,
        user_id: &str,
        pat: &PersonalAccessToken,
    ) -> StoreResult<bool> {
        self.call("replace_personal_access_token", async {
            let db = self.database().await?;
            let result = coll(&db, USERS)
                .update_one(
                    doc! {
                        "_id": user_id,
                        LOGIN_TOKENS: { "$elemMatch": { "type": PAT_TYPE, "name": &pat.name } },
                    },
                    doc! { "$set": { format!("{LOGIN_TOKENS}.$"): pat_doc(pat) } },
                )
                .await
                .ctx(self, "replace_personal_access_token")?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    async fn remove_personal_access_token(&self, user_id: &str, name: &str) -> StoreResult<bool> {
        self.call("remove_personal_access_token", async {
            let db = self.database().await?;
            let pat = doc! { "type": PAT_TYPE, "name": name };
            let result = coll(&db, USERS)
                .update_one(
                    doc! { "_id": user_id, LOGIN_TOKENS: { "$elemMatch": pat.clone() } },
                    doc! { "$pull": { LOGIN_TOKENS: pat } },
                )
                .await
                .ctx(self, "remove_personal_access_token")?;
            Ok(result.matched_count > 0)
        })
        .await
    }

    async fn set_api_token(&self, token: &ApiToken) -> StoreResult<()> {
        self.call("set_api_token", async {
            let db = self.database().await?;
            let tokens = coll(&db, API_TOKENS);
            let upsert = || {
                tokens
                    .update_one(
                        doc! { "_id": &token.user_id },
                        doc! { "$set": api_token_fields(token) },
                    )
                    .upsert(true)
            };
            match upsert().await {
                Ok(_) => Ok(()),
                // Two upserts of one `_id` may race on the insert: the loser retries as an update.
                Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => {
                    upsert().await.ctx(self, "set_api_token")?;
                    Ok(())
                }
                Err(e) => Err(self.fail("set_api_token", e)),
            }
        })
        .await
    }

    async fn api_token_of(&self, user_id: &str) -> StoreResult<Option<ApiToken>> {
        self.call("api_token_of", async {
            let db = self.database().await?;
            Ok(coll(&db, API_TOKENS)
                .find_one(doc! { "_id": user_id })
                .await
                .ctx(self, "api_token_of")?
                .as_ref()
                .and_then(api_token_from))
        })
        .await
    }

    async fn api_tokens_of(&self, user_ids: &[String]) -> StoreResult<Vec<ApiToken>> {
        self.call("api_tokens_of", async {
            if user_ids.is_empty() {
                return Ok(Vec::new());
            }
            let db = self.database().await?;
            let cursor = coll(&db, API_TOKENS)
                .find(doc! { "_id": { "$in": user_ids } })
                .await
                .ctx(self, "api_tokens_of")?;
            let docs = collect(self, "api_tokens_of", cursor).await?;
            Ok(docs.iter().filter_map(api_token_from).collect())
        })
        .await
    }

    async fn find_api_token(&self, hashed_token: &str) -> StoreResult<Option<ApiToken>> {
        self.call("find_api_token", async {
            let db = self.database().await?;
            Ok(coll(&db, API_TOKENS)
                .find_one(doc! { "hashedToken": hashed_token })
                .await
                .ctx(self, "find_api_token")?
                .as_ref()
                .and_then(api_token_from))
        })
        .await
    }

    async fn delete_api_token(&self, user_id: &str) -> StoreResult<bool> {
        self.call("delete_api_token", async {
            let db = self.database().await?;
            let result = coll(&db, API_TOKENS)
                .delete_one(doc! { "_id": user_id })
                .await
                .ctx(self, "delete_api_token")?;
            Ok(result.deleted_count > 0)
        })
        .await
    }

    async fn insert_session(&self, session: &Session) -> StoreResult<()> {
        self.call("insert_session", async {
            let db = self.database().await?;
            coll(&db, SESSIONS)
                .insert_one(session_doc(session))
                .await
                .ctx(self, "insert_session")?;
            Ok(())
        })
        .await
    }

    /// One `findAndModify`, filtered on both expiries.
    async fn touch_session(
        &self,
        hashed_id: &str,
        now: Timestamp,
        new_expires_at: Timestamp,
    ) -> StoreResult<Option<Session>> {
        self.call("touch_session", async {
            let db = self.database().await?;
            let found = coll(&db, SESSIONS)
                .find_one_and_update(
                    doc! {
                        "_id": hashed_id,
                        "expiresAt": { "$gt": date(now) },
                        "absoluteExpiresAt": { "$gt": date(now) },
                    },
                    doc! { "$set": { "lastSeenAt": date(now), "expiresAt": date(new_expires_at) } },
                )
                .return_document(ReturnDocument::After)
                .await
                .ctx(self, "touch_session")?;
            Ok(found.as_ref().and_then(session_from))
        })
        .await
    }

    async fn delete_session(&self, hashed_id: &str) -> StoreResult<bool> {
        self.call("delete_session", async {
            let db = self.database().await?;
            let result = coll(&db, SESSIONS)
                .delete_one(doc! { "_id": hashed_id })
                .await
                .ctx(self, "delete_session")?;
            Ok(result.deleted_count > 0)
        })
        .await
    }

    async fn delete_sessions_of(&self, user_id: &str) -> StoreResult<u64> {
        self.call("delete_sessions_of", async {
            let db = self.database().await?;
            let result = coll(&db, SESSIONS)
                .delete_many(doc! { "userId": user_id })
                .await
                .ctx(self, "delete_sessions_of")?;
            Ok(result.deleted_count)
        })
        .await
    }
}

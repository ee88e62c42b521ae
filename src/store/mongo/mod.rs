//! The MongoDB store, in Rocket.Chat's own document layout, so tokend can
//! work on a Rocket.Chat database and mint tokens Rocket.Chat accepts.
//!
//! * `users`: Rocket.Chat's user documents; login tokens and personal access
//!   tokens in `services.resume.loginTokens`, the password in
//!   `services.password.bcrypt`, plus tokend's user-level `permissions`.
//!   Every write is a targeted update operator: fields tokend does not know
//!   (Rocket.Chat's `settings`, `__rooms`, 2FA data, ...) always survive.
//!   User reads project the fields tokend decodes and never `services.resume`;
//!   a token lookup reads only the one entry it matched (positional projection).
//! * `rocketchat_permissions`, `rocketchat_roles`: as Rocket.Chat has them.
//! * `tokend_api_tokens`, `tokend_sessions`: SAYMON data Rocket.Chat has no
//!   place for (hashes only; sessions expire through a TTL index as well as
//!   by the expiry check of every read).
//! * `tokend_user_keys`: claims on lowercase usernames and emails, which make
//!   uniqueness ignoring case hold under concurrent writers (see `claims`).
//! * `tokend_admin_guard`: one lease document serialising the writes that may
//!   remove the last active admin (see `admin_guard`).
//! * `rocketchat_server_events`: Rocket.Chat's failed-login and login events,
//!   read and written in its shape (see `login_attempts`).
//! * `tokend_audit`: the audit trail, one document per credential event,
//!   removed by a TTL index on its `expiresAt` (see `audit`).
//!
//! Without transactions (a standalone mongod has none, nor has the emulator)
//! every method that must be atomic is one single-document write.
//!
//! Files: this one holds the client, the indexes and [`MongoStore::run`], the
//! wrapper of every store call; `codec` the documents and every field name;
//! `errors` the classification of driver errors; `claims` uniqueness ignoring
//! case; `users`, `tokens`, `saymon`, `roles` one store trait each.
//!
//! Faults: the client is created without any I/O, so tokend starts with
//! MongoDB down; every call is bounded by `STORE_TIMEOUT_SECONDS` (server
//! selection and connect timeouts no longer than it, and a hard timeout around
//! the whole call); network, timeout and server-selection failures become
//! [`StoreError::Unavailable`] (503), logged once here with their context.

mod admin_guard;
mod audit;
mod claims;
mod codec;
mod errors;
mod login_attempts;
mod roles;
mod saymon;
mod tokens;
mod twofactor;
mod users;

use self::codec::*;
use self::errors::{classify, Failure};
use super::*;
use async_trait::async_trait;
use mongodb::bson::{doc, Document};
use mongodb::error::ErrorKind;
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions, ReturnDocument, WriteConcern};
#[cfg(test)]
use mongodb::options::{ReadPreference, SelectionCriteria};
use mongodb::{Client, Collection, Cursor, Database, IndexModel};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, OnceCell};
use tracing::Instrument;

/// Database used when `MONGO_URL` names none.
pub const DEFAULT_DATABASE: &str = "tokend";

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

/// How the body of a store call fails: with a driver error, which
/// [`MongoStore::run`] classifies (and logs) once for the whole call, or with
/// a store error the body decided on itself. `?` converts both.
enum Fault {
    Driver(mongodb::error::Error),
    Store(StoreError),
}

impl From<mongodb::error::Error> for Fault {
    fn from(e: mongodb::error::Error) -> Self {
        Fault::Driver(e)
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Store(e)
    }
}

/// The result of the body of a store call.
type Outcome<T> = Result<T, Fault>;

fn coll(db: &Database, name: &str) -> Collection<Document> {
    db.collection::<Document>(name)
}

/// Every document of a cursor that `decode` accepts.
async fn collect<T>(
    mut cursor: Cursor<Document>,
    decode: impl Fn(&Document) -> Option<T>,
) -> Outcome<Vec<T>> {
    let mut out = Vec::new();
    while cursor.advance().await? {
        out.extend(decode(&cursor.deserialize_current()?));
    }
    Ok(out)
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
                index(doc! { user::USERNAME: 1 }, unique_sparse()),
                index(doc! { user::EMAIL_ADDRESS: 1 }, unique_sparse()),
                index(doc! { user::TOKEN_HASH: 1 }, unique_sparse()),
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
        (
            SERVER_EVENTS,
            vec![
                // Rocket.Chat's own two (same keys, same default names).
                index(
                    doc! { event::TYPE: 1, event::IP: 1, event::TS: -1 },
                    IndexOptions::default(),
                ),
                index(
                    doc! { event::TYPE: 1, event::USERNAME: 1, event::TS: -1 },
                    IndexOptions::default(),
                ),
                index(
                    doc! { event::TYPE: 1, event::USER_ID: 1, event::TS: -1 },
                    IndexOptions::default(),
                ),
                index(
                    doc! { event::EXPIRE_AT: 1 },
                    IndexOptions::builder().expire_after(Duration::ZERO).build(),
                ),
            ],
        ),
        (
            AUDIT,
            vec![
                // Retention: each event carries its own end (`AUDIT_RETENTION_DAYS`).
                index(
                    doc! { "expiresAt": 1 },
                    IndexOptions::builder().expire_after(Duration::ZERO).build(),
                ),
                index(doc! { "at": -1 }, IndexOptions::default()),
                index(doc! { "actor": 1, "at": -1 }, IndexOptions::default()),
                index(doc! { "target": 1, "at": -1 }, IndexOptions::default()),
            ],
        ),
    ]
}

/// The driver's options for `uri`, as the user wrote them (`replicaSet`,
/// `readPreference`, `w`, `retryWrites`, `readConcernLevel`, ...), with
/// tokend's defaults where the URI says nothing: writes acknowledged by a
/// majority (`w=majority`, so an acknowledged write survives a failover;
/// `w=1` etc. in the URI win), server selection and connect timeouts no
/// longer than the store timeout, app name `tokend`.
pub async fn client_options(uri: &str, timeout: Duration) -> mongodb::error::Result<ClientOptions> {
    let mut options = ClientOptions::parse(uri).await?;
    options.app_name.get_or_insert_with(|| "tokend".into());
    let bound = |t: Option<Duration>| Some(t.map_or(timeout, |t| t.min(timeout)));
    options.server_selection_timeout = bound(options.server_selection_timeout);
    options.connect_timeout = bound(options.connect_timeout);
    let concern = options
        .write_concern
        .get_or_insert_with(WriteConcern::default);
    if concern.w.is_none() {
        concern.w = Some(Acknowledgment::Majority);
    }
    Ok(options)
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
        let options = client_options(&self.uri, self.timeout).await?;
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
        self.run("ensure_indexes", |_| async { Ok(()) }).await
    }

    /// The database, with the client built and the indexes ensured.
    async fn database(&self) -> StoreResult<Database> {
        let db = self
            .db
            .get_or_try_init(|| async {
                self.open_client()
                    .await
                    .map_err(|e| self.fail("connect", e))
            })
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

    /// Runs one store call: gets the database (client built, indexes
    /// ensured), runs `body` on it in a span naming the call, bounds the
    /// whole by the store timeout, and turns driver errors into store errors
    /// (logged once, with `op`). Every store method goes through here.
    async fn run<T, F, Fut>(&self, op: &'static str, body: F) -> StoreResult<T>
    where
        F: FnOnce(Database) -> Fut,
        Fut: Future<Output = Outcome<T>>,
    {
        let span = tracing::info_span!("mongo", call = op);
        let call = async {
            let db = self.database().await?;
            body(db).await.map_err(|fault| match fault {
                Fault::Driver(e) => self.fail(op, e),
                Fault::Store(e) => e,
            })
        };
        match tokio::time::timeout(self.timeout, call.instrument(span.clone())).await {
            Ok(result) => result,
            Err(_) => {
                self.indexed.store(false, Ordering::Release);
                span.in_scope(|| {
                    tracing::warn!(
                        op,
                        timeout_ms = self.timeout.as_millis() as u64,
                        "MongoDB call timed out"
                    )
                });
                Err(StoreError::Unavailable(format!("MongoDB timed out ({op})")))
            }
        }
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run("ping", |db| async move {
            db.run_command(doc! { "ping": 1 }).await?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn replica_set_settings_are_taken_as_written() {
        let o = client_options(
            "mongodb://a:27017,b:27017,c:27017/rocketchat?replicaSet=rs0\
             &readPreference=secondaryPreferred&retryWrites=true&w=majority&wtimeoutMS=2000",
            T,
        )
        .await
        .expect("parses");
        assert_eq!(o.repl_set_name.as_deref(), Some("rs0"));
        assert_eq!(o.hosts.len(), 3);
        assert_eq!(o.retry_writes, Some(true));
        assert!(matches!(
            o.selection_criteria,
            Some(SelectionCriteria::ReadPreference(
                ReadPreference::SecondaryPreferred { .. }
            ))
        ));
        let w = o.write_concern.expect("write concern");
        assert_eq!(w.w, Some(Acknowledgment::Majority));
        assert_eq!(w.w_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.default_database.as_deref(), Some("rocketchat"));
    }

    #[tokio::test]
    async fn writes_default_to_majority_unless_the_uri_says_otherwise() {
        let o = client_options("mongodb://127.0.0.1:27017/db", T)
            .await
            .expect("parses");
        assert_eq!(
            o.write_concern.and_then(|w| w.w),
            Some(Acknowledgment::Majority)
        );
        let o = client_options("mongodb://127.0.0.1:27017/db?w=1&journal=true", T)
            .await
            .expect("parses");
        let w = o.write_concern.expect("write concern");
        assert_eq!(w.w, Some(Acknowledgment::Nodes(1)));
        assert_eq!(w.journal, Some(true));
        // A longer selection timeout in the URI is cut to the store timeout.
        let o = client_options("mongodb://h/db?serverSelectionTimeoutMS=60000", T)
            .await
            .expect("parses");
        assert_eq!(o.server_selection_timeout, Some(T));
    }
}

//! Shared test harness: a tokend over either store, driven through the real
//! router with poem's `TestClient`, and a clock the tests move.
//!
//! `store_tests!` turns each test into two: `sqlite::name` and `mongo::name`.
//! The MongoDB variant needs `MONGO_URL` (`.ci/run` starts the emulator and
//! sets it); without it the variant is skipped, except under `CI=true`, where
//! a missing `MONGO_URL` fails the test instead of hiding the suite.
#![allow(dead_code)]

pub mod binary;
pub mod emulator;

use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokend::config::{Config, Secret};
use tokend::core::service::NewUser;
use tokend::core::{Core, ManualClock, User};
use tokend::store::{MongoStore, SqliteStore, Store};

/// Password of the seeded admin in every test app.
pub const ADMIN_PASS: &str = "admin-pass-123";
/// Rocket.Chat's 403 text for a missing route permission.
pub const NO_PERMISSION: &str =
    "User does not have the permissions required for this action [error-unauthorized]";

/// Password given to users made by [`TestApp::user`].
pub const USER_PASS: &str = "user-pass-123";

/// Which store a test runs on.
#[derive(Debug, Clone)]
pub enum StoreKind {
    /// SQLite in a temporary file of its own, removed with the store: the
    /// configuration tokend runs with (WAL, the writer thread, read connections).
    Sqlite,
    /// SQLite in this file (kept): for tests that reopen a store.
    SqliteAt(std::path::PathBuf),
    /// A MongoDB URI including a database name of this test's own.
    Mongo(String),
}

impl StoreKind {
    /// The same kind of store, empty: for MongoDB a new database.
    pub fn fresh(&self) -> StoreKind {
        match self {
            StoreKind::Sqlite | StoreKind::SqliteAt(_) => StoreKind::Sqlite,
            StoreKind::Mongo(url) => StoreKind::Mongo(fresh_database(url)),
        }
    }

    /// The MongoDB store with a fresh database, if `MONGO_URL` is set.
    pub fn mongo() -> Option<StoreKind> {
        match std::env::var("MONGO_URL").ok().filter(|v| !v.is_empty()) {
            Some(url) => Some(StoreKind::Mongo(fresh_database(&url))),
            None if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but MONGO_URL is unset: the MongoDB suite would be skipped")
            }
            None => None,
        }
    }

    /// Opens the store.
    pub async fn open(&self, config: &Config) -> Arc<dyn Store> {
        match self {
            StoreKind::Sqlite => Arc::new(SqliteStore::open_temporary().expect("SQLite store")),
            StoreKind::SqliteAt(path) => Arc::new(
                SqliteStore::open(path.to_str().expect("UTF-8 path")).expect("SQLite store"),
            ),
            StoreKind::Mongo(url) => open_mongo(url, config).await,
        }
    }
}

/// `url` with its database replaced by a unique one.
fn fresh_database(url: &str) -> String {
    let db = format!("tokend_test_{}", tokend::core::ids::new_user_id());
    emulator::with_database(url, &db)
}

/// The MongoDB store on `url` (a test's own database), indexes created.
pub async fn open_mongo(url: &str, config: &Config) -> Arc<dyn Store> {
    Arc::new(open_mongo_store(url, config).await)
}

/// Like [`open_mongo`], as the concrete type.
pub async fn open_mongo_store(url: &str, config: &Config) -> MongoStore {
    let store = MongoStore::connect(url, config.store_timeout)
        .await
        .expect("MongoDB store");
    store.ensure_indexes().await.expect("MongoDB indexes");
    store
}

/// Defines each test once per store: `sqlite::name` and `mongo::name`.
#[macro_export]
macro_rules! store_tests {
    ($( $(#[$meta:meta])* async fn $name:ident($kind:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $kind = $crate::common::StoreKind::Sqlite;
                    $body
                }
            )*
        }
        mod mongo {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($kind) = $crate::common::StoreKind::mongo() else {
                        eprintln!("MONGO_URL unset: skipping the MongoDB variant");
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

/// A configuration for tests: admin seeded, `createToken` on, no caches,
/// and (as Rocket.Chat's `TEST_MODE`) no two-factor password fallback for
/// users without a second factor; the 2FA tests switch it on.
pub fn test_config() -> Config {
    let mut config = Config {
        admin_username: Some("admin".into()),
        admin_pass: Some(Secret(ADMIN_PASS.into())),
        admin_email: Some("admin@example.com".into()),
        create_tokens_for_users: true,
        permissions_cache: Duration::ZERO,
        ..Config::default()
    };
    config.two_factor.password_fallback = false;
    config
}

/// Rocket.Chat credentials.
#[derive(Debug, Clone)]
pub struct Creds {
    pub user_id: String,
    pub token: String,
}

/// A running tokend (no socket: requests go straight through the router).
pub struct TestApp {
    pub core: Arc<Core>,
    pub clock: Arc<ManualClock>,
    pub store: Arc<dyn Store>,
    pub client: TestClient<BoxEndpoint<'static>>,
    pub admin: Creds,
}

impl TestApp {
    /// A seeded app with [`test_config`].
    pub async fn start(kind: &StoreKind) -> TestApp {
        Self::with_config(kind, test_config()).await
    }

    /// A seeded app with the given configuration; logs the admin in.
    pub async fn with_config(kind: &StoreKind, config: Config) -> TestApp {
        let clock = Arc::new(ManualClock::new());
        let store = kind.open(&config).await;
        let core = tokend::app::core_with(config, store.clone(), clock.clone());
        tokend::core::seed::seed(&core).await.expect("seeding");
        let client = TestClient::new(tokend::app::endpoint(core.clone()));
        let mut app = TestApp {
            core,
            clock,
            store,
            client,
            admin: Creds {
                user_id: String::new(),
                token: String::new(),
            },
        };
        app.admin = app.login("admin", ADMIN_PASS).await;
        app
    }

    /// Logs in through `POST /api/v1/login`; panics unless it succeeds.
    pub async fn login(&self, user: &str, password: &str) -> Creds {
        let resp = self
            .client
            .post("/api/v1/login")
            .body_json(&serde_json::json!({ "user": user, "password": password }))
            .send()
            .await;
        resp.assert_status_is_ok();
        let body = json(resp).await;
        Creds {
            user_id: body["data"]["userId"].as_str().unwrap().to_string(),
            token: body["data"]["authToken"].as_str().unwrap().to_string(),
        }
    }

    /// Creates a user straight through the core (roles `["user"]` unless given).
    pub async fn user(&self, username: &str, roles: &[&str]) -> User {
        let roles = if roles.is_empty() {
            vec!["user".to_string()]
        } else {
            roles.iter().map(|r| r.to_string()).collect()
        };
        let created = self
            .core
            .insert_user(NewUser {
                username: username.into(),
                name: Some(format!("{username} name")),
                email: Some(format!("{username}@example.com")),
                email_verified: true,
                password: Some(USER_PASS.into()),
                roles,
                active: true,
                kind: "user".into(),
                ..NewUser::default()
            })
            .await
            .expect("store");
        match created {
            tokend::core::service::CreateUser::Created(user) => *user,
            other => panic!("not created: {other:?}"),
        }
    }

    /// The stored login tokens and PATs of a user.
    pub async fn tokens_of(&self, user_id: &str) -> Vec<tokend::core::LoginToken> {
        self.store.tokens_of(user_id).await.expect("store")
    }

    /// The capability `P` of these credentials' user (which must hold it).
    pub async fn grant<P: tokend::core::Perm>(&self, creds: &Creds) -> tokend::core::Granted<P> {
        let caller = self.caller(creds).await;
        self.core
            .authorize(&caller)
            .await
            .expect("store")
            .expect("permission held")
    }

    /// The core's view of these credentials: the authenticated caller.
    pub async fn caller(&self, creds: &Creds) -> tokend::core::Caller {
        let credential = tokend::core::Credential::UserToken {
            user_id: creds.user_id.clone(),
            token: tokend::core::Plaintext::new(creds.token.as_str()),
        };
        match self.core.authenticate(credential).await.expect("store") {
            tokend::core::service::Authenticated::Caller(caller) => *caller,
            other => panic!("not authenticated: {other:?}"),
        }
    }

    /// The status `GET /api/v1/me` answers for these credentials.
    pub async fn me_status(&self, creds: &Creds) -> u16 {
        self.rc_get("/api/v1/me", creds).await.0.status().as_u16()
    }

    /// `GET` with Rocket.Chat credentials.
    pub async fn rc_get(&self, path: &str, creds: &Creds) -> TestResponse {
        self.client
            .get(path)
            .header("X-User-Id", &creds.user_id)
            .header("X-Auth-Token", &creds.token)
            .send()
            .await
    }

    /// `POST` a JSON body with Rocket.Chat credentials.
    pub async fn rc_post(&self, path: &str, creds: &Creds, body: Value) -> TestResponse {
        self.client
            .post(path)
            .header("X-User-Id", &creds.user_id)
            .header("X-Auth-Token", &creds.token)
            .body_json(&body)
            .send()
            .await
    }
}

/// The response body as JSON.
pub async fn json(resp: TestResponse) -> Value {
    let text = resp.0.into_body().into_string().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Status and JSON body of a response.
pub async fn status_json(resp: TestResponse) -> (u16, Value) {
    let status = resp.0.status().as_u16();
    (status, json(resp).await)
}

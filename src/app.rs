//! Assembling the service: store, core, routes, middleware, server.

use crate::config::Config;
use crate::core::seed::{self, AdminSeed};
use crate::core::{Clock, Core, SystemClock};
use crate::http::{limit_body, log_requests, shape_errors};
use crate::store::{sqlite, MongoStore, SqliteStore, Store, StoreError};
use crate::{ops, rocketchat, saymon};
use poem::endpoint::BoxEndpoint;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::middleware::{AddData, CatchPanic};
use poem::web::{Data, Json};
use poem::{get, handler, EndpointExt, IntoResponse, Response, Route};
use poem_openapi::OpenApiService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// All API groups of the service.
pub type Apis = (rocketchat::RcRoutes, saymon::SaymonApi, ops::OpsApi);

fn apis(core: Arc<Core>) -> Apis {
    (
        rocketchat::api(core.clone()),
        saymon::api(core.clone()),
        ops::OpsApi { core },
    )
}

/// The OpenAPI service over every route.
pub fn openapi_service(core: Arc<Core>) -> OpenApiService<Apis, ()> {
    let description = format!(
        "Issues, checks and revokes user authentication tokens, compatible with \
         Rocket.Chat (`/api/v1`; `/api/info` answers Rocket.Chat {}) and SAYMON \
         (`/node/api`). This document's version is tokend's own.",
        core.config().rc_compat_version
    );
    OpenApiService::new(
        apis(core),
        "tokend",
        crate::core::service::server::TOKEND_VERSION,
    )
    .description(description)
}

/// Sorts object keys recursively, so the document is byte-for-byte stable.
fn canonical(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(canonical).collect())
        }
        other => other,
    }
}

/// The canonical OpenAPI document of a service.
fn document(service: &OpenApiService<Apis, ()>) -> serde_json::Value {
    canonical(serde_json::from_str(&service.spec()).unwrap_or_default())
}

/// The canonical OpenAPI document, from a throwaway core.
fn spec_document() -> serde_json::Value {
    document(&openapi_service(spec_core()))
}

fn spec_core() -> Arc<Core> {
    Arc::new(Core::new(
        Arc::new(Config::default()),
        Arc::new(SqliteStore::open(sqlite::MEMORY).expect("an in-memory SQLite store")),
        Arc::new(SystemClock),
    ))
}

/// The OpenAPI document as pretty JSON (what `openapi/openapi.json` holds).
pub fn openapi_json() -> String {
    let mut out = serde_json::to_string_pretty(&spec_document()).unwrap_or_default();
    out.push('\n');
    out
}

/// The OpenAPI document as YAML (what `openapi/openapi.yaml` holds).
pub fn openapi_yaml() -> String {
    yaml_from_json(&spec_document())
}

/// Renders the canonical document as YAML with the serializer poem-openapi
/// itself uses, keeping the canonical key order.
fn yaml_from_json(v: &serde_json::Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

#[handler]
fn spec_json(Data(doc): Data<&Arc<SpecDocs>>) -> Response {
    Json(doc.json.clone()).into_response()
}

#[handler]
fn spec_yaml(Data(doc): Data<&Arc<SpecDocs>>) -> Response {
    doc.yaml
        .clone()
        .with_content_type("application/yaml; charset=utf-8")
        .into_response()
}

struct SpecDocs {
    json: serde_json::Value,
    yaml: String,
}

/// The whole HTTP service over a core: API routes, `/openapi.json`,
/// `/openapi.yaml`, Swagger UI at `/docs`, and the middleware stack.
pub fn endpoint(core: Arc<Core>) -> BoxEndpoint<'static> {
    let service = openapi_service(core.clone());
    let json = document(&service);
    let docs = Arc::new(SpecDocs {
        yaml: yaml_from_json(&json),
        json,
    });
    let ui = service.swagger_ui();
    Route::new()
        .at("/openapi.json", get(spec_json))
        .at("/openapi.yaml", get(spec_yaml))
        .nest("/docs", ui)
        .nest("/", service)
        .with(AddData::new(docs))
        .with(AddData::new(core))
        .around(limit_body)
        .with(CatchPanic::new())
        .around(shape_errors)
        .around(log_requests)
        .boxed()
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open the store: {0}")]
    Store(String),
}

/// Opens the store the configuration asks for.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.mongo_url {
        None => {
            let path = config.database_path.clone();
            if path == sqlite::MEMORY {
                tracing::warn!(
                    "DATABASE_PATH is :memory:: using a throwaway SQLite store. NOTHING IS \
                     PERSISTED; every user and token is lost when tokend stops"
                );
            } else {
                tracing::info!(%path, "MONGO_URL is not set: using the SQLite store");
            }
            // Opening migrates the schema and syncs the file: off the runtime.
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .map_err(|e| StartError::Store(e.to_string()))??;
            Ok(Arc::new(store))
        }
        // No I/O here: with MongoDB down tokend still starts, answers 503
        // within STORE_TIMEOUT_SECONDS and recovers when it comes back.
        Some(url) => Ok(Arc::new(
            MongoStore::connect(&url.0, config.store_timeout).await?,
        )),
    }
}

fn report_admin(outcome: &AdminSeed) {
    match outcome {
        AdminSeed::Unchanged => {}
        AdminSeed::Created { username } => tracing::info!(%username, "created the first admin"),
        AdminSeed::Promoted { username } => tracing::warn!(
            %username,
            "no active admin: made the oldest active user admin (as Rocket.Chat does)"
        ),
        AdminSeed::Generated { username, password } => {
            tracing::warn!(%username, "created the first admin with a generated password (printed once on stderr)");
            // Printed once, straight to stderr, never through the log pipeline.
            eprintln!(
                "\n  tokend: first admin created\n    username: {username}\n    password: {}\n  Set ADMIN_USERNAME / ADMIN_PASS to choose them.\n",
                password.expose()
            );
        }
    }
}

/// Seeds the store. If it is unreachable, keeps retrying in the background
/// so the service still starts and becomes ready when the store comes back.
pub async fn seed_or_retry(core: Arc<Core>) {
    match seed::seed(&core).await {
        Ok(outcome) => report_admin(&outcome),
        Err(e) if e.is_unavailable() => {
            tracing::warn!(error = %e, "store unreachable at start-up; seeding will be retried");
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    match seed::seed(&core).await {
                        Ok(outcome) => {
                            report_admin(&outcome);
                            tracing::info!("store reachable again; seeding done");
                            break;
                        }
                        Err(e) if e.is_unavailable() => continue,
                        Err(e) => {
                            tracing::error!(error = %e, "seeding failed");
                            break;
                        }
                    }
                }
            });
        }
        Err(e) => tracing::error!(error = %e, "seeding failed"),
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    core: Arc<Core>,
    acceptor: TcpAcceptor,
    addr: SocketAddr,
}

impl Application {
    /// Opens the store, seeds it and binds `BIND_IP:PORT` (port 0 picks a free one).
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let store = open_store(&config).await?;
        let core = Arc::new(Core::new(Arc::new(config), store, Arc::new(SystemClock)));
        seed_or_retry(core.clone()).await;
        let addr = SocketAddr::new(core.config().bind_ip, core.config().port);
        Self::bind(core, addr).await
    }

    /// Binds a server for an existing core.
    pub async fn bind(core: Arc<Core>, addr: SocketAddr) -> Result<Self, StartError> {
        let acceptor = TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().copied())
            .unwrap_or(addr);
        Ok(Self {
            core,
            acceptor,
            addr,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The core behind the server.
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish
    /// (up to 30 s).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "tokend listening");
        poem::Server::new_with_acceptor(self.acceptor)
            .run_with_graceful_shutdown(
                endpoint(self.core),
                shutdown,
                Some(Duration::from_secs(30)),
            )
            .await
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// A core for tests and tools: given store and clock.
pub fn core_with(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Core> {
    Arc::new(Core::new(Arc::new(config), store, clock))
}

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        StartError::Store(e.to_string())
    }
}

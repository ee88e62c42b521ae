//! Assembling the service: store, core, routes, middleware, server.

use crate::config::Config;
use crate::core::seed::{self, AdminSeed};
use crate::core::{Clock, Core, SystemClock};
use crate::http::{limit_body, log_requests, shape_errors};
use crate::store::{sqlite, MongoStore, SqliteStore, Store, StoreError};
use crate::{ops, rocketchat, saymon};
use poem::endpoint::BoxEndpoint;
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

/// Drops the `"type": "object"` poem-openapi puts on every `Union` schema:
/// beside `anyOf`/`oneOf` branches such as `{"type": "string"}` it makes the
/// schema admit no string at all (a fuzzer, or a validating client, then
/// finds a string body valid by one branch and invalid by the type). The
/// branches carry their own types.
fn untype_unions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let union = map.contains_key("anyOf") || map.contains_key("oneOf");
            if union && !map.contains_key("properties") && map.get("type") == Some(&"object".into())
            {
                map.remove("type");
            }
            map.values_mut().for_each(untype_unions);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(untype_unions),
        _ => {}
    }
}

/// The canonical OpenAPI document of a service.
fn document(service: &OpenApiService<Apis, ()>) -> serde_json::Value {
    let mut doc = serde_json::from_str(&service.spec()).unwrap_or_default();
    untype_unions(&mut doc);
    canonical(doc)
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
    let body_timeout = core.config().http.body_timeout;
    Route::new()
        .at("/openapi.json", get(spec_json))
        .at("/openapi.yaml", get(spec_yaml))
        .nest("/docs", ui)
        .nest("/", service)
        .with(AddData::new(docs))
        .with(AddData::new(core))
        .around(move |next, req| limit_body(next, req, body_timeout))
        .with(CatchPanic::new().with_handler(crate::http::OnPanic))
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
    listener: tokio::net::TcpListener,
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
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(Self {
            core,
            listener,
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

    /// Serves until `shutdown` resolves, then drains: `/readyz` answers 503
    /// while tokend keeps serving for `SHUTDOWN_DRAIN_SECONDS` (a load
    /// balancer's health check takes it out of rotation), then it stops
    /// accepting connections and lets in-flight requests finish (up to 30 s).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, "tokend listening");
        let core = self.core.clone();
        let drained = async move {
            shutdown.await;
            core.begin_drain();
            let drain = core.config().shutdown_drain;
            if !drain.is_zero() {
                tracing::info!(
                    seconds = drain.as_secs(),
                    "draining: /readyz answers 503, still serving"
                );
                tokio::time::sleep(drain).await;
            }
            tracing::info!("no longer accepting connections; finishing in-flight requests");
        };
        let http = self.core.config().http;
        let limits = crate::server::ConnectionLimits {
            header_timeout: http.header_timeout,
            idle_timeout: http.idle_timeout,
            http2_max_concurrent_streams: http.http2_max_concurrent_streams,
        };
        crate::server::serve(
            self.listener,
            endpoint(self.core),
            limits,
            drained,
            Duration::from_secs(30),
        )
        .await
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a SIGTERM that arrives just
/// after the "tokend listening" line (an orchestrator stopping a fresh pod)
/// is a graceful stop, not the default disposition's kill.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        [
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        ]
    };
    async move {
        #[cfg(unix)]
        {
            let [term, int] = signals.map(|s| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            });
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
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

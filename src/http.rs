//! HTTP plumbing shared by both dialects: tags, the dialect error contract,
//! client address, error shaping, request logging.

use crate::core::{Core, CoreError};
use crate::telemetry::RequestId;
use poem::endpoint::BoxEndpoint;
use poem::http::{Method, StatusCode};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{MetaApi, Registry};
use poem_openapi::{OpenApi, OperationId, Tags};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Groups of operations in the OpenAPI document.
#[derive(Tags)]
pub enum ApiTags {
    /// Rocket.Chat REST API (`/api/v1`): login tokens, personal access tokens, users.
    #[oai(rename = "Rocket.Chat")]
    RocketChat,
    /// SAYMON REST API (`/node/api`): API tokens, sessions, users.
    #[oai(rename = "SAYMON")]
    Saymon,
    /// Service health and information.
    Service,
}

/// The error contract every API dialect fulfils: its shapes for a store
/// that is unreachable, an internal error, and errors raised by the framework
/// before a handler ran (bad JSON, wrong content type, missing credentials).
/// [`DialectRoutes`] applies it to the dialect's own routes, so errors are
/// shaped by the route that raised them.
pub trait DialectError: Sized + IntoResponse {
    /// 503: the store is unreachable; retrying later may work.
    fn unavailable() -> Self;
    /// 500, without details (they go to the log).
    fn internal() -> Self;
    /// The body for an error the framework raised with this status.
    fn framework(status: StatusCode, message: &str) -> Response;

    /// A core failure in this dialect's shape: 503 when the store is
    /// unreachable, else a logged 500.
    fn from_core(err: CoreError) -> Self {
        if err.is_unavailable() {
            Self::unavailable()
        } else {
            tracing::error!(error = %err, "internal error");
            Self::internal()
        }
    }
}

/// Implements `From<CoreError>` for a [`DialectError`], so handlers use `?`.
#[macro_export]
macro_rules! dialect_error {
    ($ty:ty) => {
        impl From<$crate::core::CoreError> for $ty {
            fn from(err: $crate::core::CoreError) -> Self {
                <$ty as $crate::http::DialectError>::from_core(err)
            }
        }
    };
}

/// A dialect's routes: every endpoint of `T` answers framework errors in the
/// shape of `E`.
pub struct DialectRoutes<T, E>(pub T, pub PhantomData<E>);

impl<T, E> DialectRoutes<T, E> {
    /// Wraps a dialect's route groups.
    pub fn new(api: T) -> Self {
        Self(api, PhantomData)
    }
}

impl<T: OpenApi, E: DialectError + Send + Sync + 'static> OpenApi for DialectRoutes<T, E> {
    fn meta() -> Vec<MetaApi> {
        T::meta()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        let mut own = HashMap::new();
        self.0.add_routes(&mut own);
        for (path, methods) in own {
            let entry = route_table.entry(path).or_default();
            for (method, ep) in methods {
                entry.insert(method, ep.around(shape_with::<E>).boxed());
            }
        }
    }
}

/// Shapes an error a route raised without a dialect body, keeping the
/// operation id poem-openapi attached (for the request log).
async fn shape_with<E: DialectError>(
    next: Arc<BoxEndpoint<'static>>,
    req: Request,
) -> poem::Result<Response> {
    match next.call(req).await {
        Ok(resp) => Ok(resp),
        Err(err) if err.is_from_response() => Err(err),
        Err(err) => {
            let operation = err.data::<OperationId>().copied();
            let mut resp = E::framework(err.status(), &public_message(&err));
            if let Some(op) = operation {
                resp.set_data(op);
            }
            Ok(resp)
        }
    }
}

/// What a client may read of a framework error: never a server error's details.
fn public_message(err: &poem::Error) -> String {
    if err.status().is_server_error() {
        tracing::error!(error = %err, "request failed");
        "Internal server error".to_string()
    } else {
        err.to_string()
    }
}

/// The body for a request no route took (unknown path, wrong method): the
/// only place a path decides a shape, since no route owns such a request.
fn unrouted(path: &str, status: StatusCode, message: &str) -> Response {
    if path.starts_with(crate::saymon::PREFIX) {
        crate::saymon::SaymonError::framework(status, message)
    } else if path.starts_with(crate::rocketchat::PREFIX) {
        crate::rocketchat::RcError::framework(status, message)
    } else {
        poem::web::Json(serde_json::json!({ "error": message }))
            .with_status(status)
            .into_response()
    }
}

/// The core a request is served by, or the dialect's 500 (a wiring bug).
pub fn core_of<E: DialectError>(req: &Request) -> Result<Arc<Core>, E> {
    req.data::<Arc<Core>>().cloned().ok_or_else(|| {
        tracing::error!("core missing from request data");
        E::internal()
    })
}

/// The client's address, as the core decides it (the socket peer, or the
/// forwarded address with `TRUST_PROXY`).
pub fn client_ip(core: &Core, req: &Request) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    core.client_address(peer, forwarded)
}

/// Middleware: turns framework errors (not already shaped by a handler) into
/// the dialect's error body, and adds the security headers every response
/// carries (`no-store`, `no-referrer`, `nosniff`).
pub async fn shape_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let mut operation = None;
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) if err.is_from_response() => {
            operation = err.data::<OperationId>().copied();
            err.into_response()
        }
        Err(err) => {
            // Keep the operation id poem-openapi attached, for the request log.
            operation = err.data::<OperationId>().copied();
            unrouted(&path, err.status(), &public_message(&err))
        }
    };
    if let Some(op) = operation {
        resp.set_data(op);
    }
    let headers = resp.headers_mut();
    for (name, value) in [
        // Tokens are in these bodies: nothing may be cached.
        ("cache-control", "no-store"),
        ("pragma", "no-cache"),
        // SAYMON's `?api-token=` is in URLs: never send them on as a referrer.
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
    ] {
        headers.insert(name, poem::http::HeaderValue::from_static(value));
    }
    Ok(resp)
}

/// Largest request body accepted (bytes); every route takes small JSON.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Middleware: reads the body up to [`BODY_LIMIT`] (413 beyond), whether or
/// not the client sent `Content-Length`.
pub async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let body = req.take_body();
    if !body.is_empty() {
        let bytes = body.into_bytes_limit(BODY_LIMIT).await?;
        req.set_body(poem::Body::from_bytes(bytes));
    }
    next.call(req).await.map(IntoResponse::into_response)
}

/// Middleware: one log line per request with method, operation (the route's
/// OpenAPI operation id), path (never the query string, which may hold
/// `api-token`), status, latency and request id.
pub async fn log_requests<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = RequestId::from_request(&req);
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let result = next.call(req).await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    let status = resp.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    // The route as the OpenAPI document names it; absent for unknown paths.
    let operation = resp.data::<OperationId>().map_or("-", |op| op.0);
    tracing::info!(
        request_id = %request_id.0,
        method = %method,
        operation,
        path = %path,
        status,
        latency_ms = format_args!("{latency_ms:.2}"),
        "request"
    );
    if let Ok(v) = poem::http::HeaderValue::from_str(&request_id.0) {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

//! HTTP plumbing shared by both dialects: tags, client address, error shaping,
//! request logging.

use crate::telemetry::RequestId;
use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::{OperationId, Tags};
use std::net::IpAddr;
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

/// Which API dialect a path belongs to; decides the shape of error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    RocketChat,
    Saymon,
    Service,
}

impl Dialect {
    /// The dialect serving `path`.
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/node/api") {
            Dialect::Saymon
        } else if path.starts_with("/api/") {
            Dialect::RocketChat
        } else {
            Dialect::Service
        }
    }

    /// An error response in this dialect's shape for a failure that happened
    /// before a handler ran (missing credentials, unparsable body, no route).
    pub fn error_response(self, status: StatusCode, message: &str) -> Response {
        match self {
            Dialect::RocketChat => crate::rocketchat::error::framework_error(status, message),
            Dialect::Saymon => crate::saymon::error::framework_error(status, message),
            Dialect::Service => poem::web::Json(serde_json::json!({ "error": message }))
                .with_status(status)
                .into_response(),
        }
    }
}

/// The client's address: the socket peer, or with `trust_proxy` the first
/// address of `X-Forwarded-For`.
pub fn client_ip(req: &Request, trust_proxy: bool) -> Option<IpAddr> {
    if trust_proxy {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.remote_addr().as_socket_addr().map(|a| a.ip())
}

/// The response for an error: its own if a handler shaped it, else the
/// dialect's body for its status (server errors logged, never detailed).
fn shaped(dialect: Dialect, err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = %err, "request failed");
    }
    let message = if status.is_server_error() {
        "Internal server error".to_string()
    } else {
        err.to_string()
    };
    dialect.error_response(status, &message)
}

/// Middleware: turns framework errors (not already shaped by a handler) into
/// the dialect's error body, and adds the security headers every response
/// carries (`no-store`, `no-referrer`, `nosniff`).
pub async fn shape_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let dialect = Dialect::of_path(req.uri().path());
    let mut operation = None;
    let mut resp = match next.call(req).await {
        Ok(resp) => resp.into_response(),
        Err(err) => {
            // Keep the operation id poem-openapi attached, for the request log.
            operation = err.data::<OperationId>().copied();
            shaped(dialect, err)
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

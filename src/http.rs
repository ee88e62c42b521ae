//! HTTP plumbing shared by both dialects: tags, the dialect error contract,
//! client address, error shaping, request logging.

use crate::core::audit::RequestMeta;
use crate::core::metrics::METRICS;
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
        let operations = operation_ids(&T::meta());
        let mut own = HashMap::new();
        self.0.add_routes(&mut own);
        for (path, methods) in own {
            let entry = route_table.entry(path.clone()).or_default();
            for (method, ep) in methods {
                let operation = operations
                    .get(&(method.clone(), path_shape(&path)))
                    .copied();
                let ep = ep
                    .around(shape_with::<E>)
                    .around(move |next, req| with_request_meta(operation, next, req));
                entry.insert(method, ep.boxed());
            }
        }
    }
}

/// A route's path with every parameter segment as `*`, so the document's
/// `/users/{id}` and the route table's `/users/:param0` compare equal.
fn path_shape(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with(':') || s.starts_with('{') {
                "*"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Each operation's id by method and path shape, from the document.
fn operation_ids(apis: &[MetaApi]) -> HashMap<(Method, String), &'static str> {
    apis.iter()
        .flat_map(|api| &api.paths)
        .flat_map(|path| {
            path.operations.iter().filter_map(|op| {
                op.operation_id
                    .map(|id| ((op.method.clone(), path_shape(&path.path)), id))
            })
        })
        .collect()
}

/// Serves a dialect route inside its [`RequestMeta`] (operation id, client
/// address, request id), which the core's audit events read: the one place
/// both dialects hand the request context to the core.
async fn with_request_meta(
    operation: Option<&'static str>,
    next: Arc<impl Endpoint<Output = Response>>,
    req: Request,
) -> poem::Result<Response> {
    let address = req
        .data::<Arc<Core>>()
        .and_then(|core| client_ip(core, &req));
    let meta = RequestMeta {
        route: operation.map(str::to_string),
        address,
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
        operator: false,
    };
    meta.scope(next.call(req)).await
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

/// What a client may read of a framework error: never a server error's
/// details, and never a value it submitted: a parse error names the
/// parameter (or the body) and the type expected, nothing of what was found
/// (poem-openapi would say `found ["SuperSecretValue"]`). The one place a
/// framework message is produced for both dialects' `DialectError::framework`.
fn public_message(err: &poem::Error) -> String {
    use poem_openapi::error::{
        ParseMultipartError, ParseParamError, ParsePathError, ParseRequestPayloadError,
    };
    if err.status().is_server_error() {
        tracing::error!(error = %err, "request failed");
        return "Internal server error".to_string();
    }
    if let Some(e) = err.downcast_ref::<ParseParamError>() {
        format!(
            "failed to parse parameter `{}`: {}",
            e.name,
            describe_parse_failure(&e.reason)
        )
    } else if let Some(e) = err.downcast_ref::<ParsePathError>() {
        format!(
            "failed to parse path `{}`: {}",
            e.name,
            describe_parse_failure(&e.reason)
        )
    } else if let Some(e) = err.downcast_ref::<ParseRequestPayloadError>() {
        format!(
            "parse request payload error: {}",
            describe_parse_failure(&e.reason)
        )
    } else if err.downcast_ref::<ParseMultipartError>().is_some() {
        "parse multipart error".to_string()
    } else {
        err.to_string()
    }
}

/// A type name as poem-openapi prints it (`string`, `integer(uint64)`,
/// `LoginBody`, `[string]`), and nothing that could be a submitted value.
fn type_name(s: &str) -> Option<&str> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_()<>[], .:".contains(c));
    ok.then_some(s)
}

/// The text of `s` up to the next `"`, when `s` starts with `prefix`.
fn quoted_after<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.strip_prefix(prefix)?
        .split('"')
        .next()
        .and_then(type_name)
}

/// A poem-openapi or serde_json parse failure, retold with the expected
/// type and where it occurred only.
fn describe_parse_failure(reason: &str) -> String {
    // The outer types poem-openapi appends: ` (occurred while parsing "T")`.
    let mut rest = reason.trim_end();
    let mut within = Vec::new();
    while let Some(head) = rest.strip_suffix("\")") {
        let Some((head, ty)) = head.rsplit_once(" (occurred while parsing \"") else {
            break;
        };
        match type_name(ty) {
            Some(ty) => within.push(ty),
            None => break,
        }
        rest = head.trim_end();
    }
    // Stripped from the outside in: innermost first.
    within.reverse();
    let what = if let Some(ty) = quoted_after(rest, "Expected input type \"") {
        format!("expected type \"{ty}\"")
    } else if let Some(ty) = quoted_after(rest, "Type \"") {
        format!("a value of type \"{ty}\" is required")
    } else if let Some(ty) = quoted_after(rest, "failed to parse \"") {
        format!("not a valid \"{ty}\"")
    } else if is_json_syntax_error(rest) {
        // serde_json's syntax errors say what and where, never the input.
        format!("invalid JSON ({rest})")
    } else {
        "invalid value".to_string()
    };
    match within.as_slice() {
        [] => what,
        types => format!("{what} (in \"{}\")", types.join("\" in \"")),
    }
}

/// Whether `s` reads like a serde_json syntax error: a fixed text ending
/// in ` at line N column M`, without quotes.
fn is_json_syntax_error(s: &str) -> bool {
    let Some((head, column)) = s.rsplit_once(" column ") else {
        return false;
    };
    let Some((text, line)) = head.rsplit_once(" at line ") else {
        return false;
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    digits(line) && digits(column) && !text.contains('"') && text.len() <= 80
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

/// Every line of a header, in order (unreadable ones skipped).
fn header_lines<'a>(req: &'a Request, name: &str) -> Vec<&'a str> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The client's address, as the core decides it (the socket peer, or the
/// forwarded address with `TRUST_PROXY`).
pub fn client_ip(core: &Core, req: &Request) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    core.client_address(peer, &header_lines(req, "x-forwarded-for"))
}

/// Whether a cookie set in answer to `req` gets `Secure`, as the core
/// decides it (`COOKIE_SECURE`, a TLS connection, or a trusted proxy's
/// `X-Forwarded-Proto: https`).
pub fn cookie_secure(core: &Core, req: &Request) -> bool {
    let direct = *req.scheme() == poem::http::uri::Scheme::HTTPS;
    core.cookie_secure(direct, &header_lines(req, "x-forwarded-proto"))
}

/// Middleware: turns framework errors (not already shaped by a handler) into
/// the dialect's error body, and adds the security headers every response
/// carries (`no-store`, `no-referrer`, `nosniff`).
pub async fn shape_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let path = req.uri().path().to_string();
    let mut operation = None;
    let mut resp = match next.call(req).await {
        Ok(resp) => {
            let resp = resp.into_response();
            if resp.data::<Panicked>().is_some() {
                // A handler panicked (a bug): the dialect's 500, not poem's plain text.
                unrouted(
                    &path,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error",
                )
            } else {
                resp
            }
        }
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
    let timed_out = resp.status() == StatusCode::REQUEST_TIMEOUT;
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
    if timed_out {
        // The rest of the request was never read: the connection cannot be reused.
        headers.insert("connection", poem::http::HeaderValue::from_static("close"));
    }
    Ok(resp)
}

/// A JSON answer serialized straight from `T` with serde, for the hottest
/// routes: poem-openapi's `Json` first builds a `serde_json::Value` tree
/// (an allocation per field), which was a quarter of `/me`'s server time.
/// The document shows `T`'s schema as for `Json<T>`; `T`'s serde shape must
/// be its `ToJSON` shape, which a test checks for each type used here.
pub struct SerdeJson<T>(pub T);

impl<T: poem_openapi::types::Type> poem_openapi::payload::Payload for SerdeJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        <poem_openapi::payload::Json<T> as poem_openapi::payload::Payload>::check_content_type(
            content_type,
        )
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: serde::Serialize + Send> IntoResponse for SerdeJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .content_type("application/json; charset=utf-8")
                .body(body),
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be serialized");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}

impl<T: poem_openapi::types::Type + serde::Serialize + Send> poem_openapi::ApiResponse
    for SerdeJson<T>
{
    fn meta() -> poem_openapi::registry::MetaResponses {
        use poem_openapi::payload::Payload;
        poem_openapi::registry::MetaResponses {
            responses: vec![poem_openapi::registry::MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![poem_openapi::registry::MetaMediaType {
                    content_type: Self::CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// Marks the answer [`on_panic`] gave, for [`shape_errors`] to reshape.
#[derive(Clone, Copy)]
struct Panicked;

/// `CatchPanic` handler: logs the panic (its message only; handlers hold no
/// secrets in panic messages) and answers a marked 500.
#[derive(Clone, Copy)]
pub struct OnPanic;

impl poem::middleware::PanicHandler for OnPanic {
    type Response = Response;

    fn get_response(&self, err: Box<dyn std::any::Any + Send + 'static>) -> Response {
        let message = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %message, "request handler panicked");
        let mut resp = Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .finish();
        resp.set_data(Panicked);
        resp
    }
}

/// Largest request body accepted (bytes); every route takes small JSON.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Middleware: reads the body up to [`BODY_LIMIT`] (413 beyond), whether or
/// not the client sent `Content-Length`, within `deadline`
/// (`HTTP_BODY_TIMEOUT_SECONDS`) of the head's arrival: a body still
/// incomplete then is answered 408 and the connection closed (see
/// [`shape_errors`]), so a client trickling a body holds nothing for long.
pub async fn limit_body<E: Endpoint>(
    next: E,
    mut req: Request,
    deadline: std::time::Duration,
) -> poem::Result<Response> {
    let body = req.take_body();
    if !body.is_empty() {
        let bytes = tokio::time::timeout(deadline, body.into_bytes_limit(BODY_LIMIT))
            .await
            .map_err(|_| poem::Error::from_status(StatusCode::REQUEST_TIMEOUT))??;
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
    METRICS.requests.inc(&[operation, resp.status().as_str()]);
    METRICS.latency.observe(&[operation], started.elapsed());
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

#[cfg(test)]
mod tests {
    use super::describe_parse_failure;

    #[test]
    fn parse_failures_never_repeat_the_value() {
        for (reason, expected) in [
            (
                r#"Expected input type "string", found ["SuperSecretValue"]. (occurred while parsing "LoginBody")"#,
                r#"expected type "string" (in "LoginBody")"#,
            ),
            (
                r#"failed to parse "integer(uint64)": invalid digit found in string"#,
                r#"not a valid "integer(uint64)""#,
            ),
            (
                r#"Type "string" expects an input value. (occurred while parsing "A") (occurred while parsing "B")"#,
                r#"a value of type "string" is required (in "A" in "B")"#,
            ),
            (
                "expected `,` or `}` at line 1 column 12",
                "invalid JSON (expected `,` or `}` at line 1 column 12)",
            ),
            (r#"unknown variant "SuperSecretValue""#, "invalid value"),
            (
                r#"Expected input type "SuperSecret Value!", found 1."#,
                "invalid value",
            ),
        ] {
            assert_eq!(describe_parse_failure(reason), expected, "{reason}");
        }
    }

    /// A handler bug answers the dialect's JSON 500, never poem's text/plain.
    #[tokio::test]
    async fn a_panic_answers_the_dialects_500() {
        use poem::{handler, EndpointExt, Route};
        #[handler]
        fn boom() -> &'static str {
            panic!("boom")
        }
        let app = Route::new()
            .at("/api/v1/boom", boom)
            .at("/node/api/boom", boom)
            .with(poem::middleware::CatchPanic::new().with_handler(super::OnPanic))
            .around(super::shape_errors);
        for path in ["/api/v1/boom", "/node/api/boom"] {
            let resp = poem::test::TestClient::new(&app).get(path).send().await;
            resp.assert_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR);
            resp.assert_content_type("application/json; charset=utf-8");
            let body: serde_json::Value = resp.0.into_body().into_json().await.unwrap();
            assert!(
                body.get("error").is_some() || body.get("message").is_some(),
                "{path}: {body}"
            );
        }
    }
}

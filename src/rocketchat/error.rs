//! Rocket.Chat's error bodies.

use crate::http::DialectError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::{payload::Json, ApiResponse, Object};

/// The 401 text of Rocket.Chat's authentication middleware.
pub const NOT_LOGGED_IN: &str = "You must be logged in to do this.";
/// The 403 text of Rocket.Chat's `permissionsRequired` check.
pub const NO_PERMISSION: &str =
    "User does not have the permissions required for this action [error-unauthorized]";

/// `{"success":false,"error":...,"errorType"?,"details"?}`: Rocket.Chat's `failure()`.
#[derive(Object, Debug, Clone)]
pub struct Failure {
    pub success: bool,
    pub error: String,
    #[oai(rename = "errorType", skip_serializing_if_is_none)]
    pub error_type: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<serde_json::Value>,
}

/// `{"success":false,"status":"error","message":...,"error":...}`: the 401 of
/// the authentication middleware and of `login`.
#[derive(Object, Debug, Clone)]
pub struct StatusError {
    pub success: bool,
    pub status: String,
    pub message: String,
    pub error: String,
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<serde_json::Value>,
}

/// Every error a Rocket.Chat route answers.
#[derive(ApiResponse, Debug)]
pub enum RcError {
    /// A business error: `"<reason> [<code>]"` with `errorType` `<code>`, or invalid parameters.
    #[oai(status = 400)]
    BadRequest(Json<Failure>),
    /// Not logged in (missing or invalid `X-User-Id` / `X-Auth-Token`), or a failed login.
    #[oai(status = 401)]
    Unauthorized(Json<StatusError>),
    /// The caller lacks a permission the route requires.
    #[oai(status = 403)]
    Forbidden(Json<Failure>),
    /// The body did not arrive within `HTTP_BODY_TIMEOUT_SECONDS`; the
    /// connection is closed after this answer.
    #[oai(status = 408)]
    RequestTimeout(Json<Failure>),
    /// The body is larger than 64 KiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<Failure>),
    /// The body's `Content-Type` is not one the route reads.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<Failure>),
    /// Too many requests: over the rate limit (with `X-RateLimit-*`), or
    /// too many password checks at once (`login` only).
    #[oai(status = 429)]
    TooManyRequests(
        Json<Failure>,
        /// Calls allowed per window.
        #[oai(header = "X-RateLimit-Limit")]
        Option<u32>,
        /// Calls left in this window (0).
        #[oai(header = "X-RateLimit-Remaining")]
        Option<u32>,
        /// When the window ends, in milliseconds since the epoch.
        #[oai(header = "X-RateLimit-Reset")]
        Option<i64>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<Failure>),
    /// The store is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<Failure>),
}

fn failure(
    error: String,
    error_type: Option<&str>,
    details: Option<serde_json::Value>,
) -> Json<Failure> {
    Json(Failure {
        success: false,
        error,
        error_type: error_type.map(str::to_string),
        details,
    })
}

/// The rate limiter's 429 body, as Rocket.Chat words it.
fn slow_down(seconds: impl std::fmt::Display) -> Json<Failure> {
    failure(
        format!(
            "Error, too many requests. Please slow down. You must wait {seconds} seconds before trying this endpoint again. [error-too-many-requests]"
        ),
        None,
        None,
    )
}

impl RcError {
    /// 400 for a thrown `Meteor.Error(code, reason, details)`.
    pub fn thrown(code: &str, reason: &str, details: Option<serde_json::Value>) -> Self {
        RcError::BadRequest(failure(format!("{reason} [{code}]"), Some(code), details))
    }

    /// 400 for a thrown `Meteor.Error(code)` without a reason: `"[<code>]"`.
    pub fn thrown_code(code: &str) -> Self {
        RcError::BadRequest(failure(format!("[{code}]"), Some(code), None))
    }

    /// 400 for request parameters that fail validation.
    pub fn invalid_params(message: &str) -> Self {
        RcError::BadRequest(failure(message.to_string(), Some("invalid-params"), None))
    }

    /// 401 of the authentication middleware.
    pub fn not_logged_in() -> Self {
        RcError::Unauthorized(Json(StatusError {
            success: false,
            status: "error".into(),
            message: NOT_LOGGED_IN.into(),
            error: NOT_LOGGED_IN.into(),
            details: None,
        }))
    }

    /// 401 of `login`, with the given `error` code and `message`.
    pub fn login_failed(error: &str, message: &str, details: Option<serde_json::Value>) -> Self {
        RcError::Unauthorized(Json(StatusError {
            success: false,
            status: "error".into(),
            message: message.into(),
            error: error.into(),
            details,
        }))
    }

    /// 400 for `API.v1.failure("<message>", "<errorType>")`.
    pub fn failure_typed(message: &str, error_type: &str) -> Self {
        RcError::BadRequest(failure(message.to_string(), Some(error_type), None))
    }

    /// 400 for `API.v1.failure("<message>")`: a bare message, no `errorType`.
    pub fn failure(message: &str) -> Self {
        RcError::BadRequest(failure(message.to_string(), None, None))
    }

    /// 403 of a route-level permission check.
    pub fn forbidden() -> Self {
        RcError::Forbidden(failure(NO_PERMISSION.into(), None, None))
    }

    /// 403 `{"success":false,"error":"unauthorized"}`: a route's own refusal
    /// (Rocket.Chat's `API.v1.forbidden()` / 6.x `unauthorized()` with no message).
    pub fn forbidden_unauthorized() -> Self {
        RcError::Forbidden(failure("unauthorized".into(), None, None))
    }

    /// 429 of the rate limiter, as Rocket.Chat words it.
    pub fn too_many_requests(
        limited: crate::core::ratelimit::Limited,
        now: crate::core::Timestamp,
    ) -> Self {
        let wait = (limited.reset_at - now).num_milliseconds().max(0);
        let seconds = (wait + 999) / 1000;
        RcError::TooManyRequests(
            slow_down(seconds),
            Some(limited.limit),
            Some(0),
            Some(limited.reset_at.timestamp_millis()),
            u64::try_from(seconds).unwrap_or(0),
        )
    }

    /// 429 of `login` while every password-check slot is taken, in the
    /// rate limiter's words.
    pub fn too_busy(retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs().max(1);
        RcError::TooManyRequests(slow_down(seconds), None, None, None, seconds)
    }

    /// 503 when the store is unreachable.
    pub fn unavailable() -> Self {
        RcError::Unavailable(failure(
            "The service is temporarily unavailable, try again later [error-service-unavailable]"
                .into(),
            Some("error-service-unavailable"),
            None,
        ))
    }
}

crate::dialect_error!(RcError);

impl DialectError for RcError {
    fn unavailable() -> Self {
        RcError::unavailable()
    }

    fn internal() -> Self {
        RcError::Internal(failure("Internal server error".into(), None, None))
    }

    fn framework(status: StatusCode, message: &str) -> Response {
        let err = match status {
            StatusCode::UNAUTHORIZED => RcError::not_logged_in(),
            StatusCode::BAD_REQUEST => RcError::invalid_params(message),
            StatusCode::FORBIDDEN => RcError::forbidden(),
            StatusCode::REQUEST_TIMEOUT => {
                RcError::RequestTimeout(failure(message.to_string(), None, None))
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                RcError::PayloadTooLarge(failure(message.to_string(), None, None))
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                RcError::UnsupportedMediaType(failure(message.to_string(), None, None))
            }
            _ => {
                return failure(message.to_string(), None, None)
                    .with_status(status)
                    .into_response()
            }
        };
        err.into_response()
    }
}

//! SAYMON's error bodies: `{"code","message"}`; on 401 the message is itself
//! the JSON string `{"errorCode":3,"message":"..."}`. Codes are restify's
//! (`InvalidContent`, `Unauthorized`, `InvalidCredentials`, `Forbidden`,
//! `ResourceNotFound`, ...), as SAYMON is a restify server.

use crate::http::DialectError;
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::{payload::Json, ApiResponse, Object};

/// 401 text: no credentials at all.
pub const NOT_LOGGED_IN: &str = "Not logged in.";
/// 401 text: the `sid` cookie names no live session.
pub const SESSION_EXPIRED: &str = "Session expired.";
/// 401 text: the `api-token` (or `auth-token`) is unknown or deleted.
pub const INVALID_API_TOKEN: &str = "Invalid API token.";
/// 401 text (code `InvalidCredentials`): wrong login or password.
pub const INVALID_CREDENTIALS: &str = "Invalid login or password.";

/// `{"code": ..., "message": ...}`
#[derive(Object, Debug, Clone)]
#[oai(rename = "SaymonError")]
pub struct ErrorBody {
    /// restify error code, e.g. `Unauthorized`, `Forbidden`, `ResourceNotFound`.
    pub code: String,
    /// What went wrong; on 401 a JSON string `{"errorCode":3,"message":"..."}`.
    pub message: String,
}

/// Every error a SAYMON route answers.
#[derive(ApiResponse, Debug)]
pub enum SaymonError {
    /// Invalid JSON (`InvalidContent`) or invalid or missing fields (`BadRequest`).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Not logged in, session expired, invalid API token (`Unauthorized`), or
    /// invalid login or password (`InvalidCredentials`).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The caller lacks the permission the message names.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No item has the given id.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The body did not arrive within `HTTP_BODY_TIMEOUT_SECONDS`
    /// (`RequestTimeout`); the connection is closed after this answer.
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorBody>),
    /// The body is larger than 64 KiB (`PayloadTooLarge`).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not sent as `application/json` (`UnsupportedMediaType`).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many failed logins for this login or address, too many password
    /// logins from this address, or too many password checks at once; retry
    /// after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Internal error.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The store is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.into(),
        message: message.into(),
    })
}

/// The double-encoded 401 message.
pub fn unauthorized_message(message: &str) -> String {
    serde_json::json!({ "errorCode": 3, "message": message }).to_string()
}

impl SaymonError {
    /// 400 `BadRequest`: a field is missing or invalid.
    pub fn bad_request(message: impl Into<String>) -> Self {
        SaymonError::BadRequest(body("BadRequest", message))
    }

    /// 400 `BadRequest` for a mandatory field that is absent or empty, worded as SAYMON does.
    pub fn missing(field: &str) -> Self {
        Self::bad_request(format!("Mandatory \"{field}\" parameter is absent/empty."))
    }

    /// 400 `InvalidContent`: the body is not valid JSON (or not the expected shape).
    pub fn invalid_content(detail: &str) -> Self {
        SaymonError::BadRequest(body("InvalidContent", format!("Invalid JSON: {detail}")))
    }

    /// 401 without any credentials.
    pub fn not_logged_in() -> Self {
        SaymonError::Unauthorized(body("Unauthorized", unauthorized_message(NOT_LOGGED_IN)))
    }

    /// 401 for an unknown, ended or expired session.
    pub fn session_expired() -> Self {
        SaymonError::Unauthorized(body("Unauthorized", unauthorized_message(SESSION_EXPIRED)))
    }

    /// 401 for an unknown or deleted API token.
    pub fn invalid_api_token() -> Self {
        SaymonError::Unauthorized(body(
            "Unauthorized",
            unauthorized_message(INVALID_API_TOKEN),
        ))
    }

    /// 401 for a wrong login or password (or an inactive user).
    pub fn invalid_credentials() -> Self {
        SaymonError::Unauthorized(body(
            "InvalidCredentials",
            unauthorized_message(INVALID_CREDENTIALS),
        ))
    }

    /// 401 `Unauthorized` for a missing or wrong second factor (the message
    /// says which method and why, never the code).
    pub fn second_factor(message: &str) -> Self {
        SaymonError::Unauthorized(body("Unauthorized", unauthorized_message(message)))
    }

    /// 403 naming the missing permission.
    pub fn forbidden(permission: &str) -> Self {
        SaymonError::Forbidden(body(
            "Forbidden",
            format!("Permission '{permission}' required."),
        ))
    }

    /// 403 for an act the caller's permissions do not cover: it would give
    /// (or hand a credential of) a user permissions the caller lacks.
    pub fn beyond_own_permissions() -> Self {
        SaymonError::Forbidden(body(
            "Forbidden",
            "Not allowed: the user would get permissions you do not hold.",
        ))
    }

    /// 404 `ResourceNotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        SaymonError::NotFound(body("ResourceNotFound", message))
    }

    /// 404 for a user id that names no user.
    pub fn user_not_found(id: &str) -> Self {
        Self::not_found(format!("User '{id}' not found."))
    }

    /// 429 while failed-login blocking holds; `retry_after` in seconds.
    pub fn too_many_login_failures(retry_after: u64) -> Self {
        SaymonError::TooManyRequests(
            body(
                "TooManyRequests",
                "Too many failed login attempts. Try again later.",
            ),
            retry_after,
        )
    }

    /// 429 over the password-login rate limit, or while every
    /// password-check slot is taken; `retry_after` in seconds (at least 1).
    pub fn too_many_requests(retry_after: u64) -> Self {
        SaymonError::TooManyRequests(
            body("TooManyRequests", "Too many requests. Try again later."),
            retry_after.max(1),
        )
    }

    /// 500 without details (they go to the log).
    pub fn internal() -> Self {
        SaymonError::Internal(body("Internal", "Internal server error"))
    }

    /// 503 while the store is unreachable.
    pub fn unavailable() -> Self {
        SaymonError::Unavailable(body(
            "ServiceUnavailable",
            "The service is temporarily unavailable, try again later.",
        ))
    }
}

crate::dialect_error!(SaymonError);

impl DialectError for SaymonError {
    fn unavailable() -> Self {
        SaymonError::unavailable()
    }

    fn internal() -> Self {
        SaymonError::internal()
    }

    /// Unparsable body, wrong content type, missing credentials, no such
    /// route or method.
    fn framework(status: StatusCode, message: &str) -> Response {
        let code = match status {
            StatusCode::UNAUTHORIZED => return SaymonError::not_logged_in().into_response(),
            StatusCode::BAD_REQUEST => {
                return SaymonError::invalid_content(message).into_response()
            }
            StatusCode::SERVICE_UNAVAILABLE => return SaymonError::unavailable().into_response(),
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::NOT_FOUND => "ResourceNotFound",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            StatusCode::REQUEST_TIMEOUT => {
                return SaymonError::RequestTimeout(body("RequestTimeout", message)).into_response()
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                return SaymonError::PayloadTooLarge(body("PayloadTooLarge", message))
                    .into_response()
            }
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                return SaymonError::UnsupportedMediaType(body("UnsupportedMediaType", message))
                    .into_response()
            }
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            _ => "Internal",
        };
        body(code, message).with_status(status).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CoreError;

    async fn status_and_body(resp: Response) -> (u16, serde_json::Value) {
        let status = resp.status().as_u16();
        let text = resp.into_body().into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    #[tokio::test]
    async fn store_unavailable_is_503_in_saymon_shape() {
        let err = SaymonError::from(CoreError::unavailable("down"));
        let (status, body) = status_and_body(err.into_response()).await;
        assert_eq!(status, 503);
        assert_eq!(body["code"], "ServiceUnavailable");
        assert!(!body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("down"));
    }

    #[tokio::test]
    async fn other_core_failures_are_500_without_details() {
        let err = SaymonError::from(CoreError::Internal("secret detail".into()));
        let (status, body) = status_and_body(err.into_response()).await;
        assert_eq!(status, 500);
        assert_eq!(
            body,
            serde_json::json!({"code": "Internal", "message": "Internal server error"})
        );
    }

    #[tokio::test]
    async fn unauthorized_message_is_double_encoded() {
        let (status, body) = status_and_body(SaymonError::not_logged_in().into_response()).await;
        assert_eq!(status, 401);
        assert_eq!(
            body,
            serde_json::json!({
                "code": "Unauthorized",
                "message": "{\"errorCode\":3,\"message\":\"Not logged in.\"}"
            })
        );
    }

    #[tokio::test]
    async fn blocked_logins_say_when_to_retry() {
        let resp = SaymonError::too_many_login_failures(300).into_response();
        assert_eq!(
            resp.headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("300")
        );
        let (status, body) = status_and_body(resp).await;
        assert_eq!(status, 429);
        assert_eq!(body["code"], "TooManyRequests");
    }
}

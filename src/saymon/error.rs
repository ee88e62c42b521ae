//! SAYMON's error bodies: `{"code","message"}`; on 401 the message is itself
//! the JSON string `{"errorCode":3,"message":"..."}`.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::{payload::Json, Object};

/// `{"code": ..., "message": ...}`
#[derive(Object, Debug, Clone)]
#[oai(rename = "SaymonError")]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// The double-encoded 401 message.
pub fn unauthorized_message(message: &str) -> String {
    serde_json::json!({ "errorCode": 3, "message": message }).to_string()
}

/// The SAYMON body for an error raised before a handler ran.
pub fn framework_error(status: StatusCode, message: &str) -> Response {
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => ("Unauthorized", unauthorized_message("Not logged in.")),
        StatusCode::BAD_REQUEST => ("InvalidContent", format!("Invalid JSON: {message}")),
        StatusCode::FORBIDDEN => ("Forbidden", message.to_string()),
        StatusCode::NOT_FOUND => ("ResourceNotFound", message.to_string()),
        StatusCode::METHOD_NOT_ALLOWED => ("MethodNotAllowed", message.to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => ("PayloadTooLarge", message.to_string()),
        StatusCode::SERVICE_UNAVAILABLE => ("ServiceUnavailable", message.to_string()),
        _ => ("Internal", message.to_string()),
    };
    Json(ErrorBody {
        code: code.into(),
        message,
    })
    .with_status(status)
    .into_response()
}

//! Logging set-up (`RUST_LOG`, `LOG_FORMAT`) and request ids.

use crate::config::LogFormat;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. `RUST_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// The id of one request: taken from a sane incoming `X-Request-Id`, else new.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl RequestId {
    /// The request's id.
    pub fn from_request(req: &poem::Request) -> Self {
        let incoming = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        match incoming {
            Some(id) => Self(id.to_string()),
            None => Self(crate::core::ids::new_user_id()),
        }
    }
}

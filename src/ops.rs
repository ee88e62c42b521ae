//! Service routes: health, readiness, metrics.

use crate::core::Core;
use crate::http::ApiTags;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// Health and readiness routes.
pub struct OpsApi {
    pub core: Arc<Core>,
}

/// `{"status": ...}`
#[derive(Object)]
pub struct Status {
    pub status: String,
}

/// Readiness answer.
#[derive(ApiResponse)]
pub enum Ready {
    /// The store answers.
    #[oai(status = 200)]
    Ready(Json<Status>),
    /// The store does not answer.
    #[oai(status = 503)]
    Unavailable(Json<Status>),
}

#[OpenApi(tag = "ApiTags::Service")]
impl OpsApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Status> {
        Json(Status {
            status: "ok".into(),
        })
    }

    /// Prometheus metrics (text exposition format 0.0.4): requests by
    /// operation and status, latency histograms, tokens minted by kind,
    /// logins by outcome, store errors, throttle blocks.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self) -> PlainText<String> {
        PlainText(crate::core::metrics::METRICS.render())
    }

    /// The store is reachable.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> Ready {
        match self.core.ready().await {
            Ok(()) => Ready::Ready(Json(Status {
                status: "ready".into(),
            })),
            Err(e) => {
                tracing::warn!(error = %e, "not ready");
                Ready::Unavailable(Json(Status {
                    status: "unavailable".into(),
                }))
            }
        }
    }
}

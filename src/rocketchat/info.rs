//! `GET /api/info`, as Rocket.Chat answers it (`getServerInfo`): the
//! Rocket.Chat release tokend answers as, `MAJOR.MINOR` only to anyone; to a
//! caller with `view-statistics` the full version and `info` with the build.

use super::auth::optional_caller;
use super::error::RcError;
use crate::core::service::ServerInfo;
use crate::core::Core;
use crate::http::ApiTags;
use poem::Request;
use poem_openapi::{payload::Json, Object, OpenApi};
use std::sync::Arc;

/// `info`.
pub struct InfoApi {
    pub core: Arc<Core>,
}

/// Where and how tokend runs (Rocket.Chat `info.build`).
#[derive(Object, Debug)]
#[oai(rename = "RcBuild")]
pub struct BuildView {
    /// CPU architecture (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// Operating system (`linux`, ...).
    pub platform: String,
    /// CPUs available to the process.
    pub cpus: u64,
}

/// Rocket.Chat `info`: the full version and the build.
#[derive(Object, Debug)]
#[oai(rename = "RcInfoDetails")]
pub struct InfoDetails {
    /// The Rocket.Chat release tokend answers as, in full.
    pub version: String,
    pub build: BuildView,
}

/// `GET /api/info` answer.
#[derive(Object, Debug)]
#[oai(rename = "RcServerInfo")]
pub struct InfoOk {
    /// The Rocket.Chat release tokend answers as (`RC_COMPAT_VERSION`):
    /// `MAJOR.MINOR`, in full with `view-statistics`.
    pub version: String,
    /// With `view-statistics` only.
    #[oai(skip_serializing_if_is_none)]
    pub info: Option<InfoDetails>,
    /// tokend's own version (not a Rocket.Chat field).
    #[oai(rename = "tokendVersion")]
    pub tokend_version: String,
    pub success: bool,
}

/// Rocket.Chat's `removePatchInfo`: `7.10.0` → `7.10`.
fn major_minor(version: &str) -> String {
    version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".")
}

impl From<ServerInfo> for InfoOk {
    fn from(s: ServerInfo) -> Self {
        let info = s.detailed.then(|| InfoDetails {
            version: s.rc_version.clone(),
            build: BuildView {
                arch: std::env::consts::ARCH.into(),
                platform: std::env::consts::OS.into(),
                cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            },
        });
        Self {
            version: if s.detailed {
                s.rc_version
            } else {
                major_minor(&s.rc_version)
            },
            info,
            tokend_version: s.tokend_version.into(),
            success: true,
        }
    }
}

#[OpenApi(tag = "ApiTags::RocketChat")]
impl InfoApi {
    /// Server information, as Rocket.Chat's `GET /api/info`. No
    /// authentication needed; with `X-User-Id` and `X-Auth-Token` of a user
    /// holding `view-statistics`, the full version and `info` (invalid
    /// credentials make an anonymous call).
    #[oai(path = "/api/info", method = "get", operation_id = "info")]
    async fn info(&self, req: &Request) -> Result<Json<InfoOk>, RcError> {
        let caller = optional_caller(&self.core, req).await?;
        let info = self.core.server_info(caller.as_ref()).await?;
        Ok(Json(InfoOk::from(info)))
    }
}

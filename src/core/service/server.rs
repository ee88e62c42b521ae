//! What the server tells about itself (Rocket.Chat `GET /api/info`).

use super::Core;
use crate::core::credential::Caller;
use crate::core::error::CoreError;
use crate::core::permissions::Permission;

/// tokend's own version.
pub const TOKEND_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Outcome of [`Core::server_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The Rocket.Chat release tokend answers as (`RC_COMPAT_VERSION`).
    pub rc_version: String,
    /// tokend's own version.
    pub tokend_version: &'static str,
    /// Whether the caller may see the full version and the build (Rocket.Chat:
    /// `view-statistics`); anyone else learns only `MAJOR.MINOR`.
    pub detailed: bool,
}

impl Core {
    /// What `/api/info` may tell this caller (`None`: anonymous).
    pub async fn server_info(&self, caller: Option<&Caller>) -> Result<ServerInfo, CoreError> {
        let detailed = match caller {
            Some(caller) => self.holds(caller, Permission::ViewStatistics).await?,
            None => false,
        };
        Ok(ServerInfo {
            rc_version: self.config.rc_compat_version.clone(),
            tokend_version: TOKEND_VERSION,
            detailed,
        })
    }
}

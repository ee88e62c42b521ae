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

impl Core {
    /// The origin clients reach tokend at (`https://host[:port]`), for
    /// absolute URLs such as Rocket.Chat's `avatarUrl`: the request's `Host`;
    /// the scheme from `X-Forwarded-Proto` behind a trusted proxy
    /// (`TRUST_PROXY`), else `https` when `COOKIE_SECURE` says tokend is
    /// served over HTTPS, else `http`. `None` for a missing or malformed host.
    pub fn public_origin(
        &self,
        host: Option<&str>,
        forwarded_proto: Option<&str>,
    ) -> Option<String> {
        let host = host?.trim();
        let plausible = !host.is_empty()
            && host.len() <= 255
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
        if !plausible {
            return None;
        }
        let forwarded = forwarded_proto
            .filter(|_| self.config.trust_proxy)
            .and_then(|p| p.split(',').next())
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https");
        let scheme = forwarded.unwrap_or_else(|| {
            if self.config.cookie_secure {
                "https"
            } else {
                "http"
            }
            .to_string()
        });
        Some(format!("{scheme}://{host}"))
    }
}

//! The Rocket.Chat dialect: `/api/v1/...`, Rocket.Chat's bodies and errors.

// `RcError` carries its JSON body inline (about 130 bytes); it is built once
// per failed request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod auth;
pub mod body;
pub mod error;
pub mod info;
pub mod pat;
pub mod roles;
pub mod session;
pub mod tokens;
pub mod twofactor;
pub mod users;
pub mod view;

use crate::core::Core;
use crate::http::DialectRoutes;
use std::sync::Arc;

pub use auth::{RcAuth, RcSecurity};
pub use error::RcError;

/// Where the dialect's routes live (for requests no route took).
pub const PREFIX: &str = "/api/";

/// Every Rocket.Chat route group.
pub type RcApis = (
    session::SessionApi,
    tokens::TokensApi,
    users::UsersApi,
    pat::PatApi,
    info::InfoApi,
    twofactor::TwoFactorApi,
    admin::AdminApi,
    roles::RolesApi,
);

/// Every Rocket.Chat route: errors in Rocket.Chat's shape, the
/// AND-security rewrite applied.
pub type RcRoutes = DialectRoutes<RcSecurity<RcApis>, RcError>;

/// Every Rocket.Chat route over a core.
pub fn api(core: Arc<Core>) -> RcRoutes {
    DialectRoutes::new(RcSecurity((
        session::SessionApi { core: core.clone() },
        tokens::TokensApi { core: core.clone() },
        users::UsersApi { core: core.clone() },
        pat::PatApi { core: core.clone() },
        info::InfoApi { core: core.clone() },
        twofactor::TwoFactorApi { core: core.clone() },
        admin::AdminApi { core: core.clone() },
        roles::RolesApi { core },
    )))
}

//! The Rocket.Chat dialect: `/api/v1/...`, Rocket.Chat's bodies and errors.

// `RcError` carries its JSON body inline (about 130 bytes); it is built once
// per failed request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod body;
pub mod error;
pub mod pat;
pub mod session;
pub mod tokens;
pub mod users;
pub mod view;

use crate::core::Core;
use std::sync::Arc;

pub use auth::{RcAuth, RcSecurity};
pub use error::RcError;

/// Every Rocket.Chat route group.
pub type RcApis = (
    session::SessionApi,
    tokens::TokensApi,
    users::UsersApi,
    pat::PatApi,
);

/// Every Rocket.Chat route, with the AND-security rewrite applied.
pub fn api(core: Arc<Core>) -> RcSecurity<RcApis> {
    RcSecurity((
        session::SessionApi { core: core.clone() },
        tokens::TokensApi { core: core.clone() },
        users::UsersApi { core: core.clone() },
        pat::PatApi { core },
    ))
}

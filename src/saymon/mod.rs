//! The SAYMON dialect: `/node/api/...`, SAYMON's bodies and errors, over the
//! same users as the Rocket.Chat dialect.
//!
//! Authentication ([`auth`]): Basic, the `sid` cookie or `?api-token=`.
//! Routes: API tokens ([`tokens`]), cookie sessions ([`session`]), users
//! ([`users`], shown as [`view`] says). Errors ([`error`]): `{"code","message"}`.

pub mod auth;
pub mod error;
pub mod session;
pub mod tokens;
pub mod users;
pub mod view;

use crate::core::Core;
use crate::http::DialectRoutes;
use std::sync::Arc;

pub use auth::{ManageUsers, SaymonAuth};
pub use error::SaymonError;

/// Where the dialect's routes live (for requests no route took).
pub const PREFIX: &str = "/node/api";

/// Every SAYMON route group.
pub type SaymonApis = (session::SessionApi, tokens::TokensApi, users::UsersApi);

/// Every SAYMON route, errors in SAYMON's shape.
pub type SaymonApi = DialectRoutes<SaymonApis, SaymonError>;

/// Every SAYMON route over a core.
pub fn api(core: Arc<Core>) -> SaymonApi {
    DialectRoutes::new((
        session::SessionApi { core: core.clone() },
        tokens::TokensApi { core: core.clone() },
        users::UsersApi { core },
    ))
}

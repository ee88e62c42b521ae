//! The SAYMON dialect: `/node/api/...`, SAYMON's bodies and errors, over the
//! same users as the Rocket.Chat dialect.
//!
//! Authentication ([`auth`]): Basic, the `sid` cookie or `?api-token=`.
//! Routes: API tokens ([`tokens`]), cookie sessions ([`session`]), users
//! ([`users`], shown as [`view`] says). Errors ([`error`]): `{"code","message"}`.

/// `Debug` for a request body showing only the listed fields, so that its
/// secrets (passwords, tokens) never reach a log.
macro_rules! redacted_debug {
    ($ty:ident, $($field:ident),*) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

pub mod auth;
pub mod error;
pub mod session;
pub mod tokens;
pub mod users;
pub mod view;

use crate::core::Core;
use std::sync::Arc;

pub use auth::{ManageUsers, SaymonAuth, SaymonCaller};
pub use error::SaymonError;

/// Every SAYMON route.
pub type SaymonApi = (session::SessionApi, tokens::TokensApi, users::UsersApi);

/// Every SAYMON route over a core.
pub fn api(core: Arc<Core>) -> SaymonApi {
    (
        session::SessionApi { core: core.clone() },
        tokens::TokensApi { core: core.clone() },
        users::UsersApi { core },
    )
}

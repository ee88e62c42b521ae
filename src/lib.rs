//! tokend: issues, checks and revokes user authentication tokens, speaking
//! Rocket.Chat's and SAYMON's APIs over one user store.
//!
//! Layout: [`core`] holds the rules (domain types, tokens, passwords,
//! permissions, the [`store::Store`] trait); [`rocketchat`] and [`saymon`] are
//! the two API dialects over it; [`app`] assembles the HTTP service.

/// `Debug` for a type showing only the listed fields, so that its secrets
/// (passwords, tokens, hashes) never reach a log: every secret-bearing type
/// that is not itself a redacting credential type uses this.
#[macro_export]
macro_rules! redacted_debug {
    ($ty:ident $(, $field:ident)* $(,)?) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}

pub mod app;
pub mod config;
pub mod core;
pub mod envfile;
pub mod http;
pub mod ops;
pub mod rocketchat;
pub mod saymon;
pub mod server;
pub mod store;
pub mod telemetry;

//! The shared core: domain types, credentials, passwords, permissions, and
//! [`Core`], the one door both API dialects go through.
//!
//! Where a rule lives: authentication and login → [`service::auth`]; token
//! issuing, `users.createToken`, PATs → [`service::tokens`]; users, password
//! changes, deactivation, deletion, the last-admin guard → [`service::users`];
//! SAYMON API tokens and sessions → [`service::saymon`]; which permission
//! allows what → [`permissions`]; token and hash types → [`credential`].

pub mod audit;
pub mod clock;
pub mod credential;
pub mod error;
pub mod ids;
pub mod mailer;
pub mod metrics;
pub mod model;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod seed;
pub mod service;
pub mod throttle;
pub mod token;
pub mod twofactor;
pub mod userquery;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use credential::{Caller, Credential, Plaintext, TokenHash, Via};
pub use error::CoreError;
pub use model::*;
pub use permissions::{perm, Granted, Perm, Permission};
pub use service::Core;

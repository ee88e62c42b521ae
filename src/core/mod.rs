//! The shared core: domain types, tokens, passwords, permissions and the
//! operations both API dialects are built from.

pub mod clock;
pub mod error;
pub mod ids;
pub mod model;
pub mod password;
pub mod permissions;
pub mod ratelimit;
pub mod seed;
pub mod service;
pub mod throttle;
pub mod token;
pub mod validate;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use model::*;
pub use service::Core;

//! tokend: issues, checks and revokes user authentication tokens, speaking
//! Rocket.Chat's and SAYMON's APIs over one user store.
//!
//! Layout: [`core`] holds the rules (domain types, tokens, passwords,
//! permissions, the [`store::Store`] trait); [`rocketchat`] and [`saymon`] are
//! the two API dialects over it; [`app`] assembles the HTTP service.

pub mod app;
pub mod config;
pub mod core;
pub mod http;
pub mod ops;
pub mod rocketchat;
pub mod saymon;
pub mod store;
pub mod telemetry;

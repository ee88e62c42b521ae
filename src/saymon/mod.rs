//! The SAYMON dialect: `/node/api/...`, SAYMON's bodies and errors.

pub mod error;

//! tokend's integration tests, one binary: each module below was a test
//! binary of its own, and each of those compiled and linked `common` again.
//! `tests/logging.rs` stays separate (see there).

// First, and `macro_use`: `store_tests!` is then in scope in the modules below.
#[macro_use]
mod common;

mod adversarial;
mod audit;
mod concurrent_mint;
mod mongo_faults;
mod mongo_layout;
mod mongo_roundtrips;
mod multi_instance;
mod rc_compat;
mod rc_pat;
mod rc_roles;
mod rc_shapes;
mod rc_tokens;
mod rc_users;
mod rc_users_query;
mod saymon;
mod secrets;
mod service;
mod sqlite_crash;
mod sqlite_restart;
mod store_contract;
mod twofactor;

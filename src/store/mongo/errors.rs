//! Driver errors → store errors.

use crate::store::UniqueField;
use mongodb::error::{Error, ErrorKind, WriteFailure};

/// What a driver error means to tokend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Network, timeout, server selection, a server shutting down or stepping
    /// down: retrying later may work (503).
    Unavailable,
    /// Duplicate key (11000), with the field when the server named the index.
    Duplicate(Option<UniqueField>),
    /// Anything else (500).
    Other,
}

/// Server error codes that mean "not reachable right now" rather than "wrong".
const UNAVAILABLE_CODES: &[i32] = &[
    6,     // HostUnreachable
    7,     // HostNotFound
    50,    // MaxTimeMSExpired
    89,    // NetworkTimeout
    91,    // ShutdownInProgress
    189,   // PrimarySteppedDown
    202,   // NetworkInterfaceExceededTimeLimit
    262,   // ExceededTimeLimit
    9001,  // SocketException
    10058, // LegacyNotPrimary
    10107, // NotWritablePrimary
    11600, // InterruptedAtShutdown
    11602, // InterruptedDueToReplStateChange
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

const DUPLICATE_CODES: &[i32] = &[11000, 11001, 12582];

fn by_code(code: i32, message: &str) -> Failure {
    if DUPLICATE_CODES.contains(&code) {
        Failure::Duplicate(duplicate_field(message))
    } else if UNAVAILABLE_CODES.contains(&code) {
        Failure::Unavailable
    } else {
        Failure::Other
    }
}

/// Classifies a driver error.
pub fn classify(e: &Error) -> Failure {
    match e.kind.as_ref() {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown
        // Wrong credentials cannot be fixed by tokend either: the store is
        // unusable until the operator fixes MONGO_URL, so answer 503.
        | ErrorKind::Authentication { .. } => Failure::Unavailable,
        ErrorKind::Command(c) => by_code(c.code, &c.message),
        ErrorKind::Write(WriteFailure::WriteError(w)) => by_code(w.code, &w.message),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => by_code(w.code, &w.message),
        ErrorKind::InsertMany(m) => m
            .write_errors
            .iter()
            .flatten()
            .map(|w| by_code(w.code, &w.message))
            .next()
            .unwrap_or(Failure::Other),
        _ => Failure::Other,
    }
}

/// The field of a duplicate-key error, from the index name in mongod's
/// message (`... index: username_1 dup key: ...`). `None` when the message
/// names no index (the emulator's messages do not).
pub fn duplicate_field(message: &str) -> Option<UniqueField> {
    let (_, rest) = message.split_once("index: ")?;
    let index = rest.split_whitespace().next()?;
    Some(if index.starts_with("username") {
        UniqueField::Username
    } else if index.starts_with("emails.address") {
        UniqueField::Email
    } else {
        UniqueField::Other
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_map_to_fields() {
        let msg = |i: &str| {
            format!("E11000 duplicate key error collection: db.users index: {i} dup key: {{ x: \"y\" }}")
        };
        assert_eq!(
            duplicate_field(&msg("username_1")),
            Some(UniqueField::Username)
        );
        assert_eq!(
            duplicate_field(&msg("emails.address_1")),
            Some(UniqueField::Email)
        );
        assert_eq!(duplicate_field(&msg("_id_")), Some(UniqueField::Other));
        assert_eq!(duplicate_field("E11000 Duplicate Key Error"), None);
    }
}

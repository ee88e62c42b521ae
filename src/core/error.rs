//! Errors of the core operations, mapped by each dialect to its own shape.

use crate::store::StoreError;

/// What can go wrong in a core operation beyond the caller's own mistakes,
/// which the dialects check and report themselves.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The store failed or is unreachable: answer 503, never a raw error.
    #[error(transparent)]
    Store(StoreError),
    /// A blocking task (password hashing) could not run.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CoreError {
    /// The store is unreachable (for tests and tools that need the failure).
    pub fn unavailable(detail: &str) -> Self {
        CoreError::Store(StoreError::Unavailable(detail.to_string()))
    }

    /// Whether the failure is the store being unreachable (503) rather than a bug (500).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CoreError::Store(StoreError::Unavailable(_)))
    }
}

/// Every store failure reaching the core is counted (`tokend_store_errors_total`).
impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Duplicate(_) => "duplicate",
            StoreError::Internal(_) => "internal",
        };
        super::metrics::METRICS.store_errors.inc(&[kind]);
        CoreError::Store(e)
    }
}

//! [`StoreError`]: state or the archive could not be read or written.

use super::CoreError;

/// A store failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, read or written.
    #[error("state store: {0}")]
    Database(String),
    /// Stored data could not be decoded.
    #[error("state store holds unreadable data: {0}")]
    Corrupt(String),
    /// The database is busy (another run holds it); retry later.
    #[error("state store is busy: {0}")]
    Busy(String),
    /// The audit archive could not be read or written.
    #[error("audit archive: {0}")]
    Archive(String),
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        let retryable = matches!(e, StoreError::Busy(_));
        CoreError::Store {
            message: e.to_string(),
            retryable,
        }
    }
}

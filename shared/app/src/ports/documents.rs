//! Documents written for people to read (the monthly statements): kept beside the audit archive, never in it (the
//! archive's prefix is a table Athena reads), and written once, so that a retried or overlapping scheduled run
//! leaves the first copy as it was sent.

use async_trait::async_trait;

use crate::error::StoreError;

/// Write-once document storage (a directory locally, the archive's bucket under `statements/` on AWS).
#[async_trait]
pub trait Documents: Send + Sync {
    /// Writes `bytes` at `key` (a relative path, `/`-separated) unless a document is there. True when it wrote.
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError>;
}

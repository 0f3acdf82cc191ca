//! ConnectWise PSA's callback signing keys: HTTP in production, a table in tests.

/// Fetches the key a ConnectWise callback is signed with.
#[async_trait::async_trait]
pub trait SigningKeys: Send + Sync {
    /// The `signing_key` served at `url` (already checked to be on the configured PSA host).
    async fn signing_key(&self, url: &str) -> Result<String, String>;
}

//! The probe port: the harmless reads `licensewatch doctor` proves a tenant's set-up with. Nothing here writes to
//! the tenant, except the test mail sent only when asked for.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::ApiError;

/// One Management Activity API subscription as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// Content type (`Audit.AzureActiveDirectory`...).
    pub content_type: String,
    /// `enabled` (else `disabled`).
    pub enabled: bool,
}

/// What doctor asks of a tenant.
#[async_trait]
pub trait TenantProbe: Send + Sync {
    /// Signs in to Graph: the roles the token carries when it is a readable JWT (`None`: an opaque token).
    async fn sign_in(&self) -> Result<Option<Vec<String>>, ApiError>;
    /// A Graph GET (relative to `/v1.0/`) whose answer is read and discarded.
    async fn read(&self, relative: &str) -> Result<(), ApiError>;
    /// The Management Activity API subscriptions.
    async fn feeds(&self) -> Result<Vec<Feed>, ApiError>;
    /// Content blobs listed for `content_type` in the 24 hours before `now`.
    async fn recent_content(
        &self,
        content_type: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, ApiError>;
    /// Sends one test mail as `sender` to `to` (only with `doctor --send-test-mail`).
    async fn send_test_mail(&self, sender: &str, to: &str) -> Result<(), ApiError>;
}

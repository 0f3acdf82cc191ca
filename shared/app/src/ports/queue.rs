//! The message-queue port: where remediation requests and per-tenant run messages go on AWS (SQS). Delivery is at
//! least once, so every consumer is idempotent.

use async_trait::async_trait;

use crate::error::StoreError;

/// A durable queue of text messages.
#[async_trait]
pub trait MessageQueue: Send + Sync + std::fmt::Debug {
    /// Sends one message; returns once the queue has stored it.
    async fn send(&self, body: &str) -> Result<(), StoreError>;
    /// Sends every message, or returns an error (a retry may send some twice).
    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError>;
    /// Sends one message that consumers receive only after `delay` (SQS: at most 15 minutes).
    async fn send_after(&self, body: &str, delay: std::time::Duration) -> Result<(), StoreError>;
    /// How many messages wait (SQS's approximate count), asked of the queue itself: proves it is reachable.
    /// `None` where the queue cannot tell (in-process queues).
    async fn waiting(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
}

/// SQS's longest per-message delay.
pub const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(900);

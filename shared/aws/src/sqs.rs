//! SQS queues: remediation requests for reprocess-user, and one message per tenant for the scheduled fan-out.

use async_trait::async_trait;

use super::sdk_error;
use crate::error::StoreError;
use crate::ports::queue::MessageQueue;

/// One queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// The queue at `url`.
    pub fn new(conf: &aws_config::SdkConfig, url: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(conf),
            url: url.to_string(),
        }
    }
}

#[async_trait]
impl MessageQueue for SqsQueue {
    /// Sends one message durably (SQS acknowledges only after storing it redundantly).
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| sdk_error("sqs SendMessage", e))?;
        Ok(())
    }

    /// Sends many messages, ten per call; every message is sent or an error is returned (a retry may send some
    /// twice, which the consumers tolerate: remediations are idempotent by id and tenant runs are repeatable).
    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError> {
        for (n, chunk) in bodies.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{}", n * 10 + i))
                        .message_body(b)
                        .build()
                        .map_err(|e| StoreError::Database(format!("sqs batch entry: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| sdk_error("sqs SendMessageBatch", e))?;
            if let Some(f) = out.failed().first() {
                return Err(StoreError::Busy(format!(
                    "sqs SendMessageBatch: {} of {} messages refused ({}: {})",
                    out.failed().len(),
                    chunk.len(),
                    f.code(),
                    f.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn waiting(&self) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .map_err(|e| sdk_error("sqs GetQueueAttributes", e))?;
        Ok(out
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            })
            .and_then(|n| n.parse().ok()))
    }

    /// Sends one message with SQS's per-message delay (whole seconds, at most 900).
    async fn send_after(&self, body: &str, delay: std::time::Duration) -> Result<(), StoreError> {
        let seconds = delay.min(crate::ports::queue::MAX_DELAY).as_secs() as i32;
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(seconds)
            .send()
            .await
            .map_err(|e| sdk_error("sqs SendMessage", e))?;
        Ok(())
    }
}

impl SqsQueue {
    /// Receives up to ten messages (tests and tools; Lambda receives through its event source mapping).
    pub async fn receive(&self, wait_seconds: i32) -> Result<Vec<(String, String)>, StoreError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(wait_seconds)
            .send()
            .await
            .map_err(|e| sdk_error("sqs ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| {
                (
                    m.receipt_handle().unwrap_or_default().to_string(),
                    m.body().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| sdk_error("sqs DeleteMessage", e))?;
        Ok(())
    }
}

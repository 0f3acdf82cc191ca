//! In-memory fakes behind every port (feature `testing`), so that use cases are unit-tested in milliseconds
//! without the simulator, files or AWS: a directory and an audit feed fed with Graph- and Management-API-shaped
//! records, an archive, a message queue and a store. The store keeps the same promises as the real ones (the store
//! contract tests run against it too).

mod directory;
mod store;

pub use directory::{MemoryDirectory, MemoryFeed};
pub use store::MemoryStore;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ports::archive::AuditArchive;
use crate::ports::queue::MessageQueue;

/// Objects in memory; like S3 with `If-None-Match: *`, an object is never overwritten.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    write_takes: std::time::Duration,
}

impl MemoryArchive {
    /// An archive whose writes take `write_takes` each (a slow bucket).
    pub fn slow(write_takes: std::time::Duration) -> Self {
        Self {
            write_takes,
            ..Self::default()
        }
    }

    /// Every key, in order.
    pub(crate) fn keys_now(&self) -> Vec<String> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

#[async_trait]
impl AuditArchive for MemoryArchive {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        if !self.write_takes.is_zero() {
            tokio::time::sleep(self.write_takes).await;
        }
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if objects.contains_key(key) {
            return Ok(false);
        }
        objects.insert(key.to_string(), bytes);
        Ok(true)
    }

    async fn keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .keys_now()
            .into_iter()
            .filter(|k| k.starts_with(prefix) && crate::ports::archive::is_object_key(k))
            .collect())
    }

    async fn index_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let full = format!("{}{prefix}", crate::ports::archive::INDEX_PREFIX);
        Ok(self
            .keys_now()
            .into_iter()
            .filter(|k| k.starts_with(&full))
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError::Archive(format!("no object at {key}")))
    }
}

/// Messages in memory, in the order sent.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<String>>,
    /// Sent with a delay, not yet receivable: (body, delay).
    delayed: Mutex<Vec<(String, std::time::Duration)>>,
}

impl MemoryQueue {
    /// The delayed messages, with their delays (not yet receivable).
    pub fn delayed(&self) -> Vec<(String, std::time::Duration)> {
        self.delayed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes every delayed message receivable, as if their delays had passed.
    pub fn release_delayed(&self) {
        let due = std::mem::take(&mut *self.delayed.lock().unwrap_or_else(|p| p.into_inner()));
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(due.into_iter().map(|(body, _)| body));
    }

    /// Takes everything sent so far (a consumer receiving the messages).
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Everything sent so far.
    pub fn sent(&self) -> Vec<String> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl MessageQueue for MemoryQueue {
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(body.to_string());
        Ok(())
    }

    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError> {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bodies);
        Ok(())
    }

    async fn send_after(&self, body: &str, delay: std::time::Duration) -> Result<(), StoreError> {
        self.delayed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((body.to_string(), delay));
        Ok(())
    }
}

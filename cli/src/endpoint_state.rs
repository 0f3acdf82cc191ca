//! The HTTP endpoint's state, shared by its routes (`serve`'s remediation requests, `changes`' Graph notifications)
//! and their workers: here, so that neither route's module names the other for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use licensewatch_core::domain::change_notifications::Notification;
use licensewatch_core::error::StoreError;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::ports::queue::MessageQueue;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::change_notifications::{ChangeMessage, SubscriptionSettings};
use licensewatch_core::usecases::webhook::WebhookAuth;

/// The endpoint's state: the runtime, the webhook secrets and the change-notification route, each when
/// configured.
pub(crate) struct App {
    pub(crate) rt: Runtime,
    pub(crate) auth: Option<WebhookAuth>,
    pub(crate) changes: Option<Changes>,
    /// Service desks the worker comments outcomes in.
    pub(crate) desks: Vec<Box<dyn licensewatch_core::ports::channel::Channel>>,
}

/// Connection limits of the endpoint: a client that is slow or silent holds a connection (and a file descriptor)
/// for a bounded time, and only so many at once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The whole request head must arrive within this time; an idle keep-alive connection is closed after it.
    pub header_timeout: Duration,
    /// The body must arrive within this time once the head has.
    pub body_timeout: Duration,
    /// Connections served at once; more are closed at once (the operating system queues the rest).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            max_connections: 256,
        }
    }
}

/// The queue between the endpoint and the worker, in this process: what is waiting, merged per tenant and user
/// (a user named twice is read once), so memory is bounded by the users that changed, however many notifications
/// arrive. Lost with the process: Graph never says it missed notifications on users, so the scheduled checks cover
/// what a restart drops; on AWS, SQS keeps it. Clones share the queue.
#[derive(Debug, Default, Clone)]
pub(crate) struct LocalQueue {
    waiting: Arc<Mutex<BTreeMap<String, Waiting>>>,
    pub(crate) arrived: Arc<tokio::sync::Notify>,
}

/// One tenant's waiting notifications.
#[derive(Debug, Default)]
struct Waiting {
    /// The last change notification per user.
    changes: BTreeMap<String, Notification>,
    /// Lifecycle notifications, each once.
    lifecycle: Vec<Notification>,
}

impl LocalQueue {
    fn merge(&self, message: ChangeMessage) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        let w = waiting.entry(message.tenant_id).or_default();
        for n in message.notifications {
            match &n {
                Notification::Change { user_id, .. } => {
                    w.changes.insert(user_id.clone(), n);
                }
                // A change notification waiting for the same user reads it anyway (and may ask again).
                Notification::Reread { user_id, .. } => {
                    w.changes.entry(user_id.clone()).or_insert(n);
                }
                Notification::Lifecycle { .. } if !w.lifecycle.contains(&n) => w.lifecycle.push(n),
                Notification::Lifecycle { .. } => {}
            }
        }
    }

    /// Everything waiting, per tenant (lifecycle first).
    pub(crate) fn take(&self) -> BTreeMap<String, Vec<Notification>> {
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
        waiting
            .into_iter()
            .map(|(tenant, w)| {
                let mut all = w.lifecycle;
                all.extend(w.changes.into_values());
                (tenant, all)
            })
            .collect()
    }
}

#[async_trait]
impl MessageQueue for LocalQueue {
    async fn send(&self, body: &str) -> Result<(), StoreError> {
        let message: ChangeMessage = serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("a change message: {e}")))?;
        self.merge(message);
        self.arrived.notify_one();
        Ok(())
    }

    async fn send_all(&self, bodies: &[String]) -> Result<(), StoreError> {
        for b in bodies {
            self.send(b).await?;
        }
        Ok(())
    }

    /// Merged once the delay has passed (a process that stops first loses it, as it loses everything waiting:
    /// the scheduled run reads the tenant anyway).
    async fn send_after(&self, body: &str, delay: Duration) -> Result<(), StoreError> {
        let message: ChangeMessage = serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("a change message: {e}")))?;
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.merge(message);
            me.arrived.notify_one();
        });
        Ok(())
    }
}

/// The notification route's state.
pub(crate) struct Changes {
    pub(crate) settings: SubscriptionSettings,
    /// Where the endpoint puts what it admits (SQS when `LICENSEWATCH_CHANGE_QUEUE_URL` is set).
    pub(crate) queue: Arc<dyn MessageQueue>,
    /// The in-process queue the local worker reads (unused when the queue is SQS).
    pub(crate) local: Arc<LocalQueue>,
    /// Alert channels (mail, webhooks), built once.
    pub(crate) channels: Vec<Box<dyn Channel>>,
}

impl Changes {
    /// From the runtime's configuration; `None` when change notifications are not configured.
    pub(crate) async fn from_runtime(
        rt: &Runtime,
        console: Option<Box<dyn Channel>>,
    ) -> Result<Option<Self>, String> {
        let Some(settings) = (rt.subscription_settings(None).await).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let channels = rt.notify_channels(console).map_err(|e| e.to_string())?;
        let local = Arc::new(LocalQueue::default());
        let queue: Arc<dyn MessageQueue> = match &rt.change_queue {
            Some(q) => q.clone(),
            None => local.clone(),
        };
        Ok(Some(Self {
            settings,
            queue,
            local,
            channels,
        }))
    }
}

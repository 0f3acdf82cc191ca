//! Many tenants from one deployment: the runtimes of the policy's `[[tenants]]`, built once per process and
//! shared by every invocation, and the fan-out that turns one scheduled run into one queued run per tenant, so that
//! each tenant has its own invocation, retries and dead letters.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Runtime;
use crate::domain::tenant_status::Job;
use crate::error::CoreError;
use crate::ports::queue::MessageQueue;

/// A tenant-run message on the fan-out queue: `{"tenant_id": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TenantMessage {
    /// The tenant to run.
    pub tenant_id: String,
}

/// The configured tenant's runtime and, built on first use, those of the other tenants the policy lists.
pub struct TenantRuntimes {
    /// The tenant the deployment is configured for.
    pub home: Arc<Runtime>,
    others: tokio::sync::Mutex<HashMap<String, Arc<Runtime>>>,
}

impl TenantRuntimes {
    /// Starts from the configured tenant's runtime.
    pub fn new(home: Runtime) -> Self {
        Self {
            home: Arc::new(home),
            others: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The runtime for `tenant_id` (the home runtime for its own tenant). A tenant the policy does not list is
    /// refused, permanently.
    pub async fn get(&self, tenant_id: &str) -> Result<Arc<Runtime>, CoreError> {
        if tenant_id.eq_ignore_ascii_case(&self.home.microsoft.tenant_id) {
            return Ok(self.home.clone());
        }
        let key = tenant_id.to_ascii_lowercase();
        let mut others = self.others.lock().await;
        if let Some(rt) = others.get(&key) {
            return Ok(rt.clone());
        }
        let rt = Arc::new(self.home.for_tenant(tenant_id).await?);
        others.insert(key, rt.clone());
        Ok(rt)
    }
}

impl TenantRuntimes {
    /// The runtime for `tenant_id`, for a run of `job`: when it cannot be built (the tenant's secret unreadable,
    /// say), that run's failure is recorded for the tenant as any other.
    pub async fn get_for(&self, tenant_id: &str, job: Job) -> Result<Arc<Runtime>, CoreError> {
        let rt = self.get(tenant_id).await;
        if let Err(e) = &rt {
            self.home.record_run(job, tenant_id, Err(e)).await;
        }
        rt
    }
}

/// A scheduled run's fan-out: when the deployment has a fan-out queue and the policy lists tenants, queues one run
/// per tenant and returns how many; otherwise `None`, and the caller runs its own tenant.
pub async fn fan_out(rt: &Runtime) -> Result<Option<usize>, CoreError> {
    let Some(queue) = rt.tenant_queue.as_deref() else {
        return Ok(None);
    };
    if rt.policy.tenants.is_empty() {
        return Ok(None);
    }
    send_runs(queue, rt.policy.tenants.iter().map(|t| t.id.as_str()))
        .await
        .map(Some)
}

async fn send_runs<'a>(
    queue: &dyn MessageQueue,
    tenants: impl Iterator<Item = &'a str>,
) -> Result<usize, CoreError> {
    let bodies = tenants
        .map(|t| {
            serde_json::to_string(&TenantMessage {
                tenant_id: t.to_string(),
            })
            .map_err(|e| CoreError::BadInput(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    queue.send_all(&bodies).await?;
    tracing::info!(tenants = bodies.len(), "fanned out one run per tenant");
    Ok(bodies.len())
}

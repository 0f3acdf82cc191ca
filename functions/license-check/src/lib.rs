//! license-check Lambda handler: an EventBridge event (a schedule, or an event whose `detail` names `tenant_id`) or
//! an SQS batch of tenant messages (the many-tenant fan-out) → the license-check use case → a small JSON summary.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::check_licenses::{BTreeCounts, CaseCounts, check_licenses};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the event's `detail` may carry.
#[derive(Debug, Default, Deserialize)]
pub struct Detail {
    /// Run this tenant (fan-out); absent = the configured tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// The handler's answer (visible in logs and to a direct invoke).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Tenant.
    pub tenant_id: String,
    /// `ok` or `failed` (a permanent failure: fix configuration or permissions).
    pub status: String,
    /// Users read.
    pub users_scanned: usize,
    /// Findings per severity.
    pub counts: BTreeCounts,
    /// Findings per kind.
    pub findings_by_kind: BTreeMap<String, usize>,
    /// Grace cases.
    pub grace_cases: CaseCounts,
    /// Tenant messages queued by a fan-out run.
    #[serde(default)]
    pub fanned_out: usize,
    /// Why it failed.
    pub error: Option<String>,
}

/// Everything the handler keeps between invocations.
pub struct Deps {
    /// The configured tenant's runtime.
    pub rt: Runtime,
    /// Runtimes of other tenants met through the fan-out, built once per cold start.
    pub tenants: tokio::sync::Mutex<HashMap<String, Arc<Runtime>>>,
}

impl Deps {
    /// Wraps a runtime.
    pub fn new(rt: Runtime) -> Self {
        Self {
            rt,
            tenants: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

/// Dispatches on the event shape: an SQS batch of tenant messages, or an EventBridge event.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| CoreError::BadInput(format!("not an SQS event: {e}")))?;
        return to_json(&handle_tenant_messages(deps, event).await);
    }
    let event: EventBridgeEvent<Value> = serde_json::from_value(payload)
        .map_err(|e| CoreError::BadInput(format!("not an EventBridge event: {e}")))?;
    let detail: Detail = serde_json::from_value(event.detail.clone()).unwrap_or_default();
    match detail.tenant_id {
        Some(t) if !t.eq_ignore_ascii_case(&deps.rt.microsoft.tenant_id) => {
            let rt = runtime_for(deps, &t).await?;
            to_json(&handle(&rt, event).await?)
        }
        _ => to_json(&handle(&deps.rt, event).await?),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Value, CoreError> {
    serde_json::to_value(value).map_err(|e| CoreError::BadInput(e.to_string()))
}

async fn runtime_for(deps: &Deps, tenant_id: &str) -> Result<Arc<Runtime>, CoreError> {
    let key = tenant_id.to_ascii_lowercase();
    let mut cache = deps.tenants.lock().await;
    if let Some(rt) = cache.get(&key) {
        return Ok(rt.clone());
    }
    let rt = Arc::new(deps.rt.for_tenant(tenant_id).await?);
    cache.insert(key, rt.clone());
    Ok(rt)
}

/// A tenant-run message from the fan-out queue: `{"tenant_id": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TenantMessage {
    /// The tenant to check.
    pub tenant_id: String,
}

/// Runs one tenant per message. Retryable failures are reported back so that SQS redelivers only those messages
/// (and, after the queue's receive limit, moves them to the dead-letter queue); permanent ones are logged.
pub async fn handle_tenant_messages(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message: TenantMessage = match serde_json::from_str(
            record.body.as_deref().unwrap_or(""),
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "unreadable tenant message dropped (expected {{\"tenant_id\": ...}})");
                continue;
            }
        };
        let span = tracing::info_span!("tenant", tenant = %message.tenant_id);
        let _guard = span.enter();
        let outcome = match runtime_for(deps, &message.tenant_id).await {
            Ok(rt) => run(&rt).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => {}
            Err(e) if e.is_retryable() && !id.is_empty() => {
                tracing::warn!(error = %e, "tenant run will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Err(e) => tracing::error!(error = %e, kind = e.kind(), "tenant run failed permanently"),
        }
    }
    response
}

/// Handles one EventBridge event for `rt`'s tenant. A schedule with a tenant queue configured and `[[tenants]]`
/// listed fans out instead: one message per tenant, so each runs in its own invocation. Transient failures are
/// returned as `Err` so that the scheduler retries; permanent ones are logged and reported in the summary, because
/// retrying them cannot help.
pub async fn handle(
    rt: &Runtime,
    event: EventBridgeEvent<serde_json::Value>,
) -> Result<Summary, CoreError> {
    let detail: Detail = serde_json::from_value(event.detail).unwrap_or_default();
    if let Some(t) = &detail.tenant_id
        && !t.eq_ignore_ascii_case(&rt.microsoft.tenant_id)
    {
        return Err(CoreError::BadInput(format!(
            "detail.tenant_id '{t}' is not the tenant of this runtime ({})",
            rt.microsoft.tenant_id
        )));
    }
    if detail.tenant_id.is_none()
        && let Some(queue) = &rt.tenant_queue
        && !rt.policy.tenants.is_empty()
    {
        let bodies = rt
            .policy
            .tenants
            .iter()
            .map(|t| {
                serde_json::to_string(&TenantMessage {
                    tenant_id: t.id.clone(),
                })
                .map_err(|e| CoreError::BadInput(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        queue.send_all(&bodies).await?;
        tracing::info!(tenants = bodies.len(), "fanned out one run per tenant");
        let mut summary = Summary::empty(&rt.microsoft.tenant_id, "fanned_out");
        summary.fanned_out = bodies.len();
        return Ok(summary);
    }
    match run(rt).await {
        Ok(summary) => Ok(summary),
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => {
            tracing::error!(error = %e, kind = e.kind(), "license-check failed permanently");
            let mut summary = Summary::empty(&rt.microsoft.tenant_id, "failed");
            summary.error = Some(e.to_string());
            Ok(summary)
        }
    }
}

/// One license-check run for `rt`'s tenant, with its metrics.
async fn run(rt: &Runtime) -> Result<Summary, CoreError> {
    let tenant = rt.tenant_run();
    let throttles = licensewatch_core::adapters::http::throttles_seen();
    let report = check_licenses(&rt.check_deps(), &tenant, &rt.policy, &|_| {}).await?;
    let mut by_kind = BTreeMap::new();
    for f in &report.findings {
        *by_kind.entry(f.kind().to_string()).or_insert(0) += 1;
    }
    let mut metrics = Metrics::new("license-check", &report.tenant_id);
    for (kind, count) in &by_kind {
        metrics.count_with("Findings", *count, ("Kind", kind.as_str()));
    }
    metrics.count("UsersScanned", report.users_scanned);
    metrics.count("RemediationsQueued", report.remediations_queued);
    metrics.count(
        "GraphThrottles",
        (licensewatch_core::adapters::http::throttles_seen() - throttles) as usize,
    );
    metrics.emit();
    Ok(Summary {
        tenant_id: report.tenant_id,
        status: "ok".into(),
        users_scanned: report.users_scanned,
        counts: report.counts,
        findings_by_kind: by_kind,
        grace_cases: report.grace_cases,
        fanned_out: 0,
        error: None,
    })
}

impl Summary {
    fn empty(tenant_id: &str, status: &str) -> Self {
        Self {
            tenant_id: tenant_id.to_string(),
            status: status.to_string(),
            users_scanned: 0,
            counts: BTreeCounts::default(),
            findings_by_kind: BTreeMap::new(),
            grace_cases: CaseCounts::default(),
            fanned_out: 0,
            error: None,
        }
    }
}

/// A use-case error as Lambda reports it: `Retryable` or `Permanent`, with a message free of secrets.
#[derive(Debug)]
pub struct Failure(pub CoreError);

impl From<Failure> for lambda_runtime::Diagnostic {
    fn from(f: Failure) -> Self {
        lambda_runtime::Diagnostic {
            error_type: f.0.kind().to_string(),
            error_message: f.0.to_string(),
        }
    }
}

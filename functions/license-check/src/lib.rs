//! license-check Lambda handler: an EventBridge event (a schedule, or a per-tenant fan-out message whose `detail`
//! names `tenant_id`) → the license-check use case → a small JSON summary.

use std::collections::BTreeMap;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::check_licenses::{BTreeCounts, CaseCounts, check_licenses};
use serde::{Deserialize, Serialize};

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
    /// Why it failed.
    pub error: Option<String>,
}

/// Handles one event. Transient failures are returned as `Err` so that the scheduler retries; permanent ones are
/// logged and reported in the summary, because retrying them cannot help.
pub async fn handle(
    rt: &Runtime,
    event: EventBridgeEvent<serde_json::Value>,
) -> Result<Summary, CoreError> {
    let detail: Detail = serde_json::from_value(event.detail).unwrap_or_default();
    let mut tenant = rt.tenant_run();
    if let Some(t) = detail
        .tenant_id
        .filter(|t| !t.eq_ignore_ascii_case(&tenant.tenant_id))
    {
        // Each tenant runs in its own invocation with its own clients; this one is configured for another.
        return Err(CoreError::BadInput(format!(
            "detail.tenant_id '{t}' is not the tenant this function is configured for ({})",
            tenant.tenant_id
        )));
    }
    tenant.tenant_id = rt.microsoft.tenant_id.clone();
    match check_licenses(&rt.check_deps(), &tenant, &rt.policy, &|_| {}).await {
        Ok(report) => {
            let mut by_kind = BTreeMap::new();
            for f in &report.findings {
                *by_kind.entry(f.kind().to_string()).or_insert(0) += 1;
            }
            Ok(Summary {
                tenant_id: report.tenant_id,
                status: "ok".into(),
                users_scanned: report.users_scanned,
                counts: report.counts,
                findings_by_kind: by_kind,
                grace_cases: report.grace_cases,
                error: None,
            })
        }
        Err(e) if e.is_retryable() => Err(e),
        Err(e) => {
            tracing::error!(error = %e, kind = e.kind(), "license-check failed permanently");
            Ok(Summary {
                tenant_id: tenant.tenant_id,
                status: "failed".into(),
                users_scanned: 0,
                counts: BTreeCounts::default(),
                findings_by_kind: BTreeMap::new(),
                grace_cases: CaseCounts::default(),
                error: Some(e.to_string()),
            })
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

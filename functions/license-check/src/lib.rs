//! license-check Lambda handler: an EventBridge event (a schedule, or an event whose `detail` names `tenant_id`) or
//! an SQS batch of tenant messages (the many-tenant fan-out) → the license-check use case → a small JSON summary.
//!
//! Real-time detection lives here too, because it is license-check's rules on fewer users: an HTTP request
//! (function URL) is Graph's change-notification endpoint (admitted notifications go to the change queue); an SQS
//! message of Graph changes is a targeted re-check; a schedule whose `detail` is `{"action": "keep-subscriptions",
//! "notification_url": ...}` creates or renews the Graph subscriptions; one whose `detail` is `{"action":
//! "statement"}` (the 1st of each month) writes every customer's licence statement to the bucket.

use std::collections::BTreeMap;

mod notifications;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use licensewatch_core::adapters::http::throttles_seen;
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
pub use licensewatch_core::runtime::tenants::TenantMessage;
use licensewatch_core::runtime::tenants::{TenantRuntimes, fan_out};
use licensewatch_core::usecases::check_licenses::{BTreeCounts, CaseCounts, check_licenses};
pub use licensewatch_lambda::Failure;
use licensewatch_lambda::{is_http, is_sqs, parse_event, sqs_batch, to_json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::Instrument;

/// What the event's `detail` may carry.
#[derive(Debug, Default, Deserialize)]
pub struct Detail {
    /// Run this tenant (fan-out); absent = the configured tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// `keep-subscriptions`: the renewal timer, instead of a check.
    #[serde(default)]
    pub action: Option<String>,
    /// For `keep-subscriptions`: the public URL Graph posts to (the function URL).
    #[serde(default)]
    pub notification_url: Option<String>,
    /// For `statement`: the month stated, `YYYY-MM` (absent: the month before this one).
    #[serde(default)]
    pub month: Option<String>,
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

/// Everything the handler keeps between invocations: the configured tenant's runtime and those of the tenants met
/// through the fan-out.
pub type Deps = TenantRuntimes;

/// Dispatches on the event shape: `{"doctor": true}`, an HTTP request (change notifications), an SQS batch (tenant
/// runs, Graph changes), or an EventBridge event.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if licensewatch_lambda::is_doctor(&payload) {
        use licensewatch_core::domain::doctor::Job as DoctorJob;
        return licensewatch_lambda::doctor_event(deps, DoctorJob::LicenseCheck, &payload).await;
    }
    if is_http(&payload) {
        return handle_http_event(deps, payload).await;
    }
    if is_sqs(&payload) {
        let event: SqsEvent = parse_event(payload, "an SQS event")?;
        return to_json(&handle_tenant_messages(deps, event).await);
    }
    let event: EventBridgeEvent<Value> = parse_event(payload, "an EventBridge event")?;
    let detail: Detail = serde_json::from_value(event.detail.clone()).unwrap_or_default();
    if let Some(action) = &detail.action {
        return match action.as_str() {
            "keep-subscriptions" => {
                to_json(&notifications::keep_all(deps, detail.notification_url.as_deref()).await?)
            }
            "statement" => to_json(&statements(&deps.home, detail.month.as_deref()).await?),
            other => Err(CoreError::BadInput(format!(
                "detail.action '{other}': the actions are keep-subscriptions and statement"
            ))),
        };
    }
    let rt = match &detail.tenant_id {
        Some(t) => deps.get(t).await?,
        None => deps.home.clone(),
    };
    to_json(&handle(&rt, event).await?)
}

/// The monthly schedule: every customer's statement of the month (the previous one unless `month` names one)
/// written once each under the archive bucket's `statements/` prefix; a retried invocation writes only what is
/// missing.
pub async fn statements(
    rt: &Runtime,
    month: Option<&str>,
) -> Result<licensewatch_core::usecases::statement::Published, CoreError> {
    use licensewatch_core::domain::statement::Month;
    use licensewatch_core::usecases::statement::{fleet_tenants, publish};
    let month = match month {
        Some(m) => {
            Month::parse(m).map_err(|e| CoreError::BadInput(format!("detail.month: {e}")))?
        }
        None => Month::previous(rt.clock.now()),
    };
    let tenants = fleet_tenants(&rt.policy, &rt.microsoft.tenant_id);
    let documents = rt.documents()?;
    publish(
        &rt.statement_deps(),
        documents.as_ref(),
        &tenants,
        month,
        &rt.policy,
    )
    .await
}

/// An HTTP request: Graph's change notifications (function URL).
pub async fn handle_http_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    let request: ApiGatewayV2httpRequest = parse_event(payload, "an HTTP event")?;
    to_json(&notifications::handle_http(&deps.home, request).await)
}

/// Runs one tenant per tenant message; the Graph changes of the batch are processed together, one re-check per
/// tenant (a bulk removal arrives as several notification POSTs: one re-check sees it whole). Only retryable
/// failures are redelivered.
pub(crate) async fn handle_tenant_messages(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let (changes, runs) = notifications::split(event);
    let mut response = notifications::process_records(deps, changes).await;
    let runs = sqs_batch(runs, "tenant run", async |message: TenantMessage| {
        let span = tracing::info_span!("tenant", tenant = %message.tenant_id);
        async {
            let rt = deps.get_for(&message.tenant_id, Job::LicenseCheck).await?;
            run(&rt).await.map(|_| ())
        }
        .instrument(span)
        .await
    })
    .await;
    response
        .batch_item_failures
        .extend(runs.batch_item_failures);
    response
}

/// Handles one EventBridge event for `rt`'s tenant. A schedule with a tenant queue configured and `[[tenants]]`
/// listed fans out instead: one message per tenant, so each runs in its own invocation. Transient failures are
/// returned as `Err` so that the scheduler retries; permanent ones are logged and reported in the summary, because
/// retrying them cannot help.
pub async fn handle(rt: &Runtime, event: EventBridgeEvent<Value>) -> Result<Summary, CoreError> {
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
        && let Some(n) = fan_out(rt).await?
    {
        let mut summary = Summary::empty(&rt.microsoft.tenant_id, "fanned_out");
        summary.fanned_out = n;
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

/// One license-check run for `rt`'s tenant, with its metrics, recorded for the tenant (unless another run held it).
async fn run(rt: &Runtime) -> Result<Summary, CoreError> {
    let tenant = rt.tenant_run();
    let throttles = throttles_seen();
    let report = check_licenses(&rt.check_deps(), &tenant, &rt.policy, &|_| {}).await;
    if !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        rt.record_run(
            Job::LicenseCheck,
            &tenant.tenant_id,
            report.as_ref().map(|_| ()),
        )
        .await;
    }
    let report = report?;
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
    metrics.count("GraphThrottles", (throttles_seen() - throttles) as usize);
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

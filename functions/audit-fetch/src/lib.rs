//! audit-fetch Lambda handler: an EventBridge schedule (e.g. every 15 minutes) → the audit-fetch use case → summary.
//! With `[[tenants]]` and a tenant queue, the schedule fans out instead (one message per tenant, as license-check
//! does) and each tenant's audit log is fetched in its own invocation from its SQS message, into its own partition
//! of the archive and state, with its own retries and dead letters.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::runtime::tenants::TenantRuntimes;
use licensewatch_core::usecases::fetch_audit::{AuditReport, fetch_audit};
pub use licensewatch_lambda::Failure;
use licensewatch_lambda::per_tenant;
use serde_json::Value;

/// Everything the handler keeps between invocations: the configured tenant's runtime and the others met.
pub type Deps = TenantRuntimes;

/// Dispatches on the event shape: an SQS batch of tenant messages, or the schedule (which may fan out). Cursors only
/// move after the archive writes, so a redelivered message goes on where the failed run stopped.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if licensewatch_lambda::is_doctor(&payload) {
        use licensewatch_core::domain::doctor::Job as DoctorJob;
        return licensewatch_lambda::doctor_event(deps, DoctorJob::AuditFetch, &payload).await;
    }
    per_tenant(deps, payload, Job::AuditFetch, async |rt| {
        handle(rt, EventBridgeEvent::default()).await
    })
    .await
}

/// Handles one scheduled event for `rt`'s tenant. A failed run returns `Err` when a retry can help: cursors only
/// move after the archive write, so the retry (or the next schedule) continues where this one stopped.
pub async fn handle(
    rt: &Runtime,
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<AuditReport, CoreError> {
    let throttles = licensewatch_core::adapters::http::throttles_seen();
    let report = fetch_audit(&rt.audit_deps(), &rt.policy).await;
    if !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        let tenant = &rt.microsoft.tenant_id;
        rt.record_run(Job::AuditFetch, tenant, report.as_ref().map(|_| ()))
            .await;
    }
    let report = report?;
    let mut metrics = Metrics::new("audit-fetch", &rt.microsoft.tenant_id);
    metrics.count("RecordsArchived", report.records_archived);
    metrics.count("DuplicatesSkipped", report.duplicates_skipped);
    metrics.count("BlobsFetched", report.blobs_fetched);
    metrics.count("LicenseEvents", report.license_events);
    metrics.count("AuditGaps", report.gaps.len());
    metrics.count(
        "GraphThrottles",
        (licensewatch_core::adapters::http::throttles_seen() - throttles) as usize,
    );
    metrics.emit();
    tracing::info!(
        records_archived = report.records_archived,
        duplicates_skipped = report.duplicates_skipped,
        blobs_fetched = report.blobs_fetched,
        license_events = report.license_events,
        gaps = report.gaps.len(),
        "audit-fetch done"
    );
    Ok(report)
}

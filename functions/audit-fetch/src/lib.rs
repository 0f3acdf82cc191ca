//! audit-fetch Lambda handler: an EventBridge schedule (e.g. every 15 minutes) → the audit-fetch use case → summary.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::fetch_audit::{AuditReport, fetch_audit};
pub use licensewatch_lambda::Failure;

/// Handles one scheduled event. A failed run returns `Err` when a retry can help: cursors only move after the
/// archive write, so the retry (or the next schedule) continues where this one stopped.
pub async fn handle(
    rt: &Runtime,
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<AuditReport, CoreError> {
    let throttles = licensewatch_core::adapters::http::throttles_seen();
    let report = fetch_audit(&rt.audit_deps(), &rt.policy).await?;
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

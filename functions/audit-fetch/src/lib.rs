//! audit-fetch Lambda handler: an EventBridge schedule (e.g. every 15 minutes) → the audit-fetch use case → summary.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::fetch_audit::{AuditReport, fetch_audit};

/// Handles one scheduled event. A failed run returns `Err` when a retry can help: cursors only move after the
/// archive write, so the retry (or the next schedule) continues where this one stopped.
pub async fn handle(
    rt: &Runtime,
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<AuditReport, CoreError> {
    let report = fetch_audit(&rt.audit_deps(), &rt.policy).await?;
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

/// A use-case error as Lambda reports it.
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

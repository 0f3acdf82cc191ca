//! grace-period-notify Lambda handler: a daily EventBridge schedule → the notify use case → a summary.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
pub use licensewatch_lambda::Failure;
use serde::{Deserialize, Serialize};

/// The handler's answer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Tenant.
    pub tenant_id: String,
    /// Notices delivered.
    pub sent: usize,
    /// Notices due but sent earlier.
    pub skipped_already_sent: usize,
    /// Channels that failed (their notices stay due for the next run).
    pub failed_channels: Vec<String>,
}

/// Handles one scheduled event. Channel failures are reported, not raised: the ledger keeps their notices due, and
/// a retry of the whole invocation would only resend what already went out elsewhere.
pub async fn handle(
    rt: &Runtime,
    channels: &[Box<dyn Channel>],
    _event: EventBridgeEvent<serde_json::Value>,
) -> Result<Summary, CoreError> {
    let tenant = rt.tenant_run().tenant_id;
    let report = notify_grace_period(&rt.notify_deps(channels), &tenant, &rt.policy, false).await?;
    for f in &report.failed {
        tracing::error!(channel = %f.channel, notices = f.notices, error = %f.error, "notice channel failed");
    }
    let mut metrics = Metrics::new("grace-period-notify", &tenant);
    metrics.count("NoticesSent", report.sent.len());
    metrics.count("NoticesSkippedAlreadySent", report.skipped_already_sent);
    metrics.count("NoticeChannelFailures", report.failed.len());
    metrics.emit();
    Ok(Summary {
        tenant_id: tenant,
        sent: report.sent.len(),
        skipped_already_sent: report.skipped_already_sent,
        failed_channels: report.failed.iter().map(|f| f.channel.clone()).collect(),
    })
}

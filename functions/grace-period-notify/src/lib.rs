//! grace-period-notify Lambda handler: a daily EventBridge schedule → the notify use case → a summary. With
//! `[[tenants]]` and a tenant queue, the schedule fans out instead (one message per tenant, as license-check does)
//! and each tenant is notified in its own invocation from its SQS message, with its own retries and dead letters.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::runtime::tenants::TenantRuntimes;
use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
pub use licensewatch_lambda::Failure;
use licensewatch_lambda::per_tenant;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the handler keeps between invocations: the configured tenant's runtime and the others met.
pub type Deps = TenantRuntimes;

/// Dispatches on the event shape: an SQS batch of tenant messages, or the schedule (which may fan out). Each tenant is
/// notified through its own channels (its `[[tenants]]` entry may name its own admins).
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if licensewatch_lambda::is_doctor(&payload) {
        use licensewatch_core::domain::doctor::Job as DoctorJob;
        return licensewatch_lambda::doctor_event(deps, DoctorJob::GracePeriodNotify, &payload)
            .await;
    }
    per_tenant(deps, payload, Job::GracePeriodNotify, async |rt| {
        let channels = rt.notify_channels(None)?;
        handle(rt, &channels, EventBridgeEvent::default()).await
    })
    .await
}

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
    let report = notify_grace_period(&rt.notify_deps(channels), &tenant, &rt.policy, false).await;
    if !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        rt.record_run(Job::GracePeriodNotify, &tenant, report.as_ref().map(|_| ()))
            .await;
    }
    let report = report?;
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

//! grace-period-notify Lambda handler: a daily EventBridge schedule → the notify use case → a summary. With
//! `[[tenants]]` and a tenant queue, the schedule fans out instead (one message per tenant, as license-check does)
//! and each tenant is notified in its own invocation from its SQS message, with its own retries and dead letters.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::runtime::tenants::{TenantMessage, TenantRuntimes, fan_out};
use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
pub use licensewatch_lambda::Failure;
use licensewatch_lambda::{is_sqs, parse_event, sqs_batch, to_json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Everything the handler keeps between invocations: the configured tenant's runtime and the others met.
pub type Deps = TenantRuntimes;

/// Dispatches on the event shape: an SQS batch of tenant messages, or the schedule.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if is_sqs(&payload) {
        let event: SqsEvent = parse_event(payload, "an SQS event")?;
        return to_json(&handle_tenant_messages(deps, event).await);
    }
    let event: EventBridgeEvent<Value> = parse_event(payload, "an EventBridge event")?;
    if let Some(n) = fan_out(&deps.home).await? {
        tracing::info!(tenants = n, "grace-period-notify fanned out");
        return to_json(&serde_json::json!({"status": "fanned_out", "fanned_out": n}));
    }
    let channels = deps.home.notify_channels(None)?;
    to_json(&handle(&deps.home, &channels, event).await?)
}

/// Notifies one tenant per message (its own channels: its `[[tenants]]` entry may name its own admins); only
/// retryable failures are redelivered.
pub async fn handle_tenant_messages(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    sqs_batch(event, "tenant notify", async |message: TenantMessage| {
        let rt = deps
            .get_for(&message.tenant_id, Job::GracePeriodNotify)
            .await?;
        let channels = rt.notify_channels(None)?;
        handle(&rt, &channels, EventBridgeEvent::default())
            .await
            .map(|_| ())
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

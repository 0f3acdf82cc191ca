//! The change-notification triggers of license-check: the endpoint (function URL), the worker (change queue) and
//! the renewal timer.

use std::collections::BTreeMap;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use licensewatch_core::domain::change_notifications::Notification;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::change_notifications::{
    ChangeMessage, UpkeepReport, endpoint, follow_up, keep_subscription, needs_settings, process,
};
use licensewatch_lambda::{HttpEvent, text_response};
use tracing::Instrument;

use crate::Deps;

/// The notification endpoint. Never lets an error escape: Graph only sees a status.
pub(crate) async fn handle_http(
    rt: &Runtime,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let client_state = match rt.client_state() {
        Ok(Some(c)) => c,
        Ok(None) => {
            return text_response(
                404,
                "text/plain",
                "change notifications are not configured".into(),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "change notifications are misconfigured");
            return text_response(500, "text/plain", "misconfigured".into());
        }
    };
    let Some(queue) = rt.change_queue.as_deref() else {
        tracing::error!("LICENSEWATCH_CHANGE_QUEUE_URL is not set: notifications cannot be queued");
        return text_response(503, "text/plain", "no change queue".into());
    };
    let event = HttpEvent::new(request);
    let answer = endpoint(&event.notification_request(), &client_state, queue).await;
    let mut metrics = Metrics::new("license-check", &rt.microsoft.tenant_id);
    metrics.count("NotificationsAccepted", answer.accepted);
    metrics.count("NotificationsRefused", answer.refused);
    metrics.emit();
    text_response(answer.status, answer.content_type, answer.body)
}

/// The change messages of an SQS batch (by message id) and the rest of the batch.
pub(crate) fn split(event: SqsEvent) -> (Vec<(String, ChangeMessage)>, SqsEvent) {
    let mut changes = Vec::new();
    let mut rest = SqsEvent::default();
    for record in event.records {
        match serde_json::from_str::<ChangeMessage>(record.body.as_deref().unwrap_or("")) {
            Ok(m) => changes.push((record.message_id.clone().unwrap_or_default(), m)),
            Err(_) => rest.records.push(record),
        }
    }
    (changes, rest)
}

/// Processes the change messages of a batch, one re-check per tenant; a retryable failure fails every message of
/// that tenant (SQS delivers them again), a permanent one is logged.
pub(crate) async fn process_records(
    deps: &Deps,
    records: Vec<(String, ChangeMessage)>,
) -> SqsBatchResponse {
    let mut by_tenant: BTreeMap<String, (Vec<String>, Vec<Notification>)> = BTreeMap::new();
    for (id, m) in records {
        let entry = by_tenant
            .entry(m.tenant_id.to_ascii_lowercase())
            .or_default();
        entry.0.push(id);
        entry.1.extend(m.notifications);
    }
    let mut response = SqsBatchResponse::default();
    for (tenant, (ids, notifications)) in by_tenant {
        let span = tracing::info_span!("tenant", tenant = %tenant);
        let done = async {
            let rt = deps.get(&tenant).await?;
            process_message(&rt, &notifications).await
        }
        .instrument(span)
        .await;
        match done {
            Ok(()) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(tenant, error = %e, "change notifications will be retried");
                for id in ids.into_iter().filter(|i| !i.is_empty()) {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
            Err(e) => {
                tracing::error!(tenant, error = %e, kind = e.kind(), "change notifications failed permanently")
            }
        }
    }
    response
}

/// A tenant's Graph changes: a targeted re-check. Busy (another run holds the tenant) is retryable, so SQS
/// delivers the messages again.
pub(crate) async fn process_message(
    rt: &Runtime,
    notifications: &[Notification],
) -> Result<(), CoreError> {
    let settings = match needs_settings(notifications) {
        true => rt.subscription_settings(None).await?,
        false => None,
    };
    let channels = rt.notify_channels(None)?;
    let report = process(
        &rt.change_deps(&channels),
        &rt.tenant_run(),
        &rt.policy,
        settings.as_ref(),
        notifications,
    )
    .await?;
    match &rt.change_queue {
        Some(queue) => follow_up(queue.as_ref(), &rt.microsoft.tenant_id, &report).await?,
        None if !report.reread_later.is_empty() => {
            tracing::warn!(
                "LICENSEWATCH_CHANGE_QUEUE_URL is not set: users whose read did not show their change are left to the next scheduled check"
            )
        }
        None => {}
    }
    let mut metrics = Metrics::new("license-check", &rt.microsoft.tenant_id);
    metrics.count("UsersRechecked", report.users_notified);
    metrics.count("UsersRereadLater", report.reread_later.len());
    metrics.count("AlertsSentAtOnce", report.alerts_sent);
    metrics.emit();
    tracing::info!(users = report.users_notified, scan = ?report.scan, mass_delicensing = report.mass_delicensing, "change notifications processed");
    Ok(())
}

/// The renewal timer: the subscription of the configured tenant and of every `[[tenants]]` entry, to `url` (the
/// event's `notification_url`: the function's own URL) or the configured one.
pub(crate) async fn keep_all(
    deps: &Deps,
    url: Option<&str>,
) -> Result<Vec<UpkeepReport>, CoreError> {
    let home = &deps.home;
    let mut tenants = vec![home.microsoft.tenant_id.clone()];
    tenants.extend(home.policy.tenants.iter().map(|t| t.id.clone()));
    tenants.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let mut reports = Vec::new();
    for tenant in tenants {
        let rt = deps.get(&tenant).await?;
        // Real-time detection is optional: the renewal schedule exists in every deployment and does nothing
        // without a client state.
        let Some(settings) = rt.subscription_settings(url).await? else {
            tracing::info!("change notifications are not configured; no subscription to keep");
            return Ok(Vec::new());
        };
        let channels = Vec::new();
        reports.push(
            keep_subscription(
                &rt.change_deps(&channels),
                &rt.microsoft.tenant_id,
                &settings,
            )
            .await?,
        );
    }
    Ok(reports)
}

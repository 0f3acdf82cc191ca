//! Graph change notifications, locally: the notification route of `licensewatch serve`, an in-process queue and
//! its worker (on AWS the queue is SQS and the worker is license-check), the subscription kept alive by `serve`,
//! and `licensewatch subscribe`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use licensewatch_core::domain::change_notifications::Notification;
use licensewatch_core::error::CoreError;
use licensewatch_core::usecases::change_notifications::{
    MAX_BODY, NotificationRequest, ProcessReport, endpoint, follow_up, keep_subscription, process,
};
use tokio::sync::mpsc;

use crate::endpoint_state::{App, Changes, Limits};

/// The path Graph posts to under the served base URL.
pub(crate) const PATH: &str = "/graph/notifications";
/// How often `serve` makes sure its subscription is alive (the renewal itself happens when 3 days are left).
const UPKEEP_EVERY: Duration = Duration::from_secs(6 * 3600);
/// After the first message, the worker waits this long for the rest of a burst: Graph posts a bulk change as
/// several batches within milliseconds, and one re-check of all of them is cheaper and gives the whole count.
const GATHER: Duration = Duration::from_millis(250);

/// `POST /graph/notifications` (and Graph's validation call).
pub(crate) async fn route(
    State(app): State<Arc<App>>,
    axum::Extension(limits): axum::Extension<Limits>,
    req: Request,
) -> Response {
    use http_body_util::BodyExt;
    let Some(changes) = &app.changes else {
        return (
            StatusCode::NOT_FOUND,
            "change notifications are not configured",
        )
            .into_response();
    };
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, MAX_BODY).collect();
    let bytes = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return (StatusCode::BAD_REQUEST, "unreadable or oversized body").into_response();
        }
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the body did not arrive in time",
            )
                .into_response();
        }
    };
    let request = NotificationRequest {
        method: parts.method.as_str(),
        query: parts.uri.query().unwrap_or(""),
        body: &bytes,
    };
    let answer = endpoint(
        &request,
        &changes.settings.client_state,
        changes.queue.as_ref(),
    )
    .await;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match answer.content_type {
            "text/plain" => "text/plain; charset=utf-8",
            _ => "application/json",
        }),
    );
    response
}

/// Reads the in-process queue forever: after the first arrival it waits a moment for the rest of a burst, then
/// takes everything waiting, one re-check per tenant.
pub(crate) async fn worker(app: Arc<App>, reports: Option<mpsc::UnboundedSender<ProcessReport>>) {
    let Some(changes) = &app.changes else {
        return;
    };
    loop {
        changes.local.arrived.notified().await;
        tokio::time::sleep(GATHER).await;
        for (tenant, notifications) in changes.local.take() {
            let report = process_until_done(&app, changes, &tenant, &notifications).await;
            if let (Some(tx), Some(report)) = (&reports, report) {
                let _ = tx.send(report);
            }
        }
    }
}

/// Processes one tenant's notifications; an overlap with another run (busy) or a transient failure is tried again
/// with backoff, a permanent failure is logged.
async fn process_until_done(
    app: &App,
    changes: &Changes,
    tenant: &str,
    notifications: &[Notification],
) -> Option<ProcessReport> {
    let rt = &app.rt;
    if !tenant.eq_ignore_ascii_case(&rt.microsoft.tenant_id) {
        tracing::warn!(
            tenant,
            "notifications for a tenant this process does not watch; dropped"
        );
        return None;
    }
    let deps = rt.change_deps(&changes.channels);
    let run = rt.tenant_run();
    let mut wait = Duration::from_millis(100);
    for _ in 0..12 {
        match process(
            &deps,
            &run,
            &rt.policy,
            Some(&changes.settings),
            notifications,
        )
        .await
        {
            Ok(report) => {
                tracing::info!(tenant, users = report.users_notified, scan = ?report.scan, alerts = report.alerts_sent, "change notifications processed");
                if let Err(e) = follow_up(changes.queue.as_ref(), tenant, &report).await {
                    // The next scheduled check reads these users anyway.
                    tracing::warn!(tenant, error = %e, "the follow-up read could not be queued");
                }
                return Some(report);
            }
            Err(e) if e.is_retryable() => {
                tracing::info!(tenant, error = %e, "change notifications will be processed again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                tracing::error!(tenant, error = %e, "change notifications failed");
                return None;
            }
        }
    }
    tracing::error!(
        tenant,
        "change notifications still failing; the next scheduled check covers them"
    );
    None
}

/// Keeps the subscription alive while `serve` runs: at start (once the endpoint answers Graph's validation call)
/// and every few hours.
pub(crate) async fn upkeep(app: Arc<App>) {
    let Some(changes) = &app.changes else {
        return;
    };
    loop {
        let deps = app.rt.change_deps(&changes.channels);
        match keep_subscription(&deps, &app.rt.microsoft.tenant_id, &changes.settings).await {
            Ok(r) => {
                tracing::info!(action = %r.action, expires_at = %r.subscription.expires_at, "change subscription")
            }
            Err(e) => tracing::error!(error = %e, "the change subscription could not be kept"),
        }
        tokio::time::sleep(UPKEEP_EVERY).await;
    }
}

/// `licensewatch subscribe`: creates, renews or keeps the tenant's subscription once (the renewal timer's work).
pub(crate) async fn subscribe(json: bool) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let Some(settings) = (rt.subscription_settings(None).await).map_err(|e| e.to_string())? else {
        return Err(format!(
            "{} is not set: change notifications are not configured",
            licensewatch_core::config::vars::NOTIFICATION_CLIENT_STATE
        ));
    };
    let channels = Vec::new();
    let report = keep_subscription(
        &rt.change_deps(&channels),
        &rt.microsoft.tenant_id,
        &settings,
    )
    .await
    .map_err(|e: CoreError| format!("{e} ({})", e.kind()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        println!(
            "subscription {} {} (expires {})",
            report.subscription.subscription_id, report.action, report.subscription.expires_at
        );
    }
    Ok(())
}

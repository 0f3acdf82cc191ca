//! reprocess-user Lambda handler: one binary for both triggers. An HTTP request (function URL or API Gateway HTTP
//! API, payload v2) goes to the signed webhook endpoint; an SQS batch goes to the worker, reporting only the
//! retryable failures so that permanent ones are not retried forever.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::store::RemediationRequest;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::reprocess_user::{WorkerDeps, process};
use licensewatch_core::usecases::webhook::{WebhookAuth, handle};
pub use licensewatch_lambda::Failure;
use licensewatch_lambda::{HttpEvent, http_response, is_sqs, parse_event, sqs_batch, to_json};
use serde_json::Value;

/// Everything the handler borrows, built once per cold start.
pub struct Deps {
    /// Runtime.
    pub rt: Runtime,
    /// Webhook secrets.
    pub auth: WebhookAuth,
    /// HTTP client for ticket callbacks.
    pub http: reqwest::Client,
    /// The service desks outcomes are commented in (`[[notify.tickets]]`).
    pub desks: Vec<Box<dyn licensewatch_core::ports::channel::Channel>>,
}

/// Dispatches on the event shape.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if licensewatch_lambda::is_doctor(&payload) {
        use licensewatch_core::domain::doctor::Job as DoctorJob;
        return licensewatch_lambda::doctor_of(&deps.rt, DoctorJob::ReprocessUser, &payload).await;
    }
    if is_sqs(&payload) {
        let event: SqsEvent = parse_event(payload, "an SQS event")?;
        let mut worker = deps.rt.worker_deps(&deps.http, deps.auth.callback_secret());
        worker.desks = &deps.desks;
        return to_json(&handle_sqs(&worker, &deps.rt, event).await);
    }
    let request: ApiGatewayV2httpRequest = parse_event(payload, "an HTTP event")?;
    to_json(&handle_http(deps, request).await)
}

/// The HTTP trigger: never lets an error escape (API Gateway would turn it into an opaque 5xx).
pub async fn handle_http(
    deps: &Deps,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let event = HttpEvent::new(request);
    let resp = handle(&deps.rt.webhook_deps(&deps.auth), &event.request()).await;
    let mut metrics = Metrics::new("reprocess-user", &deps.rt.microsoft.tenant_id);
    match &resp.reject_reason {
        Some(reason) => metrics.count_with("WebhookRejects", 1, ("Reason", reason.as_str())),
        None => metrics.count("WebhookRequests", 1),
    }
    metrics.emit();
    http_response(&resp)
}

/// The SQS trigger: each record on its own; only retryable failures are reported back.
pub(crate) async fn handle_sqs(
    worker: &WorkerDeps<'_>,
    rt: &Runtime,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut metrics = Metrics::new("reprocess-user", &rt.microsoft.tenant_id);
    let response = sqs_batch(event, "remediation", async |request: RemediationRequest| {
        let outcome = process(worker, &request, &rt.policy, false).await?;
        metrics.count_with("Remediations", 1, ("Status", outcome.status.as_str()));
        tracing::info!(remediation = %request.remediation_id, status = outcome.status.as_str(), "remediation done");
        Ok(())
    })
    .await;
    metrics.emit();
    response
}

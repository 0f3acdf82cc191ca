//! reprocess-user Lambda handler: one binary for both triggers. An HTTP request (function URL or API Gateway HTTP
//! API, payload v2) goes to the signed webhook endpoint; an SQS batch goes to the worker, reporting only the
//! retryable failures so that permanent ones are not retried forever.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::Engine;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::store::RemediationRequest;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::telemetry::Metrics;
use licensewatch_core::usecases::reprocess_user::{WorkerDeps, process};
use licensewatch_core::usecases::webhook::{HttpRequest, WebhookAuth, handle};
use serde_json::Value;

/// Everything the handler borrows, built once per cold start.
pub struct Deps {
    /// Runtime.
    pub rt: Runtime,
    /// Webhook secrets.
    pub auth: WebhookAuth,
    /// HTTP client for ticket callbacks.
    pub http: reqwest::Client,
}

/// Dispatches on the event shape.
pub async fn handle_event(deps: &Deps, payload: Value) -> Result<Value, CoreError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload)
            .map_err(|e| CoreError::BadInput(format!("not an SQS event: {e}")))?;
        let worker = deps.rt.worker_deps(&deps.http, deps.auth.callback_secret());
        let response = handle_sqs(&worker, &deps.rt, event).await;
        return serde_json::to_value(response).map_err(|e| CoreError::BadInput(e.to_string()));
    }
    let request: ApiGatewayV2httpRequest = serde_json::from_value(payload)
        .map_err(|e| CoreError::BadInput(format!("not an HTTP event: {e}")))?;
    serde_json::to_value(handle_http(deps, request).await)
        .map_err(|e| CoreError::BadInput(e.to_string()))
}

/// The HTTP trigger: never lets an error escape (API Gateway would turn it into an opaque 5xx).
pub async fn handle_http(
    deps: &Deps,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let raw = request.body.unwrap_or_default();
    // Function URLs base64-encode bodies; the signature covers the decoded bytes.
    let body = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw.as_bytes())
            .unwrap_or_default()
    } else {
        raw.into_bytes()
    };
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_string(), v.to_string()))
        })
        .collect();
    let path = request.raw_path.unwrap_or_else(|| "/".into());
    let method = request.request_context.http.method.to_string();
    let req = HttpRequest {
        method: &method,
        path: &path,
        headers,
        body: &body,
    };
    let resp = handle(&deps.rt.webhook_deps(&deps.auth), &req).await;
    let mut metrics = Metrics::new("reprocess-user", &deps.rt.microsoft.tenant_id);
    match &resp.reject_reason {
        Some(reason) => metrics.count_with("WebhookRejects", 1, ("Reason", reason.as_str())),
        None => metrics.count("WebhookRequests", 1),
    }
    metrics.emit();
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(resp.status);
    out.headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    out.body = Some(Body::Text(resp.body.to_string()));
    out
}

/// The SQS trigger: each record on its own; only retryable failures are reported back.
pub async fn handle_sqs(
    worker: &WorkerDeps<'_>,
    rt: &Runtime,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut metrics = Metrics::new("reprocess-user", &rt.microsoft.tenant_id);
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let parsed: Result<RemediationRequest, _> =
            serde_json::from_str(record.body.as_deref().unwrap_or(""));
        let request = match parsed {
            Ok(r) => r,
            Err(e) => {
                // A message that can never be read is logged and dropped, not retried.
                tracing::error!(message_id = %id, error = %e, "unreadable remediation message dropped");
                continue;
            }
        };
        match process(worker, &request, &rt.policy, false).await {
            Ok(outcome) => {
                metrics.count_with("Remediations", 1, ("Status", outcome.status));
                tracing::info!(remediation = %request.remediation_id, status = outcome.status, "remediation done")
            }
            Err(e) if e.is_retryable() && !id.is_empty() => {
                tracing::warn!(remediation = %request.remediation_id, error = %e, "will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Err(e) => {
                tracing::error!(remediation = %request.remediation_id, error = %e, "permanent failure")
            }
        }
    }
    metrics.emit();
    response
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

//! The Lambda glue the four functions share, so that each handler only translates its events:
//!
//! - [`start`]: logging, configuration and the runtime, once per cold start;
//! - [`serve`]: the invocation loop, one span per invocation (`request_id`, `tenant`, `function`);
//! - [`Failure`]: a use-case error as Lambda's `Diagnostic`, typed `Retryable` or `Permanent`;
//! - [`sqs_batch`]: one SQS message at a time, reporting only retryable failures (partial batch response);
//! - [`HttpEvent`], [`http_response`]: function-URL / HTTP API (payload v2) events to and from the webhook's types.

use std::future::Future;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use base64::Engine;
use lambda_runtime::{LambdaEvent, service_fn};
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::telemetry::{self, LogFormat};
use licensewatch_core::runtime::tenants::{TenantMessage, TenantRuntimes, fan_out};
use licensewatch_core::runtime::{Runtime, deadline, load_config};
use licensewatch_core::usecases::webhook::{HttpRequest, HttpResponse, header_pairs};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

/// Logging as JSON lines, then the runtime from the environment and the policy: built once per cold start and lent
/// to every invocation. A configuration error stops the cold start, naming the variable.
pub async fn start() -> Result<Runtime, lambda_runtime::Error> {
    telemetry::init(LogFormat::Json, "info");
    let (settings, policy) = load_config()?;
    Ok(Runtime::build(settings, policy, Runtime::catalog(None)?).await?)
}

/// The time a run leaves before its invocation's deadline to record what it did and answer.
const INVOCATION_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

/// What a function does with one event.
pub trait Handler: Sync {
    /// The tenant the invocation span names.
    fn tenant(&self) -> &str;
    /// Translates the event, runs the use case, and answers.
    fn handle(&self, payload: Value) -> impl Future<Output = Result<Value, CoreError>>;
}

/// Serves invocations until the Lambda runtime stops, each in its own span.
pub async fn serve<H: Handler>(
    function: &'static str,
    handler: &H,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(move |ev: LambdaEvent<Value>| async move {
        let span = telemetry::invocation_span(function, &ev.context.request_id, handler.tenant());
        // Runs stop a little before the invocation's deadline, with what they did recorded; the next resumes.
        let deadline = deadline::from_epoch_millis(ev.context.deadline, INVOCATION_MARGIN);
        deadline::within(deadline, handler.handle(ev.payload))
            .instrument(span)
            .await
            .map_err(Failure)
    }))
    .await
}

/// A use-case error as Lambda reports it: `Retryable` or `Permanent`, with a message free of secrets.
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

/// Reads an event of the expected shape (`what` names it in the error).
pub fn parse_event<T: DeserializeOwned>(payload: Value, what: &str) -> Result<T, CoreError> {
    serde_json::from_value(payload).map_err(|e| CoreError::BadInput(format!("not {what}: {e}")))
}

/// A response as JSON.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, CoreError> {
    serde_json::to_value(value).map_err(|e| CoreError::BadInput(e.to_string()))
}

/// True when the payload is an SQS batch rather than a schedule or an HTTP request.
pub fn is_sqs(payload: &Value) -> bool {
    payload.get("Records").is_some()
}

/// Runs `work` on each message of the batch, in order. A body that is not a `T` can never succeed: it is logged
/// and dropped. A retryable failure is reported back, so that SQS redelivers only that message (and, after the
/// queue's receive limit, moves it to the dead-letter queue); a permanent one is logged and not retried.
pub async fn sqs_batch<T: DeserializeOwned>(
    event: SqsEvent,
    what: &str,
    mut work: impl AsyncFnMut(T) -> Result<(), CoreError>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let message: T = match serde_json::from_str(record.body.as_deref().unwrap_or("")) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, "unreadable {what} message dropped");
                continue;
            }
        };
        match work(message).await {
            Ok(()) => {}
            Err(e) if e.is_retryable() && !id.is_empty() => {
                tracing::warn!(message_id = %id, error = %e, "{what} will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
            Err(e) => {
                tracing::error!(message_id = %id, error = %e, kind = e.kind(), "{what} failed permanently")
            }
        }
    }
    response
}

/// The event of a scheduled function that serves many tenants (audit-fetch, grace-period-notify): an SQS batch of
/// tenant messages runs `run` once per message with that tenant's runtime (only retryable failures are
/// redelivered); a schedule fans out, one message per tenant, when the deployment has a tenant queue and the policy
/// lists tenants, and otherwise runs the configured tenant.
pub async fn per_tenant<T: serde::Serialize>(
    deps: &TenantRuntimes,
    payload: Value,
    job: Job,
    run: impl AsyncFn(&Runtime) -> Result<T, CoreError>,
) -> Result<Value, CoreError> {
    if is_sqs(&payload) {
        let event: SqsEvent = parse_event(payload, "an SQS event")?;
        let batch = sqs_batch(event, job.as_str(), async |m: TenantMessage| {
            let rt = deps.get_for(&m.tenant_id, job).await?;
            run(&rt).await.map(|_| ())
        })
        .await;
        return to_json(&batch);
    }
    let _: EventBridgeEvent<Value> = parse_event(payload, "an EventBridge event")?;
    if let Some(n) = fan_out(&deps.home).await? {
        tracing::info!(tenants = n, "{job} fanned out");
        return to_json(&serde_json::json!({"status": "fanned_out", "fanned_out": n}));
    }
    to_json(&run(&deps.home).await?)
}

/// `{"doctor": true}` sent to a function (optionally with `"tenant"` and `"send_test_mail"`): the checks of what
/// that function needs, instead of a run.
pub fn is_doctor(payload: &Value) -> bool {
    payload.get("doctor") == Some(&Value::Bool(true))
}

/// Answers a doctor event for `job`: the report of the named tenant of the deployment (the configured one by
/// default). A failing check is an answer, not an error.
pub async fn doctor_event(
    deps: &TenantRuntimes,
    job: licensewatch_core::domain::doctor::Job,
    payload: &Value,
) -> Result<Value, CoreError> {
    let rt = match payload.get("tenant").and_then(Value::as_str) {
        Some(t) => deps.get(t).await?,
        None => deps.home.clone(),
    };
    doctor_of(&rt, job, payload).await
}

/// The doctor report of one runtime's tenant for `job`.
pub async fn doctor_of(
    rt: &Runtime,
    job: licensewatch_core::domain::doctor::Job,
    payload: &Value,
) -> Result<Value, CoreError> {
    let to = payload
        .get("send_test_mail")
        .and_then(Value::as_str)
        .map(str::to_string);
    let report = licensewatch_core::usecases::doctor::doctor(
        &rt.doctor_deps(),
        &rt.doctor_request(&[job], to),
    )
    .await;
    tracing::info!(healthy = report.healthy(), job = job.as_str(), "doctor");
    to_json(&serde_json::json!({"healthy": report.healthy(), "report": report}))
}

/// An HTTP event (function URL or HTTP API, payload v2) with its body decoded.
#[derive(Debug)]
pub struct HttpEvent {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpEvent {
    /// Function URLs base64-encode bodies; the signature covers the decoded bytes, so they are decoded here (an
    /// undecodable body becomes empty and fails verification).
    pub fn new(request: ApiGatewayV2httpRequest) -> Self {
        let raw = request.body.unwrap_or_default();
        let body = if request.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(raw.as_bytes())
                .unwrap_or_default()
        } else {
            raw.into_bytes()
        };
        Self {
            method: request.request_context.http.method.to_string(),
            path: request.raw_path.unwrap_or_else(|| "/".into()),
            query: request.raw_query_string.unwrap_or_default(),
            headers: header_pairs(
                request
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_bytes())),
            ),
            body,
        }
    }

    /// The webhook endpoint's view of it.
    pub fn request(&self) -> HttpRequest<'_> {
        HttpRequest {
            method: &self.method,
            path: &self.path,
            headers: self.headers.clone(),
            body: &self.body,
        }
    }
}

impl HttpEvent {
    /// The change-notification endpoint's view of it.
    pub fn notification_request(
        &self,
    ) -> licensewatch_core::usecases::change_notifications::NotificationRequest<'_> {
        licensewatch_core::usecases::change_notifications::NotificationRequest {
            method: &self.method,
            query: &self.query,
            body: &self.body,
        }
    }
}

/// True when the payload is an HTTP request (function URL or HTTP API).
pub fn is_http(payload: &Value) -> bool {
    payload.get("requestContext").is_some()
}

/// A response with a body of `content_type`.
pub fn text_response(status: u16, content_type: &str, body: String) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(status);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        out.headers.insert("content-type", v);
    }
    out.body = Some(Body::Text(body));
    out
}

/// The endpoint's answer as a JSON HTTP response.
pub fn http_response(resp: &HttpResponse) -> ApiGatewayV2httpResponse {
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(resp.status);
    out.headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    out.body = Some(Body::Text(resp.body.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn batch(bodies: &[(&str, &str)]) -> SqsEvent {
        let records: Vec<Value> = bodies
            .iter()
            .map(|(id, body)| json!({"messageId": id, "body": body}))
            .collect();
        serde_json::from_value(json!({ "Records": records })).expect("event")
    }

    #[tokio::test]
    async fn only_retryable_failures_are_reported_back() {
        let event = batch(&[
            ("a", r#"{"n": 1}"#),
            ("b", "not json"),
            ("c", r#"{"n": 2}"#),
            ("d", r#"{"n": 3}"#),
        ]);
        #[derive(serde::Deserialize)]
        struct M {
            n: u32,
        }
        let mut seen = Vec::new();
        let response = sqs_batch(event, "test", async |m: M| {
            seen.push(m.n);
            match m.n {
                2 => Err(CoreError::Store {
                    message: "busy".into(),
                    retryable: true,
                }),
                3 => Err(CoreError::BadInput("no".into())),
                _ => Ok(()),
            }
        })
        .await;
        assert_eq!(seen, vec![1, 2, 3], "the unreadable message is skipped");
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["c"], "permanent failures are not retried");
    }

    #[test]
    fn failures_are_typed_for_lambda() {
        let d: lambda_runtime::Diagnostic = Failure(CoreError::BadInput("x".into())).into();
        assert_eq!(d.error_type, "Permanent");
        let d: lambda_runtime::Diagnostic = Failure(CoreError::Store {
            message: "busy".into(),
            retryable: true,
        })
        .into();
        assert_eq!(d.error_type, "Retryable");
    }

    #[test]
    fn function_url_bodies_are_decoded_and_headers_kept() {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(json!({
            "version": "2.0", "rawPath": "/v1/reprocess", "isBase64Encoded": true,
            "body": base64::engine::general_purpose::STANDARD.encode(b"{\"a\":1}"),
            "headers": {"webhook-id": "msg_1"},
            "requestContext": {"http": {"method": "POST"}}
        }))
        .expect("request");
        let event = HttpEvent::new(request);
        let req = event.request();
        assert_eq!(req.body, b"{\"a\":1}");
        assert_eq!((req.method, req.path), ("POST", "/v1/reprocess"));
        assert!(req.headers.contains(&("webhook-id".into(), "msg_1".into())));
    }
}

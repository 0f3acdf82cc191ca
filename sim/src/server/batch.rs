//! `POST /v1.0/$batch`, Graph's JSON batching: up to 20 requests in one body (`{"requests": [{"id", "method",
//! "url", "headers"?, "body"?}]}`, URLs relative to `/v1.0`), run at once through the same routes (so faults,
//! latency and throttling apply to each item, as they do at Microsoft), answered as `{"responses": [{"id",
//! "status", "headers", "body"}]}` in an order of their own (Microsoft does not keep the request order either).
// Route helpers return the ready error `Response` as their `Err`.
#![allow(clippy::result_large_err)]

use tower::ServiceExt;

use super::*;

/// Graph's limit of requests in one batch.
pub(super) const MAX_REQUESTS: usize = 20;

#[derive(Debug, Deserialize)]
pub(super) struct BatchBody {
    requests: Vec<BatchItem>,
}

#[derive(Debug, Deserialize)]
pub(super) struct BatchItem {
    id: String,
    method: String,
    url: String,
    #[serde(default)]
    body: Option<Value>,
}

pub(super) async fn batch(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed: BatchBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!("Invalid batch payload format: {e}"),
            );
        }
    };
    if parsed.requests.len() > MAX_REQUESTS {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Number of batch requests exceeds the maximum of {MAX_REQUESTS}."),
        );
    }
    let mut seen = HashSet::new();
    if let Some(dup) = parsed.requests.iter().find(|r| !seen.insert(r.id.clone())) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Batch request ids must be unique: '{}'.", dup.id),
        );
    }
    let auth = headers.get("authorization").cloned();
    let items = parsed
        .requests
        .into_iter()
        .map(|item| run_item(s.clone(), auth.clone(), item));
    let mut responses = futures::future::join_all(items).await;
    responses.reverse();
    Json(json!({ "responses": responses })).into_response()
}

/// One item through the whole router, as its own request.
async fn run_item(s: Arc<Shared>, auth: Option<HeaderValue>, item: BatchItem) -> Value {
    // Relative to the version (`/users/...`), as documented; Microsoft's SDKs send absolute URLs, which Graph takes
    // too.
    let url = match url::Url::parse(&item.url) {
        Ok(absolute) => match absolute.query() {
            Some(q) => format!("{}?{q}", absolute.path()),
            None => absolute.path().to_string(),
        },
        Err(_) => format!("/v1.0/{}", item.url.trim_start_matches('/')),
    };
    let mut builder = axum::http::Request::builder()
        .method(item.method.to_ascii_uppercase().as_str())
        .uri(&url);
    if let Some(a) = auth {
        builder = builder.header("authorization", a);
    }
    let body = match &item.body {
        Some(b) => {
            builder = builder.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let answer = match builder.body(body) {
        Ok(req) => match router(s).oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        Err(_) => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Invalid request URL '{}'.", item.url),
        ),
    };
    let status = answer.status().as_u16();
    let headers: serde_json::Map<String, Value> = answer
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::from(v.to_str().ok()?))))
        .collect();
    let bytes = axum::body::to_bytes(answer.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    json!({"id": item.id, "status": status, "headers": headers, "body": body})
}

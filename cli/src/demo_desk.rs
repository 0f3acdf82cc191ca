//! The demo's service desk: a small ServiceNow instance on a local port, answering the part of the Table API
//! licensewatch uses (incidents: create, query by `correlation_id` or `number`, `PATCH` work notes and state) with
//! Basic authentication. licensewatch talks to it through its real ServiceNow adapter, as to any instance.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Serialize;
use serde_json::{Value, json};

/// The demo's ServiceNow account.
pub(crate) const USER: &str = "licensewatch.integration";
/// Its password (the demo's own, generated nowhere else).
pub(crate) const PASSWORD: &str = "demo-servicenow-password";

/// One incident.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Incident {
    /// 32 hex digits.
    pub sys_id: String,
    /// INC0010001...
    pub number: String,
    /// `short_description`.
    pub short_description: String,
    /// `description`.
    pub description: String,
    /// `correlation_id`.
    pub correlation_id: String,
    /// Work notes, oldest first.
    pub work_notes: Vec<String>,
    /// `state` (1 new, 6 resolved).
    pub state: String,
}

/// The running desk.
#[derive(Clone)]
pub(crate) struct DemoDesk {
    /// Base URL.
    pub url: String,
    incidents: Arc<Mutex<Vec<Incident>>>,
}

impl DemoDesk {
    /// Starts the desk on a free local port.
    pub(crate) async fn start() -> Result<Self, String> {
        let incidents: Arc<Mutex<Vec<Incident>>> = Arc::default();
        let shared = incidents.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let incidents = shared.clone();
                async move { answer(&incidents, &method, &uri, &headers, &body) }
            },
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| format!("cannot start the demo's service desk: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url: format!("http://{addr}"),
            incidents,
        })
    }

    /// Every incident, oldest first.
    pub(crate) fn incidents(&self) -> Vec<Incident> {
        self.incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// An incident a person opens by hand.
    pub(crate) fn open(&self, short_description: &str) -> Incident {
        let mut all = self.incidents.lock().unwrap_or_else(|p| p.into_inner());
        create(&mut all, short_description, "", "")
    }
}

fn create(all: &mut Vec<Incident>, short: &str, description: &str, correlation: &str) -> Incident {
    let n = all.len() + 10_001;
    let incident = Incident {
        sys_id: format!("{n:032x}"),
        number: format!("INC{n:07}"),
        short_description: short.to_string(),
        description: description.to_string(),
        correlation_id: correlation.to_string(),
        work_notes: Vec::new(),
        state: "1".into(),
    };
    all.push(incident.clone());
    incident
}

fn authorised(headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Basic {expected}"))
}

fn answer(
    incidents: &Mutex<Vec<Incident>>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !authorised(headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Some(rest) = uri.path().strip_prefix("/api/now/table/incident") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut all = incidents.lock().unwrap_or_else(|p| p.into_inner());
    let reference = |i: &Incident| json!({"sys_id": i.sys_id, "number": i.number});
    match (method.as_str(), rest.trim_start_matches('/')) {
        ("GET", "") => {
            let query: String =
                url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                    .find(|(k, _)| k == "sysparm_query")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
            let found: Vec<Value> = all
                .iter()
                .filter(|i| match query.split_once('=') {
                    Some(("correlation_id", c)) => !c.is_empty() && i.correlation_id == c,
                    Some(("number", n)) => i.number == n,
                    _ => false,
                })
                .map(reference)
                .collect();
            (StatusCode::OK, axum::Json(json!({"result": found}))).into_response()
        }
        ("POST", "") => {
            let i = create(
                &mut all,
                &text(&body["short_description"]),
                &text(&body["description"]),
                &text(&body["correlation_id"]),
            );
            (
                StatusCode::CREATED,
                axum::Json(json!({"result": reference(&i)})),
            )
                .into_response()
        }
        ("PATCH", sys_id) => match all.iter_mut().find(|i| i.sys_id == sys_id) {
            Some(i) => {
                for note in [&body["work_notes"], &body["close_notes"]] {
                    if let Some(n) = note.as_str() {
                        i.work_notes.push(n.to_string());
                    }
                }
                if let Some(state) = body["state"].as_str() {
                    i.state = state.to_string();
                }
                (StatusCode::OK, axum::Json(json!({"result": reference(i)}))).into_response()
            }
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

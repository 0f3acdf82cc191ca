//! A local service desk for the tests, written from each system's API documentation (not shipped): ServiceNow's
//! Table API, Jira Cloud REST v3, HaloPSA, ConnectWise PSA and Autotask REST, on one real HTTP server. It keeps the
//! tickets, records every request, checks each system's credentials, and can be down, throttle or answer slowly.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// One ticket as the desk holds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeTicket {
    pub system: &'static str,
    pub id: u64,
    pub key: String,
    pub correlation: String,
    pub title: String,
    pub text: String,
    pub comments: Vec<String>,
    pub resolved: bool,
    pub queue: String,
    pub company: String,
    pub critical: bool,
}

#[derive(Default)]
struct Desk {
    tickets: Vec<FakeTicket>,
    requests: Vec<String>,
    down: bool,
    throttle_next: u32,
    delay_ms: u64,
    next_id: u64,
}

/// The running desk.
#[derive(Clone)]
pub(crate) struct FakePsa {
    pub url: String,
    state: Arc<Mutex<Desk>>,
}

/// Credentials the desk accepts (the tests' `*_env` variables hold these).
pub(crate) const SNOW_USER: &str = "svc-licensewatch";
pub(crate) const SNOW_PASSWORD: &str = "snow-password";
pub(crate) const JIRA_USER: &str = "it@contoso.com";
pub(crate) const JIRA_TOKEN: &str = "jira-api-token";
pub(crate) const HALO_CLIENT: &str = "halo-client";
pub(crate) const HALO_SECRET: &str = "halo-secret";
pub(crate) const CW_COMPANY: &str = "contoso";
pub(crate) const CW_PUBLIC: &str = "cw-public";
pub(crate) const CW_PRIVATE: &str = "cw-private";
pub(crate) const CW_CLIENT: &str = "cw-client-id";
pub(crate) const AT_USER: &str = "api@contoso.com";
pub(crate) const AT_SECRET: &str = "at-secret";
pub(crate) const AT_CODE: &str = "at-integration-code";

/// The environment the tests give `build_channels`.
pub(crate) fn credentials(name: &str) -> Option<String> {
    Some(
        match name {
            "SNOW_USER" => SNOW_USER,
            "SNOW_PASSWORD" => SNOW_PASSWORD,
            "JIRA_USER" => JIRA_USER,
            "JIRA_TOKEN" => JIRA_TOKEN,
            "HALO_CLIENT" => HALO_CLIENT,
            "HALO_SECRET" => HALO_SECRET,
            "CW_PUBLIC" => CW_PUBLIC,
            "CW_PRIVATE" => CW_PRIVATE,
            "CW_CLIENT" => CW_CLIENT,
            "AT_USER" => AT_USER,
            "AT_SECRET" => AT_SECRET,
            "AT_CODE" => AT_CODE,
            _ => return None,
        }
        .to_string(),
    )
}

/// The `[[notify.tickets]]` entry for `system` on the desk at `url`.
pub(crate) fn ticket_toml(system: &str, url: &str) -> String {
    let specific = match system {
        "servicenow" => {
            "user_env = \"SNOW_USER\"\npassword_env = \"SNOW_PASSWORD\"\nqueue = \"Service Desk\""
        }
        "jira" => "user_env = \"JIRA_USER\"\ntoken_env = \"JIRA_TOKEN\"\nproject = \"IT\"",
        "halopsa" => {
            "client_id_env = \"HALO_CLIENT\"\nclient_secret_env = \"HALO_SECRET\"\nqueue = \"1st Line\"\ncompany = \"12\""
        }
        "connectwise" => {
            "public_key_env = \"CW_PUBLIC\"\nprivate_key_env = \"CW_PRIVATE\"\nclient_id_env = \"CW_CLIENT\"\nlogin_company = \"contoso\"\nqueue = \"Help Desk\"\ncompany = \"ContosoLtd\""
        }
        _ => {
            "user_env = \"AT_USER\"\nsecret_env = \"AT_SECRET\"\nintegration_code_env = \"AT_CODE\"\nqueue = \"29682833\"\ncompany = \"174\""
        }
    };
    format!("[[notify.tickets]]\nsystem = \"{system}\"\nurl = \"{url}\"\n{specific}\n")
}

impl FakePsa {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(Mutex::new(Desk {
            next_id: 1000,
            ..Default::default()
        }));
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { serve(state, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("http://{addr}"),
            state,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Desk> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn tickets(&self) -> Vec<FakeTicket> {
        self.lock().tickets.clone()
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    pub(crate) fn throttle_next(&self, n: u32) {
        self.lock().throttle_next = n;
    }

    /// A ticket someone opened in the desk by hand (a request that will ask licensewatch for a remediation).
    pub(crate) fn open(&self, system: &'static str, title: &str) -> FakeTicket {
        self.lock().create(
            system,
            FakeTicket {
                title: title.to_string(),
                ..Default::default()
            },
        )
    }

    pub(crate) fn set_delay(&self, ms: u64) {
        self.lock().delay_ms = ms;
    }
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.strip_prefix("Basic ")?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// Whether the request carries the system's credentials.
fn authorised(system: &str, headers: &HeaderMap) -> bool {
    let pair = |u: &str, p: &str| basic(headers) == Some((u.to_string(), p.to_string()));
    match system {
        "servicenow" => pair(SNOW_USER, SNOW_PASSWORD),
        "jira" => pair(JIRA_USER, JIRA_TOKEN),
        "halopsa" => header(headers, "authorization") == "Bearer halo-access-token",
        "connectwise" => {
            pair(&format!("{CW_COMPANY}+{CW_PUBLIC}"), CW_PRIVATE)
                && header(headers, "clientid") == CW_CLIENT
        }
        _ => {
            header(headers, "username") == AT_USER
                && header(headers, "secret") == AT_SECRET
                && header(headers, "apiintegrationcode") == AT_CODE
        }
    }
}

fn system_of(path: &str) -> &'static str {
    if path.starts_with("/api/now/") {
        "servicenow"
    } else if path.starts_with("/rest/api/3/") {
        "jira"
    } else if path.starts_with("/api/") || path == "/auth/token" {
        "halopsa"
    } else if path.starts_with("/v4_6_release/") {
        "connectwise"
    } else {
        "autotask"
    }
}

async fn serve(
    state: Arc<Mutex<Desk>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let delay = {
        let mut desk = state.lock().unwrap_or_else(|p| p.into_inner());
        desk.requests.push(format!("{method} {path}"));
        if desk.down {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        if desk.throttle_next > 0 {
            desk.throttle_next -= 1;
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")]).into_response();
        }
        desk.delay_ms
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let system = system_of(&path);
    if path == "/auth/token" {
        let form = String::from_utf8_lossy(&body).to_string();
        let ok = form.contains(&format!("client_id={HALO_CLIENT}"))
            && form.contains(&format!("client_secret={HALO_SECRET}"))
            && form.contains("grant_type=client_credentials");
        return if ok {
            axum::Json(json!({"access_token": "halo-access-token", "token_type": "Bearer", "expires_in": 3600}))
                .into_response()
        } else {
            StatusCode::UNAUTHORIZED.into_response()
        };
    }
    if !authorised(system, &headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut desk = state.lock().unwrap_or_else(|p| p.into_inner());
    let answer = match system {
        "servicenow" => servicenow(&mut desk, &method, &path, &query, &body),
        "jira" => jira(&mut desk, &method, &path, &body),
        "halopsa" => halopsa(&mut desk, &method, &path, &query, &body),
        "connectwise" => connectwise(&mut desk, &method, &path, &query, &body),
        _ => autotask(&mut desk, &method, &path, &body),
    };
    match answer {
        Some((status, v)) => (status, axum::Json(v)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

type Answer = Option<(StatusCode, Value)>;

impl Desk {
    fn create(&mut self, system: &'static str, t: FakeTicket) -> FakeTicket {
        self.next_id += 1;
        let id = self.next_id;
        let key = match system {
            "servicenow" => format!("{id:032x}"),
            "jira" => format!("IT-{id}"),
            _ => id.to_string(),
        };
        let t = FakeTicket {
            system,
            id,
            key,
            ..t
        };
        self.tickets.push(t.clone());
        t
    }

    fn find(&mut self, system: &str, key: &str) -> Option<&mut FakeTicket> {
        self.tickets
            .iter_mut()
            .find(|t| t.system == system && t.key == key)
    }

    fn by_correlation(&self, system: &str, correlation: &str) -> Vec<&FakeTicket> {
        self.tickets
            .iter()
            .filter(|t| {
                t.system == system && !correlation.is_empty() && t.correlation == correlation
            })
            .collect()
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Param `name` of a query string, decoded.
fn param(query: &str, name: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn servicenow(desk: &mut Desk, method: &Method, path: &str, query: &str, body: &Value) -> Answer {
    let rest = path.strip_prefix("/api/now/table/incident")?;
    match (method.as_str(), rest) {
        ("GET", "") => {
            let q = param(query, "sysparm_query");
            let number = |t: &FakeTicket| format!("INC{:07}", t.id);
            let found: Vec<Value> = desk
                .tickets
                .iter()
                .filter(|t| t.system == "servicenow")
                .filter(
                    |t| match (q.strip_prefix("correlation_id="), q.strip_prefix("number=")) {
                        (Some(c), _) => !c.is_empty() && t.correlation == c,
                        (_, Some(n)) => number(t) == n,
                        _ => false,
                    },
                )
                .map(|t| json!({"sys_id": t.key, "number": number(t)}))
                .collect();
            Some((StatusCode::OK, json!({"result": found})))
        }
        ("POST", "") => {
            let t = desk.create(
                "servicenow",
                FakeTicket {
                    correlation: text(&body["correlation_id"]),
                    title: text(&body["short_description"]),
                    text: text(&body["description"]),
                    queue: text(&body["assignment_group"]),
                    company: text(&body["company"]),
                    critical: body["urgency"] == "1",
                    ..Default::default()
                },
            );
            Some((
                StatusCode::CREATED,
                json!({"result": {"sys_id": t.key, "number": format!("INC{:07}", t.id)}}),
            ))
        }
        ("PATCH", id) => {
            let t = desk.find("servicenow", id.trim_start_matches('/'))?;
            if let Some(n) = body["work_notes"].as_str() {
                t.comments.push(n.to_string());
            }
            if body["state"] == "6" {
                t.resolved = true;
                t.comments.push(text(&body["close_notes"]));
            }
            Some((StatusCode::OK, json!({"result": {"sys_id": t.key}})))
        }
        _ => None,
    }
}

/// The text of an Atlassian Document Format document.
fn adf_text(doc: &Value) -> String {
    doc["content"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["content"].as_array().cloned().unwrap_or_default())
        .map(|n| text(&n["text"]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn jira(desk: &mut Desk, method: &Method, path: &str, body: &Value) -> Answer {
    let rest = path.strip_prefix("/rest/api/3/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["search", "jql"]) => {
            let jql = text(&body["jql"]);
            let label = jql
                .split("labels = \"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_default()
                .to_string();
            let issues: Vec<Value> = desk
                .by_correlation("jira", &label)
                .iter()
                .map(|t| json!({"id": t.id.to_string(), "key": t.key}))
                .collect();
            Some((StatusCode::OK, json!({"issues": issues})))
        }
        ("POST", ["issue"]) => {
            let f = &body["fields"];
            let labels: Vec<String> = f["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let t = desk.create(
                "jira",
                FakeTicket {
                    correlation: labels
                        .iter()
                        .find(|l| l.starts_with("lw-"))
                        .cloned()
                        .unwrap_or_default(),
                    title: text(&f["summary"]),
                    text: adf_text(&f["description"]),
                    queue: text(&f["project"]["key"]),
                    critical: labels.iter().any(|l| l == "licensewatch-critical"),
                    ..Default::default()
                },
            );
            Some((
                StatusCode::CREATED,
                json!({"id": t.id.to_string(), "key": t.key}),
            ))
        }
        ("POST", ["issue", key, "comment"]) => {
            let t = desk.find("jira", key)?;
            t.comments.push(adf_text(&body["body"]));
            Some((StatusCode::CREATED, json!({"id": "1"})))
        }
        ("GET", ["issue", key, "transitions"]) => {
            desk.find("jira", key)?;
            Some((
                StatusCode::OK,
                json!({"transitions": [
                    {"id": "11", "name": "To Do", "to": {"name": "To Do"}},
                    {"id": "21", "name": "In Progress", "to": {"name": "In Progress"}},
                    {"id": "31", "name": "Done", "to": {"name": "Done"}}]}),
            ))
        }
        ("POST", ["issue", key, "transitions"]) => {
            let t = desk.find("jira", key)?;
            if body["transition"]["id"] == "31" {
                t.resolved = true;
            }
            if let Some(c) = body["update"]["comment"][0]["add"]["body"].as_object() {
                t.comments.push(adf_text(&Value::Object(c.clone())));
            }
            Some((StatusCode::NO_CONTENT, Value::Null))
        }
        _ => None,
    }
}

fn halopsa(desk: &mut Desk, method: &Method, path: &str, query: &str, body: &Value) -> Answer {
    match (method.as_str(), path) {
        ("GET", "/api/Tickets") => {
            let search = param(query, "search");
            let tickets: Vec<Value> = desk
                .tickets
                .iter()
                .filter(|t| t.system == "halopsa" && !search.is_empty() && t.text.contains(&search))
                .map(|t| json!({"id": t.id, "summary": t.title, "details": t.text}))
                .collect();
            Some((
                StatusCode::OK,
                json!({"record_count": tickets.len(), "tickets": tickets}),
            ))
        }
        ("POST", "/api/Tickets") => {
            let item = body.get(0)?;
            if let Some(id) = item["id"].as_u64() {
                let t = desk.find("halopsa", &id.to_string())?;
                if item["status_id"] == 9 {
                    t.resolved = true;
                }
                return Some((StatusCode::CREATED, json!({"id": id})));
            }
            let details = text(&item["details"]);
            let t = desk.create(
                "halopsa",
                FakeTicket {
                    correlation: details
                        .split("licensewatch reference: ")
                        .nth(1)
                        .map(|r| r.trim().to_string())
                        .unwrap_or_default(),
                    title: text(&item["summary"]),
                    text: details,
                    queue: text(&item["team"]),
                    company: item["client_id"]
                        .as_u64()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    critical: item["priority_id"] == 1,
                    ..Default::default()
                },
            );
            Some((StatusCode::CREATED, json!({"id": t.id, "summary": t.title})))
        }
        ("POST", "/api/Actions") => {
            let item = body.get(0)?;
            let id = item["ticket_id"].as_u64()?;
            let t = desk.find("halopsa", &id.to_string())?;
            t.comments.push(text(&item["note"]));
            Some((StatusCode::CREATED, json!({"id": 1})))
        }
        _ => None,
    }
}

fn connectwise(desk: &mut Desk, method: &Method, path: &str, query: &str, body: &Value) -> Answer {
    let rest = path.strip_prefix("/v4_6_release/apis/3.0/service/tickets")?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", []) => {
            let conditions = param(query, "conditions");
            let corr = conditions
                .strip_prefix("externalXRef=\"")
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or_default();
            let found: Vec<Value> = desk
                .by_correlation("connectwise", corr)
                .iter()
                .map(|t| json!({"id": t.id, "summary": t.title}))
                .collect();
            Some((StatusCode::OK, Value::Array(found)))
        }
        ("POST", []) => {
            if text(&body["summary"]).chars().count() > 100 {
                return Some((StatusCode::BAD_REQUEST, json!({"code": "InvalidObject"})));
            }
            let t = desk.create(
                "connectwise",
                FakeTicket {
                    correlation: text(&body["externalXRef"]),
                    title: text(&body["summary"]),
                    text: text(&body["initialDescription"]),
                    queue: text(&body["board"]["name"]),
                    company: text(&body["company"]["identifier"]),
                    ..Default::default()
                },
            );
            Some((StatusCode::CREATED, json!({"id": t.id, "summary": t.title})))
        }
        ("POST", [id, "notes"]) => {
            let t = desk.find("connectwise", id)?;
            t.comments.push(text(&body["text"]));
            Some((StatusCode::CREATED, json!({"id": 1})))
        }
        ("PATCH", [id]) => {
            let t = desk.find("connectwise", id)?;
            if body[0]["path"] == "status/name" && body[0]["value"] == "Closed" {
                t.resolved = true;
            }
            Some((StatusCode::OK, json!({"id": t.id})))
        }
        _ => None,
    }
}

fn autotask(desk: &mut Desk, method: &Method, path: &str, body: &Value) -> Answer {
    let rest = path.strip_prefix("/ATServicesRest/V1.0/Tickets")?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["query"]) => {
            let corr = if body["filter"][0]["field"] == "externalID" {
                text(&body["filter"][0]["value"])
            } else {
                String::new()
            };
            let items: Vec<Value> = desk
                .by_correlation("autotask", &corr)
                .iter()
                .map(|t| json!({"id": t.id, "ticketNumber": format!("T20261207.{:04}", t.id)}))
                .collect();
            Some((
                StatusCode::OK,
                json!({"items": items, "pageDetails": {"count": items.len()}}),
            ))
        }
        ("POST", []) => {
            let t = desk.create(
                "autotask",
                FakeTicket {
                    correlation: text(&body["externalID"]),
                    title: text(&body["title"]),
                    text: text(&body["description"]),
                    queue: body["queueID"]
                        .as_i64()
                        .map(|q| q.to_string())
                        .unwrap_or_default(),
                    company: body["companyID"]
                        .as_i64()
                        .map(|c| c.to_string())
                        .unwrap_or_default(),
                    critical: body["priority"] == 4,
                    ..Default::default()
                },
            );
            Some((StatusCode::OK, json!({"itemId": t.id})))
        }
        ("POST", [id, "Notes"]) => {
            let t = desk.find("autotask", id)?;
            t.comments.push(text(&body["description"]));
            Some((StatusCode::OK, json!({"itemId": 1})))
        }
        ("PATCH", []) => {
            let id = body["id"].as_u64()?;
            let t = desk.find("autotask", &id.to_string())?;
            if body["status"] == 5 {
                t.resolved = true;
            }
            Some((StatusCode::OK, json!({"itemId": id})))
        }
        _ => None,
    }
}

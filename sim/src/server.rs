//! HTTP routes of the simulated tenant.
// Route helpers return the ready error `Response` as their `Err`: it is built only on the error path, so its size
// does not matter, and it keeps every handler a straight line of `match helper() { Ok(x) => x, Err(r) => return r }`.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::faults::{Fault, FaultKind, Faults};
use crate::scenario::{LicenseSpec, Scenario, UserSpec};
use crate::tenant::{LicenseWrite, Tenant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aud {
    Graph,
    Manage,
}

/// Shared state behind every route.
#[derive(Debug)]
pub struct Shared {
    /// The tenant.
    pub tenant: Mutex<Tenant>,
    faults: Mutex<Faults>,
    tokens: Mutex<HashMap<String, Aud>>,
    requests: Mutex<Vec<(String, String, u16)>>,
    base_url: String,
}

impl Shared {
    /// Locks the tenant (a poisoned lock still holds consistent data: every mutation is applied in one step).
    pub fn tenant(&self) -> MutexGuard<'_, Tenant> {
        self.tenant.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn tokens(&self) -> MutexGuard<'_, HashMap<String, Aud>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// Tenant GUID.
    pub tenant_id: String,
    /// State, for in-process inspection (tests, the demo).
    pub shared: Arc<Shared>,
}

/// Starts the simulator on `addr` (port 0 picks a free one) and serves until the process ends.
pub async fn start(scenario: Scenario, addr: SocketAddr) -> std::io::Result<SimHandle> {
    start_with(scenario, addr, None).await
}

/// Starts the simulator over HTTPS with `identity` (Microsoft's own client libraries, MSAL among them, refuse an
/// authority that is not https).
pub async fn start_tls(
    scenario: Scenario,
    addr: SocketAddr,
    identity: &crate::tls::TlsIdentity,
) -> std::io::Result<SimHandle> {
    start_with(scenario, addr, Some(identity.server_config())).await
}

async fn start_with(
    scenario: Scenario,
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{local}");
    let seed = scenario.seed;
    let tenant = Tenant::from_scenario(scenario);
    let tenant_id = tenant.tenant_id.clone();
    let shared = Arc::new(Shared {
        tenant: Mutex::new(tenant),
        faults: Mutex::new(Faults::seeded(seed)),
        tokens: Mutex::new(HashMap::new()),
        requests: Mutex::new(Vec::new()),
        base_url: base_url.clone(),
    });
    let app = router(shared.clone());
    match tls {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "simulator stopped");
                }
            });
        }
        Some(config) => {
            tokio::spawn(crate::tls::serve(listener, app, config));
        }
    }
    Ok(SimHandle {
        base_url,
        tenant_id,
        shared,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    let graph = Router::new()
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/users/{id}/assignLicense", post(user_assign_license))
        .route(
            "/v1.0/users/{id}/reprocessLicenseAssignment",
            post(user_reprocess),
        )
        .route("/v1.0/users/{id}/sendMail", post(send_mail))
        .route("/v1.0/subscribedSkus", get(subscribed_skus))
        .route("/v1.0/groups", get(list_groups))
        .route("/v1.0/groups/{id}", get(get_group))
        .route(
            "/v1.0/groups/{id}/membersWithLicenseErrors",
            get(members_with_errors),
        )
        .route(
            "/v1.0/groups/{id}/assignLicense",
            post(group_assign_license),
        )
        .route("/v1.0/auditLogs/directoryAudits", get(directory_audits))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_graph_token,
        ));
    let manage = Router::new()
        .route(
            "/api/v1.0/{tenant}/activity/feed/subscriptions/start",
            post(sub_start),
        )
        .route(
            "/api/v1.0/{tenant}/activity/feed/subscriptions/stop",
            post(sub_stop),
        )
        .route(
            "/api/v1.0/{tenant}/activity/feed/subscriptions/list",
            get(sub_list),
        )
        .route(
            "/api/v1.0/{tenant}/activity/feed/subscriptions/content",
            get(sub_content),
        )
        .route(
            "/api/v1.0/{tenant}/activity/feed/audit/{content_id}",
            get(get_blob),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_manage_token,
        ));
    let control = Router::new()
        .route("/_sim/state", get(ctl_state))
        .route("/_sim/clock", post(ctl_clock))
        .route(
            "/_sim/faults",
            post(ctl_add_fault).get(ctl_faults).delete(ctl_clear_faults),
        )
        .route("/_sim/users", post(ctl_add_user))
        .route("/_sim/users/{id}/licenses", post(ctl_user_licenses))
        .route(
            "/_sim/users/{id}/failed-assignment",
            post(ctl_failed_assignment),
        )
        .route("/_sim/users/{id}/usage-location", post(ctl_usage_location))
        .route("/_sim/skus/{id}/seats", post(ctl_seats))
        .route("/_sim/groups/{id}/members", post(ctl_group_members))
        .route("/_sim/mail", get(ctl_mail))
        .route("/_sim/writes", get(ctl_writes))
        .route("/_sim/requests", get(ctl_requests))
        .route("/_sim/tokens/revoke", post(ctl_revoke))
        .route("/_sim/audit/generate", post(ctl_generate_audit))
        .route("/_sim/audit/records", post(ctl_audit_records));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
        .route("/{tenant}/oauth2/token", post(token_v1))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .merge(graph)
        .merge(manage)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            inject_faults,
        ))
        .merge(control)
        .fallback(not_found)
        .with_state(shared)
}

// ---------- errors ----------

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    let rid = uuid::Uuid::new_v4().to_string();
    let body = json!({"error": {"code": code, "message": message,
        "innerError": {"date": Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(), "request-id": rid, "client-request-id": rid}}});
    let mut r = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        r.headers_mut().insert("request-id", v);
    }
    r
}

fn af_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        af_error(
            StatusCode::NOT_FOUND,
            "AF20000",
            "The requested resource does not exist.",
        )
    } else {
        graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "Resource not found for the segment '{}'.",
                req.uri().path().rsplit('/').next().unwrap_or("")
            ),
        )
    }
}

// ---------- middleware ----------

async fn inject_faults(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let hits = s.faults().take(&path);
    let mut truncate = false;
    let mut failure: Option<Response> = None;
    for f in hits {
        match f.kind {
            FaultKind::Latency => {
                tokio::time::sleep(StdDuration::from_millis(f.latency_ms.unwrap_or(0))).await
            }
            FaultKind::Timeout => {
                tokio::time::sleep(StdDuration::from_millis(f.latency_ms.unwrap_or(120_000))).await;
                failure = Some(graph_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "timeout",
                    "The request timed out.",
                ));
            }
            FaultKind::Throttle => {
                let mut r = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "Too many requests from Identifier:simulated under category:throttled.",
                );
                set_retry_after(&mut r, &f);
                r.headers_mut().insert(
                    "x-ms-throttle-scope",
                    HeaderValue::from_static("Tenant_Application/ReadWrite/sim"),
                );
                failure = Some(r);
            }
            FaultKind::Af429 => {
                failure = Some(af_error(
                    StatusCode::FORBIDDEN,
                    "AF429",
                    "Too many requests. Method=GetBlob, PublisherId=00000000-0000-0000-0000-000000000000",
                ))
            }
            FaultKind::ServerError => {
                failure = Some(graph_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generalException",
                    "An internal server error occurred.",
                ))
            }
            FaultKind::Unavailable => {
                let mut r = graph_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "serviceNotAvailable",
                    "The service is temporarily unavailable.",
                );
                set_retry_after(&mut r, &f);
                failure = Some(r);
            }
            FaultKind::Truncate => truncate = true,
        }
    }
    let resp = match failure {
        Some(r) => r,
        None => next.run(req).await,
    };
    let status = resp.status().as_u16();
    {
        let mut log = s.requests.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() < 200_000 {
            log.push((method, path, status));
        }
    }
    if truncate {
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        let mut parts = parts;
        parts.headers.remove("content-length");
        return Response::from_parts(parts, Body::from(cut));
    }
    resp
}

fn set_retry_after(r: &mut Response, f: &Fault) {
    if let Some(v) = f
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        r.headers_mut().insert("Retry-After", v);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

async fn require_graph_token(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    match bearer(req.headers()).map(|t| s.tokens().get(&t).copied()) {
        None => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ),
        Some(None) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token has expired or is not yet valid.",
        ),
        Some(Some(Aud::Manage)) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ),
        Some(Some(Aud::Graph)) => next.run(req).await,
    }
}

async fn require_manage_token(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let tenant_in_url = req.uri().path().split('/').nth(3).unwrap_or("").to_string();
    match bearer(req.headers()).map(|t| s.tokens().get(&t).copied()) {
        Some(Some(Aud::Manage)) => {
            let tid = s.tenant().tenant_id.clone();
            if !tenant_in_url.eq_ignore_ascii_case(&tid) {
                return af_error(
                    StatusCode::UNAUTHORIZED,
                    "AF20010",
                    &format!(
                        "The tenant ID passed in the URL ({tenant_in_url}) does not match the tenant ID passed in the access token ({tid})."
                    ),
                );
            }
            next.run(req).await
        }
        _ => af_error(
            StatusCode::UNAUTHORIZED,
            "AF10001",
            "Authorization has been denied for this request: a valid token for https://manage.office.com is required.",
        ),
    }
}

// ---------- tokens ----------

fn issue_token(
    s: &Shared,
    tenant: &str,
    form: &HashMap<String, String>,
    aud_hint: &str,
) -> Result<(String, Aud), Response> {
    let t = s.tenant();
    let aad = |status: StatusCode, error: &str, code: &str, desc: &str| {
        (
            status,
            Json(json!({"error": error, "error_description": format!("{code}: {desc}"), "error_codes": [code.trim_start_matches("AADSTS").parse::<u64>().unwrap_or(0)]})),
        )
            .into_response()
    };
    if !tenant.eq_ignore_ascii_case(&t.tenant_id) && !tenant.eq_ignore_ascii_case(&t.domain) {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS90002",
            &format!("Tenant '{tenant}' not found."),
        ));
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003",
            "The app requested an unsupported grant type; only client_credentials is simulated.",
        ));
    }
    let Some(client_id) = form.get("client_id") else {
        return Err(aad(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144",
            "The request body must contain the following parameter: 'client_id'.",
        ));
    };
    let secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    if secret.is_none() && assertion.is_none() {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000216",
            "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        ));
    }
    if let Some(a) = assertion
        && (form.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            || a.split('.').count() != 3)
    {
        return Err(aad(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS50027",
            "JWT token is invalid or malformed.",
        ));
    }
    if let Some(app) = &t.app {
        if !client_id.eq_ignore_ascii_case(&app.client_id) {
            return Err(aad(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "AADSTS700016",
                &format!(
                    "Application with identifier '{client_id}' was not found in the directory."
                ),
            ));
        }
        if let Some(sec) = secret
            && sec != &app.client_secret
        {
            return Err(aad(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215",
                "Invalid client secret provided.",
            ));
        }
    }
    drop(t);
    let aud = if aud_hint.contains("manage") {
        Aud::Manage
    } else {
        Aud::Graph
    };
    let token = format!(
        "sim.{}",
        URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes())
    );
    s.tokens().insert(token.clone(), aud);
    Ok((token, aud))
}

/// The tenant's OpenID Connect discovery document: client libraries (MSAL) read the token endpoint from it.
async fn openid_configuration(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
) -> Response {
    let t = s.tenant();
    if !tenant.eq_ignore_ascii_case(&t.tenant_id) && !tenant.eq_ignore_ascii_case(&t.domain) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found.")})),
        )
            .into_response();
    }
    let base = format!("{}/{}", s.base_url, t.tenant_id);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{}/{}/discovery/v2.0/keys", s.base_url, t.tenant_id),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
        "request_uri_parameter_supported": false,
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com"
    }))
    .into_response()
}

async fn token_v2(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let scope = form.get("scope").cloned().unwrap_or_default();
    if !scope.ends_with("/.default") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_scope", "error_description": "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."})),
        )
            .into_response();
    }
    match issue_token(&s, &tenant, &form, &scope) {
        Ok((token, _)) => Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response(),
        Err(r) => r,
    }
}

async fn token_v1(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let resource = form.get("resource").cloned().unwrap_or_default();
    if resource.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "AADSTS50001: The request body must contain the following parameter: 'resource'."})),
        )
            .into_response();
    }
    match issue_token(&s, &tenant, &form, &resource) {
        Ok((token, _)) => {
            let now = Utc::now().timestamp();
            Json(json!({"token_type": "Bearer", "expires_in": "3599", "ext_expires_in": "3599",
                "expires_on": (now + 3599).to_string(), "not_before": now.to_string(), "resource": resource, "access_token": token}))
            .into_response()
        }
        Err(r) => r,
    }
}

// ---------- Graph: users ----------

#[derive(Debug, Deserialize, Default)]
struct ODataQuery {
    #[serde(rename = "$select")]
    select: Option<String>,
    #[serde(rename = "$top")]
    top: Option<String>,
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
    #[serde(rename = "$filter")]
    filter: Option<String>,
}

fn page_size(q: &ODataQuery, default: usize) -> Result<usize, Response> {
    match &q.top {
        None => Ok(default),
        Some(t) => match t.parse::<i64>() {
            Ok(n) if (1..=999).contains(&n) => Ok(n as usize),
            _ => Err(graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                &format!(
                    "Invalid page size specified: '{t}'. Must be between 1 and 999 inclusive."
                ),
            )),
        },
    }
}

fn decode_skiptoken(q: &ODataQuery, kind: &str) -> Result<usize, Response> {
    match &q.skiptoken {
        None => Ok(0),
        Some(tok) => URL_SAFE_NO_PAD
            .decode(tok)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.strip_prefix(&format!("{kind}:")).and_then(|n| n.parse().ok()))
            .ok_or_else(|| {
                graph_error(
                    StatusCode::BAD_REQUEST,
                    "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.",
                )
            }),
    }
}

fn next_link(
    base: &str,
    path: &str,
    q: &ODataQuery,
    kind: &str,
    offset: usize,
    top: usize,
) -> String {
    let mut u = url_with(base, path);
    {
        let mut pairs = u.query_pairs_mut();
        if let Some(s) = &q.select {
            pairs.append_pair("$select", s);
        }
        if let Some(f) = &q.filter {
            pairs.append_pair("$filter", f);
        }
        pairs.append_pair("$top", &top.to_string());
        pairs.append_pair(
            "$skiptoken",
            &URL_SAFE_NO_PAD.encode(format!("{kind}:{offset}")),
        );
    }
    u.to_string()
}

fn url_with(base: &str, path: &str) -> url::Url {
    url::Url::parse(&format!("{base}{path}")).unwrap_or_else(|_| unreachable!("base URL is valid"))
}

fn select_set(q: &ODataQuery) -> Option<HashSet<String>> {
    q.select.as_ref().map(|s| {
        s.split(',')
            .map(|x| x.trim().to_ascii_lowercase())
            .filter(|x| !x.is_empty())
            .collect()
    })
}

/// Every user property the sim serves, in output order. The first 11 are Graph's default set (licence fields
/// need `$select`).
const USER_PROPS: [&str; 20] = [
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "businessPhones",
    "givenName",
    "surname",
    "jobTitle",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "accountEnabled",
    "userType",
    "usageLocation",
    "createdDateTime",
    "onPremisesSyncEnabled",
    "proxyAddresses",
    "assignedLicenses",
    "assignedPlans",
    "licenseAssignmentStates",
];

/// Which of [`USER_PROPS`] a request wants, worked out once per request rather than per user and property.
#[derive(Debug, Clone, Copy)]
struct UserFields(u32);

impl UserFields {
    fn from_select(select: Option<&HashSet<String>>) -> Self {
        let mut bits = 1; // `id` is always returned
        for (i, name) in USER_PROPS.iter().enumerate() {
            let wanted = match select {
                Some(sel) => sel.contains(&name.to_ascii_lowercase()),
                None => i < 11,
            };
            if wanted {
                bits |= 1 << i;
            }
        }
        Self(bits)
    }

    fn has(self, name: &str) -> bool {
        USER_PROPS
            .iter()
            .position(|p| *p == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

fn graph_time(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LicenseOut<'a> {
    disabled_plans: &'a [String],
    sku_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanOut<'a> {
    assigned_date_time: String,
    capability_status: &'a str,
    service: &'a str,
    service_plan_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateOut<'a> {
    assigned_by_group: Option<&'a str>,
    disabled_plans: &'a [String],
    error: &'a str,
    last_updated_date_time: String,
    sku_id: &'a str,
    state: &'a str,
}

/// One user as Graph renders it, serialised straight to the response bytes (no intermediate JSON tree).
struct UserView<'a> {
    t: &'a Tenant,
    ui: usize,
    fields: UserFields,
}

impl Serialize for UserView<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let (t, f) = (self.t, self.fields);
        let u = &t.users[self.ui];
        let s = &u.spec;
        let none: Option<&str> = None;
        let mut m = ser.serialize_map(None)?;
        macro_rules! put {
            ($k:literal, $v:expr) => {
                if f.has($k) {
                    m.serialize_entry($k, &$v)?;
                }
            };
        }
        put!("id", s.id);
        put!("userPrincipalName", s.upn);
        put!("displayName", s.display_name);
        put!("mail", s.mail);
        put!("businessPhones", [(); 0]);
        put!("givenName", none);
        put!("surname", none);
        put!("jobTitle", none);
        put!("mobilePhone", none);
        put!("officeLocation", none);
        put!("preferredLanguage", none);
        put!("accountEnabled", s.account_enabled);
        put!("userType", s.user_type);
        put!("usageLocation", s.usage_location);
        put!("createdDateTime", graph_time(&s.created));
        put!("onPremisesSyncEnabled", s.on_premises_sync);
        put!(
            "proxyAddresses",
            s.proxy_addresses.as_deref().unwrap_or_default()
        );
        let active = if f.has("assignedLicenses") || f.has("assignedPlans") {
            u.active_licenses()
        } else {
            Vec::new()
        };
        if f.has("assignedLicenses") {
            let out: Vec<LicenseOut> = active
                .iter()
                .map(|l| LicenseOut {
                    disabled_plans: &l.disabled_plans,
                    sku_id: &l.sku_id,
                })
                .collect();
            m.serialize_entry("assignedLicenses", &out)?;
        }
        if f.has("assignedPlans") {
            let mut plans = Vec::new();
            for l in &active {
                let Some(sku) = t.sku(&l.sku_id) else {
                    continue;
                };
                let status = if sku.enabled == 0 && sku.warning > 0 {
                    "Warning"
                } else {
                    "Enabled"
                };
                for p in sku
                    .service_plans
                    .iter()
                    .filter(|p| !l.disabled_plans.contains(&p.id))
                {
                    plans.push(PlanOut {
                        assigned_date_time: graph_time(
                            &u.plan_dates.get(&p.id).copied().unwrap_or(t.now),
                        ),
                        capability_status: status,
                        service: &p.service,
                        service_plan_id: &p.id,
                    });
                }
            }
            for (id, service) in &u.deleted_plans {
                plans.push(PlanOut {
                    assigned_date_time: graph_time(&t.now),
                    capability_status: "Deleted",
                    service,
                    service_plan_id: id,
                });
            }
            m.serialize_entry("assignedPlans", &plans)?;
        }
        if f.has("licenseAssignmentStates") {
            let states: Vec<StateOut> = u
                .assignments
                .iter()
                .map(|a| StateOut {
                    assigned_by_group: a.by_group.as_deref(),
                    disabled_plans: &a.disabled_plans,
                    error: a.error.as_deref().unwrap_or("None"),
                    last_updated_date_time: graph_time(&a.updated),
                    sku_id: &a.sku_id,
                    state: a.state,
                })
                .collect();
            m.serialize_entry("licenseAssignmentStates", &states)?;
        }
        m.end()
    }
}

fn render_user(t: &Tenant, ui: usize, select: Option<&HashSet<String>>) -> Value {
    let view = UserView {
        t,
        ui,
        fields: UserFields::from_select(select),
    };
    serde_json::to_value(view).unwrap_or(Value::Null)
}

#[derive(Serialize)]
struct UserPage<'a> {
    #[serde(rename = "@odata.context")]
    context: String,
    // Graph sends the next link before the items.
    #[serde(rename = "@odata.nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
    value: Vec<UserView<'a>>,
}

async fn list_users(State(s): State<Arc<Shared>>, Query(q): Query<ODataQuery>) -> Response {
    if q.filter.is_some() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "Request_UnsupportedQuery",
            "The simulated tenant does not support $filter on users.",
        );
    }
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "u") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let fields = UserFields::from_select(select_set(&q).as_ref());
    let t = s.tenant();
    let end = (offset + top).min(t.users.len());
    let page = UserPage {
        context: format!("{}/v1.0/$metadata#users", s.base_url),
        value: (offset.min(end)..end)
            .map(|ui| UserView { t: &t, ui, fields })
            .collect(),
        next_link: (end < t.users.len())
            .then(|| next_link(&s.base_url, "/v1.0/users", &q, "u", end, top)),
    };
    let body = serde_json::to_vec(&page).unwrap_or_default();
    drop(page);
    drop(t);
    ([("content-type", "application/json")], body).into_response()
}

fn user_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn get_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let t = s.tenant();
    match t.find_user(&id) {
        Some(i) => Json(render_user(&t, i, select_set(&q).as_ref())).into_response(),
        None => user_not_found(&id),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignBody {
    add_licenses: Option<Vec<AddLicense>>,
    remove_licenses: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddLicense {
    sku_id: String,
    #[serde(default)]
    disabled_plans: Vec<String>,
}

/// An action's body as Graph reads it: parameter names are case-insensitive (Microsoft's SDKs send them as the
/// metadata spells them, `Message`, `AddLicenses`), and instance annotations (`@odata.type`) are accepted and
/// ignored at any depth. Known parameters come back under their documented names.
fn action_body(raw: &[u8], parameters: &[&str]) -> Result<Value, String> {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .filter(|(k, _)| !k.contains('@'))
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    let v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    let Value::Object(top) = strip(v) else {
        return Err("the body must be a JSON object".into());
    };
    Ok(Value::Object(
        top.into_iter()
            .map(|(k, v)| {
                let name = parameters
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(&k))
                    .map_or(k, |p| p.to_string());
                (name, v)
            })
            .collect(),
    ))
}

fn parse_assign(body: &Bytes) -> Result<(Vec<LicenseSpec>, Vec<String>), Response> {
    let bad = |e: String| {
        graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Unable to read JSON request payload: {e}"),
        )
    };
    let value = action_body(body, &["addLicenses", "removeLicenses"]).map_err(bad)?;
    let parsed: AssignBody = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    let (Some(add), Some(remove)) = (parsed.add_licenses, parsed.remove_licenses) else {
        return Err(graph_error(
            StatusCode::BAD_REQUEST,
            "Request_BadRequest",
            "Invalid value specified for property 'addLicenses' or 'removeLicenses': both are required (use [] when empty).",
        ));
    };
    Ok((
        add.into_iter()
            .map(|a| LicenseSpec {
                sku_id: a.sku_id,
                disabled_plans: a.disabled_plans,
            })
            .collect(),
        remove,
    ))
}

fn actor_for(headers: &HeaderMap, t: &Tenant) -> String {
    headers
        .get("x-sim-actor")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| t.app.as_ref().map(|a| a.display_name.clone()))
        .unwrap_or_else(|| "licensewatch".into())
}

async fn user_assign_license(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (add, remove) = match parse_assign(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = actor_for(&headers, &t);
    let result = t.assign_direct(ui, &add, &remove, Some(&actor), true);
    let now = t.now;
    let ok = result.is_ok();
    let detail = json!({"addLicenses": add.iter().map(|l| json!({"skuId": l.sku_id, "disabledPlans": l.disabled_plans})).collect::<Vec<_>>(),
        "removeLicenses": remove, "error": result.as_ref().err().map(|e| e.message.clone())});
    let target = t.users[ui].spec.id.clone();
    t.writes.push(LicenseWrite {
        at: now,
        operation: "assignLicense".into(),
        target,
        ok,
        detail,
    });
    match result {
        Ok(()) => Json(render_user(&t, ui, None)).into_response(),
        Err(e) => graph_error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.code,
            &e.message,
        ),
    }
}

async fn user_reprocess(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    t.reprocess_user(ui);
    let now = t.now;
    let target = t.users[ui].spec.id.clone();
    t.writes.push(LicenseWrite {
        at: now,
        operation: "reprocessLicenseAssignment".into(),
        target,
        ok: true,
        detail: json!({}),
    });
    Json(render_user(&t, ui, None)).into_response()
}

async fn send_mail(State(s): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Response {
    let parsed: Value = match action_body(&body, &["message", "saveToSentItems"]) {
        Ok(v) => v,
        Err(e) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "ErrorInvalidRequest",
                &format!("Cannot read the request body: {e}"),
            );
        }
    };
    let to = parsed["message"]["toRecipients"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if to.is_empty() {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        );
    }
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            &format!("The requested user '{id}' is invalid."),
        );
    };
    let from = t.users[ui].spec.upn.clone();
    let now = t.now;
    t.mail.push(json!({"at": now, "from": from, "message": parsed["message"], "saveToSentItems": parsed["saveToSentItems"]}));
    StatusCode::ACCEPTED.into_response()
}

async fn subscribed_skus(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    let value: Vec<Value> = t
        .skus
        .iter()
        .map(|k| {
            let status = if k.enabled == 0 && k.warning > 0 {
                "Warning"
            } else if k.enabled == 0 && k.suspended > 0 {
                "Suspended"
            } else {
                "Enabled"
            };
            json!({"accountName": "Contoso", "accountId": t.tenant_id, "appliesTo": "User", "capabilityStatus": status,
                "consumedUnits": t.consumed(&k.sku_id), "id": format!("{}_{}", t.tenant_id, k.sku_id),
                "prepaidUnits": {"enabled": k.enabled, "lockedOut": k.locked_out, "suspended": k.suspended, "warning": k.warning},
                "servicePlans": k.service_plans.iter().map(|p| json!({"servicePlanId": p.id, "servicePlanName": p.name,
                    "provisioningStatus": "Success", "appliesTo": "User"})).collect::<Vec<_>>(),
                "skuId": k.sku_id, "skuPartNumber": k.sku_part_number, "subscriptionIds": [format!("{}-sub", &k.sku_id[..8])]})
        })
        .collect();
    Json(json!({"@odata.context": format!("{}/v1.0/$metadata#subscribedSkus", s.base_url), "value": value})).into_response()
}

// ---------- Graph: groups ----------

fn group_has_errors(t: &Tenant, gi: usize) -> bool {
    let gid = &t.groups[gi].id;
    t.groups[gi].members.iter().any(|m| {
        t.find_user(m).is_some_and(|ui| {
            t.users[ui]
                .assignments
                .iter()
                .any(|a| a.by_group.as_deref() == Some(gid.as_str()) && a.error.is_some())
        })
    })
}

/// Keeps only the `$select`ed properties of an entity (and its `id`, which Graph always returns).
fn selected(mut v: Value, select: Option<&HashSet<String>>) -> Value {
    if let (Some(sel), Some(m)) = (select, v.as_object_mut()) {
        m.retain(|k, _| k == "id" || sel.contains(&k.to_ascii_lowercase()));
    }
    v
}

fn render_group(t: &Tenant, gi: usize) -> Value {
    let g = &t.groups[gi];
    json!({"id": g.id, "displayName": g.display_name, "securityEnabled": true, "mailEnabled": false, "groupTypes": [],
        "assignedLicenses": g.licenses.iter().map(|l| json!({"disabledPlans": l.disabled_plans, "skuId": l.sku_id})).collect::<Vec<_>>(),
        "licenseProcessingState": {"state": "ProcessingComplete"}})
}

async fn list_groups(State(s): State<Arc<Shared>>, Query(q): Query<ODataQuery>) -> Response {
    let only_errors = match q
        .filter
        .as_deref()
        .map(|f| f.replace(' ', "").to_ascii_lowercase())
    {
        None => false,
        Some(f) if f == "hasmemberswithlicenseerrorseqtrue" => true,
        Some(_) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "Unsupported or invalid query filter clause specified.",
            );
        }
    };
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "g") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let all: Vec<usize> = (0..t.groups.len())
        .filter(|&g| !only_errors || group_has_errors(&t, g))
        .collect();
    let end = (offset + top).min(all.len());
    let select = select_set(&q);
    let value: Vec<Value> = all[offset.min(end)..end]
        .iter()
        .map(|&g| selected(render_group(&t, g), select.as_ref()))
        .collect();
    let mut body =
        json!({"@odata.context": format!("{}/v1.0/$metadata#groups", s.base_url), "value": value});
    if end < all.len() {
        body["@odata.nextLink"] = json!(next_link(&s.base_url, "/v1.0/groups", &q, "g", end, top));
    }
    Json(body).into_response()
}

fn group_not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        &format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

async fn get_group(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let t = s.tenant();
    match t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) {
        Some(g) => Json(selected(render_group(&t, g), select_set(&q).as_ref())).into_response(),
        None => group_not_found(&id),
    }
}

async fn members_with_errors(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Query<ODataQuery>,
) -> Response {
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "m") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    let gid = t.groups[gi].id.clone();
    let members: Vec<usize> = t.groups[gi]
        .members
        .iter()
        .filter_map(|m| t.find_user(m))
        .filter(|&ui| {
            t.users[ui]
                .assignments
                .iter()
                .any(|a| a.by_group.as_deref() == Some(gid.as_str()) && a.error.is_some())
        })
        .collect();
    let end = (offset + top).min(members.len());
    // Members are users: `$select` picks their fields (licence fields included), as for /users.
    let select = select_set(&q);
    let value: Vec<Value> = members[offset.min(end)..end]
        .iter()
        .map(|&ui| {
            let mut v = render_user(&t, ui, select.as_ref());
            if let Some(m) = v.as_object_mut() {
                m.insert("@odata.type".into(), json!("#microsoft.graph.user"));
            }
            v
        })
        .collect();
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#directoryObjects", s.base_url), "value": value});
    if end < members.len() {
        body["@odata.nextLink"] = json!(next_link(
            &s.base_url,
            &format!("/v1.0/groups/{gid}/membersWithLicenseErrors"),
            &q,
            "m",
            end,
            top
        ));
    }
    Json(body).into_response()
}

async fn group_assign_license(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (add, remove) = match parse_assign(&body) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    for l in &add {
        if t.sku(&l.sku_id).is_none() {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &format!(
                    "License {} does not correspond to a valid company License.",
                    l.sku_id
                ),
            );
        }
    }
    let g = &mut t.groups[gi];
    g.licenses
        .retain(|l| !remove.iter().any(|r| r.eq_ignore_ascii_case(&l.sku_id)));
    for l in add.iter() {
        g.licenses
            .retain(|x| !x.sku_id.eq_ignore_ascii_case(&l.sku_id));
        g.licenses.push(l.clone());
    }
    let now = t.now;
    t.writes.push(LicenseWrite {
        at: now,
        operation: "groupAssignLicense".into(),
        target: id.clone(),
        ok: true,
        detail: json!({"add": add.len(), "remove": remove}),
    });
    t.reprocess_group(gi);
    (StatusCode::ACCEPTED, Json(render_group(&t, gi))).into_response()
}

// ---------- Graph: directory audits ----------

fn parse_graph_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.trim().trim_matches('\''))
        .ok()
        .map(|d| d.to_utc())
}

type AuditFilter = Box<dyn Fn(&Value, DateTime<Utc>) -> bool + Send>;

fn parse_audit_filter(f: &str) -> Result<Vec<AuditFilter>, String> {
    let mut out: Vec<AuditFilter> = Vec::new();
    for clause in f.split(" and ") {
        let parts: Vec<&str> = clause.trim().splitn(3, ' ').collect();
        if parts.len() != 3 {
            return Err(format!("Invalid filter clause: '{clause}'"));
        }
        let (field, op, value) = (parts[0], parts[1], parts[2]);
        match field {
            "activityDateTime" => {
                let t = parse_graph_time(value)
                    .ok_or_else(|| format!("Invalid DateTimeOffset value '{value}'"))?;
                let cmp: AuditFilter = match op {
                    "ge" => Box::new(move |_, at| at >= t),
                    "gt" => Box::new(move |_, at| at > t),
                    "le" => Box::new(move |_, at| at <= t),
                    "lt" => Box::new(move |_, at| at < t),
                    "eq" => Box::new(move |_, at| at == t),
                    _ => return Err(format!("Unsupported operator '{op}'")),
                };
                out.push(cmp);
            }
            "activityDisplayName" | "category" | "result" | "correlationId" if op == "eq" => {
                let want = value.trim_matches('\'').to_string();
                let key = field.to_string();
                out.push(Box::new(move |v, _| {
                    v[&key].as_str() == Some(want.as_str())
                }));
            }
            _ => return Err(format!("Unsupported filter on '{field}' with '{op}'")),
        }
    }
    Ok(out)
}

async fn directory_audits(State(s): State<Arc<Shared>>, Query(q): Query<ODataQuery>) -> Response {
    let filters = match q.filter.as_deref().map(parse_audit_filter).transpose() {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    let top = match page_size(&q, 100) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let offset = match decode_skiptoken(&q, "a") {
        Ok(o) => o,
        Err(r) => return r,
    };
    let t = s.tenant();
    let oldest = t.now - t.audit_retention;
    // Newest first, as Graph returns them.
    let matching: Vec<&Value> = t
        .directory_audits
        .iter()
        .rev()
        .filter(|a| a.at >= oldest && a.at <= t.now && filters.iter().all(|f| f(&a.json, a.at)))
        .map(|a| &a.json)
        .collect();
    let end = (offset + top).min(matching.len());
    let value: Vec<Value> = matching[offset.min(end)..end]
        .iter()
        .map(|v| (*v).clone())
        .collect();
    let mut body = json!({"@odata.context": format!("{}/v1.0/$metadata#auditLogs/directoryAudits", s.base_url), "value": value});
    if end < matching.len() {
        body["@odata.nextLink"] = json!(next_link(
            &s.base_url,
            "/v1.0/auditLogs/directoryAudits",
            &q,
            "a",
            end,
            top
        ));
    }
    Json(body).into_response()
}

// ---------- Management Activity API ----------

#[derive(Debug, Deserialize)]
struct FeedQuery {
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    #[serde(rename = "startTime")]
    start: Option<String>,
    #[serde(rename = "endTime")]
    end: Option<String>,
    #[serde(rename = "nextPage")]
    next_page: Option<String>,
    #[serde(rename = "PublisherIdentifier")]
    publisher: Option<String>,
}

const CONTENT_TYPES: [&str; 5] = [
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
];

fn check_content_type(ct: Option<&str>) -> Result<String, Response> {
    match ct {
        Some(c) if CONTENT_TYPES.iter().any(|x| x.eq_ignore_ascii_case(c)) => Ok(c.to_string()),
        _ => Err(af_error(
            StatusCode::BAD_REQUEST,
            "AF20020",
            "The specified content type is not valid.",
        )),
    }
}

async fn sub_start(State(s): State<Arc<Shared>>, Query(q): Query<FeedQuery>) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    s.tenant().subscriptions.insert(ct.clone(), true);
    Json(json!({"contentType": ct, "status": "enabled", "webhook": null})).into_response()
}

async fn sub_stop(State(s): State<Arc<Shared>>, Query(q): Query<FeedQuery>) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    s.tenant().subscriptions.insert(ct, false);
    StatusCode::NO_CONTENT.into_response()
}

async fn sub_list(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    let v: Vec<Value> = t
        .subscriptions
        .iter()
        .map(|(ct, on)| json!({"contentType": ct, "status": if *on {"enabled"} else {"disabled"}, "webhook": null}))
        .collect();
    Json(v).into_response()
}

fn parse_feed_time(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim().trim_end_matches('Z');
    let v = v.split('.').next().unwrap_or(v);
    NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M"))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
        .map(|n| n.and_utc())
}

/// Blobs per listing page.
const CONTENT_PAGE: usize = 200;

async fn sub_content(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(q): Query<FeedQuery>,
) -> Response {
    let ct = match check_content_type(q.content_type.as_deref()) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let t = s.tenant();
    if t.subscriptions.get(&ct) != Some(&true) {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20022",
            &format!("No subscription found for the specified content type ({ct})."),
        );
    }
    let window_err = || {
        af_error(
            StatusCode::BAD_REQUEST,
            "AF20030",
            "Start time and end time must both be specified (or both omitted) and must be less than or equal to 24 hours apart, with the start time prior to end time and start time no more than 7 days in the past.",
        )
    };
    let (start, end) = match (q.start.as_deref(), q.end.as_deref()) {
        (None, None) => (t.now - Duration::hours(24), t.now),
        (Some(a), Some(b)) => match (parse_feed_time(a), parse_feed_time(b)) {
            (Some(a), Some(b)) => (a, b),
            _ => return window_err(),
        },
        _ => return window_err(),
    };
    if end <= start || end - start > Duration::hours(24) {
        return window_err();
    }
    if start < t.now - Duration::days(7) {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20055",
            "Start time cannot be more than 7 days in the past.",
        );
    }
    let offset: usize = match q.next_page.as_deref() {
        None => 0,
        Some(p) => match p.strip_prefix("p").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return af_error(
                    StatusCode::BAD_REQUEST,
                    "AF20031",
                    "Invalid nextPage Input.",
                );
            }
        },
    };
    let listed: Vec<Value> = t
        .blobs
        .iter()
        .filter(|b| b.content_type == ct && b.created >= start && b.created < end && b.visible_from <= t.now)
        .map(|b| {
            json!({"contentType": b.content_type, "contentId": b.content_id,
                "contentUri": format!("{}/api/v1.0/{}/activity/feed/audit/{}", s.base_url, tenant, b.content_id),
                "contentCreated": b.created.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                "contentExpiration": (b.created + Duration::days(7)).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()})
        })
        .collect();
    let stop = (offset + CONTENT_PAGE).min(listed.len());
    let page = listed[offset.min(stop)..stop].to_vec();
    let mut r = Json(page).into_response();
    if stop < listed.len() {
        let mut u = url_with(
            &s.base_url,
            &format!("/api/v1.0/{tenant}/activity/feed/subscriptions/content"),
        );
        {
            let mut p = u.query_pairs_mut();
            p.append_pair("contentType", &ct);
            p.append_pair("startTime", &start.format("%Y-%m-%dT%H:%M:%S").to_string());
            p.append_pair("endTime", &end.format("%Y-%m-%dT%H:%M:%S").to_string());
            if let Some(pubid) = &q.publisher {
                p.append_pair("PublisherIdentifier", pubid);
            }
            p.append_pair("nextPage", &format!("p{stop}"));
        }
        if let Ok(v) = HeaderValue::from_str(u.as_str()) {
            r.headers_mut().insert("NextPageUri", v);
        }
    }
    r
}

async fn get_blob(
    State(s): State<Arc<Shared>>,
    Path((_tenant, content_id)): Path<(String, String)>,
) -> Response {
    let t = s.tenant();
    let Some(b) = t
        .blobs
        .iter()
        .find(|b| b.content_id == content_id && b.visible_from <= t.now)
    else {
        return af_error(
            StatusCode::NOT_FOUND,
            "AF20050",
            "The specified content does not exist.",
        );
    };
    if b.created + Duration::days(7) < t.now {
        return af_error(
            StatusCode::BAD_REQUEST,
            "AF20051",
            &format!(
                "Content requested with the key {content_id} has already expired. Content older than 7 days cannot be retrieved."
            ),
        );
    }
    Json(t.blob_records(b)).into_response()
}

// ---------- control API ----------

async fn ctl_state(State(s): State<Arc<Shared>>) -> Response {
    let t = s.tenant();
    Json(json!({"tenant_id": t.tenant_id, "now": t.now, "users": t.users.len(), "groups": t.groups.len(),
        "skus": t.skus.iter().map(|k| json!({"sku_id": k.sku_id, "sku_part_number": k.sku_part_number,
            "enabled": k.enabled, "consumed": t.consumed(&k.sku_id)})).collect::<Vec<_>>(),
        "directory_audits": t.directory_audits.len(), "blobs": t.blobs.len(), "mail": t.mail.len(), "writes": t.writes.len()}))
    .into_response()
}

#[derive(Deserialize)]
struct ClockBody {
    #[serde(default)]
    advance_days: i64,
    #[serde(default)]
    advance_hours: i64,
    #[serde(default)]
    advance_minutes: i64,
    #[serde(default)]
    set: Option<DateTime<Utc>>,
}

async fn ctl_clock(State(s): State<Arc<Shared>>, Json(b): Json<ClockBody>) -> Response {
    let mut t = s.tenant();
    if let Some(at) = b.set {
        t.now = at;
    }
    t.advance(
        Duration::days(b.advance_days)
            + Duration::hours(b.advance_hours)
            + Duration::minutes(b.advance_minutes),
    );
    Json(json!({"now": t.now})).into_response()
}

async fn ctl_add_fault(State(s): State<Arc<Shared>>, Json(f): Json<Fault>) -> Response {
    s.faults().add(f);
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.faults().list())).into_response()
}

async fn ctl_clear_faults(State(s): State<Arc<Shared>>) -> Response {
    s.faults().clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_add_user(State(s): State<Arc<Shared>>, Json(u): Json<UserSpec>) -> Response {
    let mut t = s.tenant();
    if t.find_user(&u.id).is_some() || t.find_user(&u.upn).is_some() {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "a user with this id or upn exists"})),
        )
            .into_response();
    }
    let i = t.insert_user(u, true);
    (StatusCode::CREATED, Json(render_user(&t, i, None))).into_response()
}

#[derive(Deserialize)]
struct CtlLicenses {
    #[serde(default)]
    add: Vec<LicenseSpec>,
    #[serde(default)]
    remove: Vec<String>,
    #[serde(default)]
    actor: Option<String>,
}

async fn ctl_user_licenses(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlLicenses>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = admin_or(b.actor, &t);
    match t.assign_direct(ui, &b.add, &b.remove, Some(&actor), true) {
        Ok(()) => Json(render_user(&t, ui, None)).into_response(),
        Err(e) => graph_error(StatusCode::BAD_REQUEST, e.code, &e.message),
    }
}

/// The actor named by a control call, or the tenant's admin account.
fn admin_or(actor: Option<String>, t: &Tenant) -> String {
    actor.unwrap_or_else(|| format!("admin@{}", t.domain))
}

#[derive(Deserialize)]
struct CtlFailed {
    sku_ids: Vec<String>,
    reason: String,
    #[serde(default)]
    actor: Option<String>,
}

async fn ctl_failed_assignment(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlFailed>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    let actor = admin_or(b.actor, &t);
    let lic = LicenseSpec::plain(&b.sku_ids);
    let now = t.now;
    t.audit_change(now, ui, Some(&actor), &[], &lic, Some(&b.reason));
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct CtlLocation {
    usage_location: Option<String>,
}

async fn ctl_usage_location(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlLocation>,
) -> Response {
    let mut t = s.tenant();
    let Some(ui) = t.find_user(&id) else {
        return user_not_found(&id);
    };
    t.users[ui].spec.usage_location = b.usage_location;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct CtlSeats {
    #[serde(default)]
    enabled: Option<i64>,
    #[serde(default)]
    warning: Option<i64>,
    #[serde(default)]
    suspended: Option<i64>,
}

async fn ctl_seats(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlSeats>,
) -> Response {
    let mut t = s.tenant();
    let Some(k) = t
        .skus
        .iter_mut()
        .find(|k| k.sku_id.eq_ignore_ascii_case(&id) || k.sku_part_number == id)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no SKU {id}")})),
        )
            .into_response();
    };
    if let Some(e) = b.enabled {
        k.enabled = e.max(0);
    }
    if let Some(w) = b.warning {
        k.warning = w.max(0);
    }
    if let Some(su) = b.suspended {
        k.suspended = su.max(0);
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct CtlMembers {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn ctl_group_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<CtlMembers>,
) -> Response {
    let mut t = s.tenant();
    let Some(gi) = t.groups.iter().position(|g| g.id.eq_ignore_ascii_case(&id)) else {
        return group_not_found(&id);
    };
    for m in b.remove {
        if let Some(ui) = t.find_user(&m) {
            let uid = t.users[ui].spec.id.clone();
            let gid = t.groups[gi].id.clone();
            t.groups[gi].members.retain(|x| x != &uid);
            let before = t.users[ui].active_licenses();
            t.users[ui]
                .assignments
                .retain(|a| a.by_group.as_deref() != Some(gid.as_str()));
            let after = t.users[ui].active_licenses();
            t.count_seats(&before, &after);
            if before != after {
                let now = t.now;
                t.audit_change(now, ui, None, &before, &after, None);
            }
        }
    }
    for m in b.add {
        if let Some(ui) = t.find_user(&m) {
            let uid = t.users[ui].spec.id.clone();
            if !t.groups[gi].members.contains(&uid) {
                t.groups[gi].members.push(uid);
            }
            t.process_group(gi, &[ui], true);
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn ctl_mail(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.tenant().mail)).into_response()
}

async fn ctl_writes(State(s): State<Arc<Shared>>) -> Response {
    Json(json!(s.tenant().writes)).into_response()
}

async fn ctl_requests(State(s): State<Arc<Shared>>) -> Response {
    let log = s.requests.lock().unwrap_or_else(|p| p.into_inner());
    let v: Vec<Value> = log
        .iter()
        .map(|(m, p, st)| json!({"method": m, "path": p, "status": st}))
        .collect();
    Json(v).into_response()
}

async fn ctl_revoke(State(s): State<Arc<Shared>>) -> Response {
    s.tokens().clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct CtlGenerate {
    records: usize,
    blobs: usize,
    #[serde(default = "default_ct")]
    content_type: String,
}

fn default_ct() -> String {
    "Audit.AzureActiveDirectory".into()
}

/// Fills the feed with synthetic records spread evenly over `blobs` blobs in the last hours (benchmarks).
/// Records to serve as they are: directory audits (Graph shape) and Management Activity API records, e.g. real
/// records replayed in tests. Each is placed at its own time (`activityDateTime` / `CreationTime`) or now.
#[derive(Deserialize)]
struct CtlRecords {
    #[serde(default)]
    directory: Vec<Value>,
    #[serde(default)]
    management: Vec<Value>,
    #[serde(default = "azure_ad_content")]
    content_type: String,
}

fn azure_ad_content() -> String {
    "Audit.AzureActiveDirectory".into()
}

async fn ctl_audit_records(State(s): State<Arc<Shared>>, Json(b): Json<CtlRecords>) -> Response {
    let mut t = s.tenant();
    let now = t.now;
    let directory = b.directory.len();
    for r in b.directory {
        let at = r["activityDateTime"]
            .as_str()
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map_or(now, |d| d.to_utc());
        t.directory_audits
            .push(crate::tenant::DirectoryAudit { at, json: r });
    }
    let management = b.management.len();
    for r in b.management {
        let at = r["CreationTime"]
            .as_str()
            .and_then(|v| {
                chrono::NaiveDateTime::parse_from_str(
                    v.trim_end_matches('Z'),
                    "%Y-%m-%dT%H:%M:%S%.f",
                )
                .ok()
            })
            .map_or(now, |d| d.and_utc());
        t.add_management_record(&b.content_type, at, r);
    }
    (
        StatusCode::CREATED,
        Json(json!({"directory": directory, "management": management})),
    )
        .into_response()
}

async fn ctl_generate_audit(State(s): State<Arc<Shared>>, Json(b): Json<CtlGenerate>) -> Response {
    let mut t = s.tenant();
    let blobs = b.blobs.max(1);
    let per = b.records / blobs;
    let now = t.now;
    let tenant = t.tenant_id.clone();
    for k in 0..blobs {
        let created = now - Duration::minutes(((blobs - k) % (6 * 24 * 60)) as i64 + 10);
        let records: Vec<Value> = (0..per)
            .map(|i| {
                json!({"CreationTime": (created - Duration::minutes(70)).format("%Y-%m-%dT%H:%M:%S").to_string(),
                    "Id": format!("{:08x}-b0b0-4b0b-8b0b-{:012x}", k, i), "Operation": "UserLoggedIn",
                    "OrganizationId": tenant, "RecordType": 15, "ResultStatus": "Success",
                    "UserKey": format!("user{i}@{tenant}"), "UserType": 0, "Workload": "AzureActiveDirectory",
                    "ObjectId": "00000002-0000-0ff1-ce00-000000000000", "UserId": format!("user{}@contoso.com", i % 1000),
                    "AzureActiveDirectoryEventType": 0, "ExtendedProperties": [], "ModifiedProperties": []})
            })
            .collect();
        t.blobs.push(crate::tenant::Blob {
            content_id: format!("bench${}${k:08}", b.content_type.replace('.', "")),
            content_type: b.content_type.clone(),
            created,
            visible_from: created,
            records,
        });
    }
    t.subscriptions.insert(b.content_type.clone(), true);
    (
        StatusCode::CREATED,
        Json(json!({"blobs": blobs, "records": per * blobs})),
    )
        .into_response()
}

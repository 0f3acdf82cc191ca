//! HTTP routes of the simulated tenant.
// Route helpers return the ready error `Response` as their `Err`: it is built only on the error path, so its size
// does not matter, and it keeps every handler a straight line of `match helper() { Ok(x) => x, Err(r) => return r }`.
#![allow(clippy::result_large_err)]

mod assertion;
mod audits;
mod batch;
mod cloud_licensing;
mod control;
pub(crate) mod delta;
mod groups;
mod guards;
mod management;
mod permissions;
mod purview;
mod reports;
pub mod subscriptions;
mod token;
mod users;

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
use audits::*;
use control::*;
use groups::*;
use guards::*;
use management::*;
use token::*;
use users::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aud {
    Graph,
    Manage,
}

tokio::task_local! {
    /// The tenant a request is for (its token's, or a control call's `x-sim-tenant`): an index into
    /// [`Shared::tenants`].
    static CURRENT: usize;
}

/// A token's claims the routes check.
#[derive(Debug, Clone)]
struct TokenInfo {
    /// The app's permissions when it was issued (`None`: every permission).
    roles: Option<Arc<std::collections::BTreeSet<String>>>,
    /// When it stops working, on the tenant's (simulated) clock: 60-90 minutes after it was issued.
    expires_at: DateTime<Utc>,
}

/// Shared state behind every route.
#[derive(Debug)]
pub struct Shared {
    /// The tenants (one, or a managed-service provider's fleet); the first is the home tenant.
    pub tenants: Vec<Mutex<Tenant>>,
    faults: Mutex<Faults>,
    tokens: Mutex<HashMap<String, (Aud, usize)>>,
    /// What each token carries besides its audience and tenant: its `roles` and expiry.
    token_info: Mutex<HashMap<String, TokenInfo>>,
    /// Tokens issued so far.
    tokens_issued: std::sync::atomic::AtomicU64,
    requests: Mutex<Vec<(String, String, u16)>>,
    /// Report downloads handed out and not fetched yet (token → CSV).
    downloads: Mutex<HashMap<String, String>>,
    /// Change-notification subscriptions, delivery faults and counters.
    notifier: Mutex<subscriptions::Notifier>,
    /// When each tenant's last reports-and-audit-logs requests came (the quota's window).
    reports_quota: Mutex<HashMap<usize, std::collections::VecDeque<std::time::Instant>>>,
    /// Outlook requests in flight per mailbox (lower-cased path segment).
    mailbox_in_flight: Mutex<HashMap<String, usize>>,
    /// Each tenant's identity-and-access requests in the budget's window: when, and how many resource units.
    identity_quota: Mutex<HashMap<usize, std::collections::VecDeque<(std::time::Instant, u32)>>>,
    /// Each tenant's Management Activity API requests in its quota's window.
    management_quota: Mutex<HashMap<usize, std::collections::VecDeque<std::time::Instant>>>,
    base_url: String,
}

impl Shared {
    /// Locks the tenant of the request being served (the home tenant outside a request). A poisoned lock still
    /// holds consistent data: every mutation is applied in one step.
    pub fn tenant(&self) -> MutexGuard<'_, Tenant> {
        self.tenant_at(CURRENT.try_with(|i| *i).unwrap_or(0))
    }
    /// Locks one tenant by index (the home tenant when out of range).
    pub(crate) fn tenant_at(&self, i: usize) -> MutexGuard<'_, Tenant> {
        let m = self.tenants.get(i).unwrap_or(&self.tenants[0]);
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// The index of the tenant with this id or domain.
    pub(crate) fn tenant_index(&self, key: &str) -> Option<usize> {
        (0..self.tenants.len()).find(|&i| {
            let t = self.tenant_at(i);
            t.tenant_id.eq_ignore_ascii_case(key) || t.domain.eq_ignore_ascii_case(key)
        })
    }
    /// The index of the tenant being served.
    fn current(&self) -> usize {
        CURRENT.try_with(|i| *i).unwrap_or(0)
    }
    /// A number in `0..n` for a token's lifetime: the n-th token of a run gets the same one every run (a
    /// generator of its own, so the faults' random sequence is not disturbed).
    fn token_jitter(&self, n: i64) -> i64 {
        let k = self
            .tokens_issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // splitmix64 of the token's number.
        let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n.max(1) as u64) as i64
    }
    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn token_info(&self) -> MutexGuard<'_, HashMap<String, TokenInfo>> {
        self.token_info.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn tokens(&self) -> MutexGuard<'_, HashMap<String, (Aud, usize)>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn downloads(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.downloads.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn notifier(&self) -> MutexGuard<'_, subscriptions::Notifier> {
        self.notifier.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running simulator.
#[derive(Debug, Clone)]
pub struct SimHandle {
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// Tenant GUID (the first tenant's, for a fleet).
    pub tenant_id: String,
    /// Every tenant's GUID, in order.
    pub tenant_ids: Vec<String>,
    /// State, for in-process inspection (tests, the demo).
    pub shared: Arc<Shared>,
}

/// Starts the simulator on `addr` (port 0 picks a free one) and serves until the process ends.
pub async fn start(scenario: Scenario, addr: SocketAddr) -> std::io::Result<SimHandle> {
    start_with(vec![scenario], addr, None).await
}

/// Starts a simulator serving several tenants (a managed-service provider's customers) from one process: each
/// token is for the tenant its token endpoint named, Graph and the Management API answer for that tenant, and
/// control calls choose one with the `x-sim-tenant` header (the first tenant without it).
pub async fn start_fleet(scenarios: Vec<Scenario>, addr: SocketAddr) -> std::io::Result<SimHandle> {
    if scenarios.is_empty() {
        return Err(std::io::Error::other("a fleet needs at least one tenant"));
    }
    start_with(scenarios, addr, None).await
}

/// Starts the simulator over HTTPS with `identity` (Microsoft's own client libraries, MSAL among them, refuse an
/// authority that is not https).
pub async fn start_tls(
    scenario: Scenario,
    addr: SocketAddr,
    identity: &crate::tls::TlsIdentity,
) -> std::io::Result<SimHandle> {
    start_with(vec![scenario], addr, Some(identity.server_config())).await
}

async fn start_with(
    scenarios: Vec<Scenario>,
    addr: SocketAddr,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> std::io::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let base_url = format!("{scheme}://{local}");
    let seed = scenarios.first().map_or(0, |s| s.seed);
    let tenants: Vec<Tenant> = scenarios.into_iter().map(Tenant::from_scenario).collect();
    let tenant_id = tenants
        .first()
        .map(|t| t.tenant_id.clone())
        .unwrap_or_default();
    let tenant_ids = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let shared = Arc::new(Shared {
        tenants: tenants.into_iter().map(Mutex::new).collect(),
        faults: Mutex::new(Faults::seeded(seed)),
        tokens: Mutex::new(HashMap::new()),
        token_info: Mutex::new(HashMap::new()),
        tokens_issued: std::sync::atomic::AtomicU64::new(0),
        requests: Mutex::new(Vec::new()),
        downloads: Mutex::new(HashMap::new()),
        notifier: Mutex::new(subscriptions::Notifier::seeded(seed)),
        reports_quota: Mutex::new(HashMap::new()),
        mailbox_in_flight: Mutex::new(HashMap::new()),
        identity_quota: Mutex::new(HashMap::new()),
        management_quota: Mutex::new(HashMap::new()),
        base_url: base_url.clone(),
    });
    tokio::spawn(subscriptions::run_notifier(shared.clone()));
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
        tenant_ids,
        shared,
    })
}

fn router(shared: Arc<Shared>) -> Router {
    let graph = Router::new()
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/delta", get(delta::users_delta))
        // Microsoft's Graph SDKs call the function with parentheses; Graph accepts both.
        .route("/v1.0/users/delta()", get(delta::users_delta))
        .route("/v1.0/users/{id}", get(get_user))
        .route("/v1.0/users/{id}/assignLicense", post(user_assign_license))
        .route(
            "/v1.0/users/{id}/reprocessLicenseAssignment",
            post(user_reprocess),
        )
        .route("/v1.0/users/{id}/sendMail", post(send_mail))
        .route("/v1.0/users/{id}/mailboxSettings", get(mailbox_settings))
        .route("/v1.0/subscribedSkus", get(subscribed_skus))
        .route(
            "/beta/admin/cloudLicensing/allotments",
            get(cloud_licensing::allotments),
        )
        .route(
            "/beta/admin/cloudLicensing/allotments/{id}/waitingMembers",
            get(cloud_licensing::waiting_members),
        )
        .route(
            "/v1.0/directory/subscriptions",
            get(directory_subscriptions),
        )
        .route("/v1.0/$batch", post(batch::batch))
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
        .route(
            "/v1.0/security/auditLog/queries",
            post(purview::create).get(purview::list),
        )
        .route(
            "/v1.0/security/auditLog/queries/{id}",
            get(purview::get_one),
        )
        .route(
            "/v1.0/security/auditLog/queries/{id}/records",
            get(purview::records),
        )
        .route("/v1.0/reports/{function}", get(reports::report))
        .route(
            "/v1.0/subscriptions",
            post(subscriptions::create).get(subscriptions::list),
        )
        .route(
            "/v1.0/subscriptions/{id}",
            get(subscriptions::get_one)
                .patch(subscriptions::renew)
                .delete(subscriptions::delete),
        )
        .route(
            "/v1.0/subscriptions/{id}/reauthorize",
            post(subscriptions::reauthorize),
        )
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
        .route(
            "/_sim/users/{id}",
            axum::routing::delete(delta::ctl_remove_user),
        )
        .route("/_sim/delta/expire", post(delta::ctl_expire_delta))
        .route("/_sim/users/{id}/licenses", post(ctl_user_licenses))
        .route(
            "/_sim/users/{id}/failed-assignment",
            post(ctl_failed_assignment),
        )
        .route("/_sim/users/{id}/usage-location", post(ctl_usage_location))
        .route("/_sim/skus/{id}/seats", post(ctl_seats))
        .route(
            "/_sim/skus/{id}/waiting",
            post(cloud_licensing::ctl_waiting),
        )
        .route("/_sim/groups/{id}/members", post(ctl_group_members))
        .route("/_sim/mail", get(ctl_mail))
        .route("/_sim/writes", get(ctl_writes))
        .route("/_sim/requests", get(ctl_requests))
        .route("/_sim/tokens/revoke", post(ctl_revoke))
        .route("/_sim/audit/generate", post(ctl_generate_audit))
        .route("/_sim/audit/records", post(ctl_audit_records))
        .route("/_sim/consent", post(ctl_consent))
        .route("/_sim/permissions", post(permissions::ctl_permissions))
        .route("/_sim/feed/disabled", post(ctl_feed_disabled))
        .route("/_sim/feeds/stopped", post(management::ctl_feeds_stopped))
        .route(
            "/_sim/licenses/remove",
            post(subscriptions::ctl_bulk_remove),
        )
        .route("/_sim/directory/subscriptions", post(ctl_commerce))
        .route("/_sim/notifications", get(subscriptions::ctl_stats))
        .route(
            "/_sim/notifications/faults",
            post(subscriptions::ctl_faults),
        )
        .route(
            "/_sim/subscriptions/{id}/lifecycle",
            post(subscriptions::ctl_lifecycle),
        )
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            control_tenant,
        ));
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token_v2))
        .route("/{tenant}/oauth2/token", post(token_v1))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(openid_configuration),
        )
        .route("/data/download/{token}", get(reports::download))
        .merge(graph)
        .merge(manage)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            inject_faults,
        ))
        // Outside the faults: an injected latency keeps the request in flight.
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            guards::mailbox_concurrency,
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

//! Fault injection and token checks in front of the routes.
// Route helpers return the ready error `Response` as their `Err` (see the module above).
#![allow(clippy::result_large_err)]

use super::*;

pub(super) async fn inject_faults(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().to_string();
    let scoped = s.faults().list().iter().any(|f| f.tenant.is_some());
    let tenant = match scoped {
        true => request_tenant(&s, &req),
        false => Vec::new(),
    };
    let hits = s.faults().take(&path, &tenant);
    let mut truncate = false;
    let mut failure: Option<Response> = None;
    // Latency is the time the service takes to answer, its own work included (as a Graph round trip is measured):
    // the answer leaves no sooner than this after the request arrived, and the work happens within it.
    let mut answer_at = tokio::time::Instant::now();
    for f in hits {
        match f.kind {
            FaultKind::Latency => {
                answer_at += StdDuration::from_millis(f.latency_ms.unwrap_or(0));
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
    tokio::time::sleep_until(answer_at).await;
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

pub(super) fn set_retry_after(r: &mut Response, f: &Fault) {
    if let Some(v) = f
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        r.headers_mut().insert("Retry-After", v);
    }
}

/// The names (GUID and domain) of the tenant a request is for: its token's, or the one its token endpoint names.
fn request_tenant(s: &Shared, req: &Request) -> Vec<String> {
    let index = match bearer(req.headers()) {
        Some(token) => s.tokens().get(&token).map(|(_, i)| *i),
        None => {
            let first = req.uri().path().trim_start_matches('/').split('/').next();
            first.and_then(|key| s.tenant_index(key))
        }
    };
    match index {
        Some(i) => {
            let t = s.tenant_at(i);
            vec![t.tenant_id.clone(), t.domain.clone()]
        }
        None => Vec::new(),
    }
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

pub(super) async fn require_graph_token(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let token = bearer(req.headers()).map(|t| s.tokens().get(&t).copied());
    match token {
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
        Some(Some((Aud::Manage, _))) => graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        ),
        // The request is served for the tenant the token was issued for, within its quotas.
        Some(Some((Aud::Graph, tenant))) => {
            let info = bearer(req.headers()).and_then(|t| s.token_info().get(&t).cloned());
            if info
                .as_ref()
                .is_some_and(|i| i.expires_at < s.tenant_at(tenant).now)
            {
                return expired();
            }
            let roles = info.and_then(|i| i.roles);
            let (method, path) = (req.method().as_str(), req.uri().path());
            let query = req.uri().query().unwrap_or_default();
            if !super::permissions::allowed(roles.as_deref(), method, path, query) {
                return super::permissions::denied();
            }
            if let Some(refused) = reports_quota(&s, tenant, req.uri().path()) {
                return refused;
            }
            if let Some(refused) = identity_quota(&s, tenant, method_path_query(&req)) {
                return refused;
            }
            CURRENT.scope(tenant, next.run(req)).await
        }
    }
}

/// Outlook's concurrent requests per app and mailbox (GDC `concepts/throttling-limits.md`, "Outlook service limits").
const MAILBOX_CONCURRENCY: usize = 4;

/// Outlook allows 4 requests in flight per app and mailbox (`/users/{mailbox}/sendMail`...); a fifth is answered
/// 429 `ApplicationThrottled` "MailboxConcurrency", as Exchange answers it.
pub(super) async fn mailbox_concurrency(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_ascii_lowercase();
    let mailbox = path
        .split("/users/")
        .nth(1)
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, tail)| {
            ["sendmail", "messages", "mailboxsettings"]
                .iter()
                .any(|t| tail.starts_with(t))
        })
        .map(|(m, _)| m.to_string());
    let Some(mailbox) = mailbox else {
        return next.run(req).await;
    };
    {
        let mut flying = s
            .mailbox_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = flying.entry(mailbox.clone()).or_default();
        if *n >= MAILBOX_CONCURRENCY {
            let mut refused = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            refused
                .headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
            drop(flying);
            let mut log = s.requests.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() < 200_000 {
                log.push((req.method().to_string(), req.uri().path().to_string(), 429));
            }
            return refused;
        }
        *n += 1;
    }
    // Given back when the answer leaves, or when the client goes away first.
    struct InFlight(Arc<Shared>, String);
    impl Drop for InFlight {
        fn drop(&mut self) {
            let mut flying = self
                .0
                .mailbox_in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = flying.get_mut(&self.1) {
                *n = n.saturating_sub(1);
            }
        }
    }
    let _in_flight = InFlight(s.clone(), mailbox);
    next.run(req).await
}

/// Requests allowed per window on `/auditLogs/` and `/reports/` (per app and tenant; the simulator has one app).
const REPORTS_PER_WINDOW: usize = 5;

/// Graph's identity reports and audit logs: 5 requests per 10 s per app and tenant, the next one answered 429 with
/// the seconds until a slot frees up (GDC `concepts/throttling-limits.md`). `None` when the request may go on.
fn reports_quota(s: &Shared, tenant: usize, path: &str) -> Option<Response> {
    let lower = path.to_ascii_lowercase();
    if !(lower.contains("/auditlogs/") || lower.contains("/reports/")) {
        return None;
    }
    let window_ms = s.tenant_at(tenant).behaviour.reports_quota_window_ms;
    if window_ms == 0 {
        return None;
    }
    let window = StdDuration::from_millis(window_ms);
    let mut quotas = s.reports_quota.lock().unwrap_or_else(|p| p.into_inner());
    let sent = quotas.entry(tenant).or_default();
    take_slot(sent, window, REPORTS_PER_WINDOW)
        .err()
        .map(throttled)
}

/// Control calls act on the tenant named by `x-sim-tenant` (id or domain), else on the first.
pub(super) async fn control_tenant(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let named = req
        .headers()
        .get("x-sim-tenant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let tenant = match named {
        None => 0,
        Some(key) => match s.tenant_index(&key) {
            Some(i) => i,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    format!("x-sim-tenant '{key}': no such tenant"),
                )
                    .into_response();
            }
        },
    };
    CURRENT.scope(tenant, next.run(req)).await
}

pub(super) async fn require_manage_token(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let tenant_in_url = req.uri().path().split('/').nth(3).unwrap_or("").to_string();
    let token = bearer(req.headers()).map(|t| s.tokens().get(&t).copied());
    match token {
        Some(Some((Aud::Manage, tenant))) if token_expired(&s, req.headers(), tenant) => expired(),
        Some(Some((Aud::Manage, tenant))) if over_management_quota(&s, tenant) => af_error(
            StatusCode::FORBIDDEN,
            "AF429",
            "Too many requests. Method=GetBlob, PublisherId=00000000-0000-0000-0000-000000000000",
        ),
        Some(Some((Aud::Manage, tenant))) => {
            let tid = s.tenant_at(tenant).tenant_id.clone();
            if !tenant_in_url.eq_ignore_ascii_case(&tid) {
                return af_error(
                    StatusCode::UNAUTHORIZED,
                    "AF20010",
                    &format!(
                        "The tenant ID passed in the URL ({tenant_in_url}) does not match the tenant ID passed in the access token ({tid})."
                    ),
                );
            }
            CURRENT.scope(tenant, next.run(req)).await
        }
        _ => af_error(
            StatusCode::UNAUTHORIZED,
            "AF10001",
            "Authorization has been denied for this request: a valid token for https://manage.office.com is required.",
        ),
    }
}

/// Graph's answer to a token past its lifetime (60-90 minutes on the tenant's clock).
fn expired() -> Response {
    graph_error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
    )
}

/// Whether the request's token is past its lifetime on `tenant`'s clock.
fn token_expired(s: &Shared, headers: &HeaderMap, tenant: usize) -> bool {
    let info = bearer(headers).and_then(|t| s.token_info().get(&t).cloned());
    info.is_some_and(|i| i.expires_at < s.tenant_at(tenant).now)
}

fn method_path_query(req: &Request) -> (&str, &str, &str) {
    (
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or_default(),
    )
}

/// The resource units an identity-and-access request costs (GDC `concepts/throttling-limits.md`): a list costs 2,
/// one less with `$select`; reading one object and a write 1; other resources are not in this budget.
fn identity_cost(method: &str, path: &str, query: &str) -> Option<u32> {
    let p = path.to_ascii_lowercase();
    let rest = p.strip_prefix("/v1.0/")?;
    let root = rest.split('/').next().unwrap_or_default();
    if !matches!(
        root,
        "users" | "groups" | "subscribedskus" | "directory" | "directoryobjects"
    ) {
        return None;
    }
    let list = method == "GET"
        && (rest.split('/').count() == 1
            || rest.ends_with("/delta")
            || rest.ends_with("/delta()")
            || rest.ends_with("/memberswithlicenseerrors"));
    let selected = query.to_ascii_lowercase().contains("%24select") || query.contains("$select");
    Some(match (list, selected) {
        (true, true) => 1,
        (true, false) => 2,
        (false, _) => 1,
    })
}

/// The identity-and-access budget of the tenant's size per window (3,500 / 5,000 / 8,000 units).
fn identity_budget(users: usize) -> u32 {
    match users {
        0..50 => 3_500,
        50..=500 => 5_000,
        _ => 8_000,
    }
}

/// Identity and access (users, groups, directory objects): resource units per window per app and tenant; past the
/// budget, 429 with the seconds until enough units free up. `None` when the request may go on.
fn identity_quota(
    s: &Shared,
    tenant: usize,
    (method, path, query): (&str, &str, &str),
) -> Option<Response> {
    let cost = identity_cost(method, path, query)?;
    let (window_ms, users) = {
        let t = s.tenant_at(tenant);
        (t.behaviour.identity_quota_window_ms, t.users.len())
    };
    if window_ms == 0 {
        return None;
    }
    let window = StdDuration::from_millis(window_ms);
    let budget = identity_budget(users);
    let mut quotas = s.identity_quota.lock().unwrap_or_else(|p| p.into_inner());
    let spent = quotas.entry(tenant).or_default();
    let now = std::time::Instant::now();
    while spent
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= window)
    {
        spent.pop_front();
    }
    let used: u32 = spent.iter().map(|(_, c)| c).sum();
    if used + cost <= budget {
        spent.push_back((now, cost));
        return None;
    }
    let free_in = spent.front().map_or(window, |(t, _)| *t + window - now);
    let mut refused = throttled(free_in);
    refused.headers_mut().insert(
        "x-ms-throttle-scope",
        HeaderValue::from_static("Tenant_Application/ReadWrite/identity"),
    );
    Some(refused)
}

/// Requests the Management Activity API allows per window and tenant.
const MANAGEMENT_PER_WINDOW: usize = 2_000;

/// The Management Activity API's quota: 2,000 requests per minute per tenant (MA, "API throttling"), the next one
/// answered 403 `AF429`. Counts this request when it may go on.
fn over_management_quota(s: &Shared, tenant: usize) -> bool {
    let window_ms = s.tenant_at(tenant).behaviour.management_quota_window_ms;
    if window_ms == 0 {
        return false;
    }
    let window = StdDuration::from_millis(window_ms);
    let mut quotas = s.management_quota.lock().unwrap_or_else(|p| p.into_inner());
    let sent = quotas.entry(tenant).or_default();
    take_slot(sent, window, MANAGEMENT_PER_WINDOW).is_err()
}

/// A sliding window of `limit` requests: counts this one and returns `Ok`, or the time until the oldest leaves it.
fn take_slot(
    sent: &mut std::collections::VecDeque<std::time::Instant>,
    window: StdDuration,
    limit: usize,
) -> Result<(), StdDuration> {
    let now = std::time::Instant::now();
    while sent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= window)
    {
        sent.pop_front();
    }
    if sent.len() < limit {
        sent.push_back(now);
        return Ok(());
    }
    Err(sent.front().map_or(window, |t| *t + window - now))
}

/// Graph's 429, with the whole seconds until the quota has room again as `Retry-After`.
fn throttled(free_in: StdDuration) -> Response {
    let mut refused = graph_error(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Too many requests.",
    );
    let seconds = free_in.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
        refused.headers_mut().insert("retry-after", v);
    }
    refused
}

//! Graph change notifications, as Microsoft serves them for `/users`:
//!
//! - `POST /v1.0/subscriptions` validates the request (resource, change types, an `https` notification URL —
//!   loopback `http` is allowed so tests need no certificate —, `clientState` of at most 128 characters, an expiry in
//!   the future and at most 41,760 minutes away), then calls the notification URL (and the lifecycle URL, when
//!   given) with `?validationToken=...` and expects the token back as `text/plain` with 200 within 10 seconds;
//!   `201` with the subscription, or `400` naming what failed.
//! - `GET /v1.0/subscriptions[/{id}]`, `PATCH /v1.0/subscriptions/{id}` (a new `expirationDateTime`),
//!   `DELETE /v1.0/subscriptions/{id}`, `POST /v1.0/subscriptions/{id}/reauthorize`; an expired subscription is gone
//!   (404), as at Microsoft.
//! - The notifier: every tick, the users changed since (`Tenant::changed`) become change notifications posted in
//!   batches of at most [`BATCH`] to each live subscription's URL (`{"value": [...]}` with `subscriptionId`,
//!   `subscriptionExpirationDateTime`, `changeType`, `resource` `Users/{id}`, `resourceData`, `clientState`,
//!   `tenantId`). A delivery that fails or takes longer than 3 seconds is retried with backoff, then dropped.
//! - Faults (`POST /_sim/notifications/faults`): delay, duplicates, drops, reversed batches; lifecycle notifications
//!   on demand (`POST /_sim/subscriptions/{id}/lifecycle`): for users Graph sends only `reauthorizationRequired`
//!   (`missed` and `subscriptionRemoved` are Outlook's and Teams', so they are refused here: a lost notification on
//!   users is never announced, and a removed subscription is found only by renewing it); what was delivered
//!   (`GET /_sim/notifications`).

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;

/// Graph's longest lifetime for a subscription on users: 29 days.
pub(crate) const MAX_MINUTES: i64 = 41_760;
/// Notifications per POST.
pub(crate) const BATCH: usize = 100;
/// How often the notifier looks for changes.
const TICK: StdDuration = StdDuration::from_millis(50);
/// Graph expects a notification to be acknowledged within this time.
const DELIVERY_DEADLINE: StdDuration = StdDuration::from_secs(3);
/// And the validation token echoed within this time.
const VALIDATION_DEADLINE: StdDuration = StdDuration::from_secs(10);
/// Delivery attempts before a batch is dropped.
const ATTEMPTS: u32 = 4;

/// One subscription.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    id: String,
    resource: String,
    change_type: String,
    notification_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle_notification_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_state: Option<String>,
    expiration_date_time: DateTime<Utc>,
    application_id: String,
    creator_id: String,
    include_resource_data: bool,
    latest_supported_tls_version: String,
    /// The tenant it watches (its creator's token's).
    #[serde(skip)]
    tenant: usize,
}

/// Injected delivery faults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NotifyFaults {
    /// Extra delay before each batch leaves.
    #[serde(default)]
    pub delay_ms: u64,
    /// Chance that a batch is posted twice.
    #[serde(default)]
    pub duplicate_probability: f64,
    /// Chance that a batch is never posted.
    #[serde(default)]
    pub drop_probability: f64,
    /// Post each batch's notifications in reverse order.
    #[serde(default)]
    pub reverse: bool,
}

/// What the notifier did.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct NotifyStats {
    /// Batches acknowledged (2xx within the deadline).
    pub batches_delivered: u64,
    /// Notifications in those batches (duplicates counted).
    pub notifications_delivered: u64,
    /// Notifications dropped by a fault.
    pub notifications_dropped: u64,
    /// Batches posted twice by a fault.
    pub batches_duplicated: u64,
    /// Attempts that failed (an error status, no answer, or slower than the deadline).
    pub attempts_failed: u64,
    /// Batches given up after every attempt.
    pub batches_abandoned: u64,
    /// Lifecycle notifications delivered.
    pub lifecycle_delivered: u64,
    /// The slowest acknowledgement seen, in milliseconds.
    pub slowest_ack_ms: u64,
}

/// Subscriptions, faults and counters.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    subs: BTreeMap<String, Subscription>,
    faults: NotifyFaults,
    stats: NotifyStats,
    rng: u64,
    /// Changes on their way: when each is due (simulated clock), its tenant, user and change type.
    on_the_way: Vec<(DateTime<Utc>, usize, String, &'static str)>,
}

impl Notifier {
    /// Seeds the random faults.
    pub(crate) fn seeded(seed: u64) -> Self {
        Self {
            rng: seed.max(1),
            ..Self::default()
        }
    }

    fn next(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            .max(1);
        self.rng >> 11
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.next() as f64 / (1u64 << 53) as f64) < p
    }

    /// A delivery delay: between half and twice `typical`, and one in twenty up to `max`.
    fn delay(&mut self, typical: u64, max: u64) -> Duration {
        if typical == 0 {
            return Duration::zero();
        }
        let tail = self.chance(0.05);
        let u = self.next();
        let (low, high) = if tail {
            (typical, max.max(typical))
        } else {
            (typical / 2, (typical * 2).min(max.max(typical)))
        };
        let span = high.saturating_sub(low) + 1;
        Duration::seconds((low + u % span) as i64)
    }

    /// Live subscriptions at `now` (expired ones are removed, as Graph does).
    fn live(&mut self, now: DateTime<Utc>) -> Vec<Subscription> {
        self.subs.retain(|_, s| s.expiration_date_time > now);
        self.subs.values().cloned().collect()
    }
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        &format!("The object was not found. Subscription '{id}'."),
    )
}

fn invalid(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateBody {
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
}

/// Graph accepts `https` URLs only; the simulator also takes `http` on loopback.
fn check_url(url: &str, field: &str) -> Result<(), Response> {
    let parsed =
        url::Url::parse(url).map_err(|_| invalid(&format!("Invalid {field}: '{url}'.")))?;
    let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid(&format!(
            "The {field} must be an https URL: '{url}'."
        ))),
    }
}

fn check_expiry(raw: Option<&str>, now: DateTime<Utc>) -> Result<DateTime<Utc>, Response> {
    let raw = raw.ok_or_else(|| invalid("expirationDateTime is required."))?;
    let at = DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| invalid(&format!("Invalid expirationDateTime '{raw}'.")))?;
    if at <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    if at > now + Duration::minutes(MAX_MINUTES) {
        return Err(invalid(&format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    Ok(at)
}

fn check_change_types(raw: Option<&str>) -> Result<String, Response> {
    let raw = raw.unwrap_or("");
    let ok = !raw.is_empty()
        && raw
            .split(',')
            .all(|c| matches!(c.trim(), "created" | "updated" | "deleted"));
    match ok {
        true => Ok(raw.to_string()),
        false => Err(invalid(&format!(
            "Invalid changeType '{raw}': use created, updated or deleted, comma-separated."
        ))),
    }
}

/// Calls `url?validationToken=...` as Graph does and checks the answer.
async fn validate(url: &str) -> Result<(), Response> {
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    );
    let failed = || {
        invalid(
            "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
        )
    };
    let client = reqwest::Client::builder()
        .timeout(VALIDATION_DEADLINE)
        .build()
        .map_err(|_| failed())?;
    let answer = client
        .post(url)
        .query(&[("validationToken", token.as_str())])
        .header("content-type", "text/plain; charset=utf-8")
        .send()
        .await
        .map_err(|_| failed())?;
    let plain = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if answer.status() != reqwest::StatusCode::OK || !plain {
        return Err(failed());
    }
    match answer.text().await {
        Ok(body) if body == token => Ok(()),
        _ => Err(failed()),
    }
}

pub(super) async fn create(State(s): State<Arc<Shared>>, Json(b): Json<CreateBody>) -> Response {
    let (now, app_id) = {
        let t = s.tenant();
        let app = t.app.as_ref().map(|a| a.client_id.clone());
        (t.now, app.unwrap_or_else(|| uuid::Uuid::nil().to_string()))
    };
    let resource = b.resource.clone().unwrap_or_default();
    if !matches!(resource.trim_start_matches('/'), "users" | "Users") {
        return invalid(&format!(
            "Resource '{resource}' is not supported by the simulator (only /users)."
        ));
    }
    let checked = (|| {
        let change_type = check_change_types(b.change_type.as_deref())?;
        let url = b
            .notification_url
            .clone()
            .ok_or_else(|| invalid("notificationUrl is required."))?;
        check_url(&url, "notificationUrl")?;
        if let Some(l) = &b.lifecycle_notification_url {
            check_url(l, "lifecycleNotificationUrl")?;
        }
        if b.client_state
            .as_ref()
            .is_some_and(|c| c.chars().count() > 128)
        {
            return Err(invalid("clientState must be at most 128 characters."));
        }
        let expires = check_expiry(b.expiration_date_time.as_deref(), now)?;
        Ok((change_type, url, expires))
    })();
    let (change_type, url, expires) = match checked {
        Ok(x) => x,
        Err(r) => return r,
    };
    if let Err(r) = validate(&url).await {
        return r;
    }
    if let Some(l) = &b.lifecycle_notification_url
        && let Err(r) = validate(l).await
    {
        return r;
    }
    let sub = Subscription {
        id: uuid::Uuid::new_v4().to_string(),
        resource,
        change_type,
        notification_url: url,
        lifecycle_notification_url: b.lifecycle_notification_url,
        client_state: b.client_state,
        expiration_date_time: expires,
        application_id: app_id,
        creator_id: uuid::Uuid::nil().to_string(),
        include_resource_data: false,
        latest_supported_tls_version: "v1_2".into(),
        tenant: s.current(),
    };
    s.notifier().subs.insert(sub.id.clone(), sub.clone());
    (StatusCode::CREATED, Json(render(&sub))).into_response()
}

fn render(sub: &Subscription) -> Value {
    let mut v = serde_json::to_value(sub).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            json!("https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity"),
        );
        o.insert(
            "expirationDateTime".into(),
            json!(
                sub.expiration_date_time
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
        );
    }
    v
}

pub(super) async fn list(State(s): State<Arc<Shared>>) -> Response {
    let now = s.tenant().now;
    let subs = s.notifier().live(now);
    Json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
        "value": subs.iter().map(render).collect::<Vec<_>>(),
    }))
    .into_response()
}

pub(super) async fn get_one(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = s.tenant().now;
    let mut n = s.notifier();
    n.live(now);
    match n.subs.get(&id) {
        Some(sub) => Json(render(sub)).into_response(),
        None => not_found(&id),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RenewBody {
    expiration_date_time: Option<String>,
}

pub(super) async fn renew(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<RenewBody>,
) -> Response {
    let now = s.tenant().now;
    let mut n = s.notifier();
    n.live(now);
    if !n.subs.contains_key(&id) {
        return not_found(&id);
    }
    let expires = match check_expiry(b.expiration_date_time.as_deref(), now) {
        Ok(at) => at,
        Err(r) => return r,
    };
    match n.subs.get_mut(&id) {
        Some(sub) => {
            sub.expiration_date_time = expires;
            Json(render(sub)).into_response()
        }
        None => not_found(&id),
    }
}

pub(super) async fn delete(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = s.tenant().now;
    let mut n = s.notifier();
    n.live(now);
    match n.subs.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(&id),
    }
}

pub(super) async fn reauthorize(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = s.tenant().now;
    let mut n = s.notifier();
    n.live(now);
    match n.subs.contains_key(&id) {
        true => StatusCode::NO_CONTENT.into_response(),
        false => not_found(&id),
    }
}

// ---------- the notifier ----------

/// Runs until the process ends: turns the tenant's changes into notifications.
pub(super) async fn run_notifier(s: Arc<Shared>) {
    let client = match reqwest::Client::builder()
        .timeout(DELIVERY_DEADLINE)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the change notifier cannot start");
            return;
        }
    };
    loop {
        tokio::time::sleep(TICK).await;
        for tenant in 0..s.tenants.len() {
            notify_tenant(&s, &client, tenant);
        }
    }
}

/// Posts one tenant's changes that are due (each waits its delivery delay, from when it was made, on the simulated
/// clock) to its live subscriptions.
fn notify_tenant(s: &Arc<Shared>, client: &reqwest::Client, tenant: usize) {
    let (changes, tenant_id, now, typical, max) = {
        let mut t = s.tenant_at(tenant);
        let b = &t.behaviour;
        let (typical, max) = (
            b.notification_delay_seconds,
            b.notification_delay_max_seconds,
        );
        (
            std::mem::take(&mut t.changed),
            t.tenant_id.clone(),
            t.now,
            typical,
            max,
        )
    };
    let changes = {
        let mut n = s.notifier();
        for (id, change, at) in changes {
            // As Graph sends them for users: a creation is `updated` (no `created` for this resource), and so is a
            // soft deletion; `deleted` only when the user is gone for good.
            let change = match change {
                "created" | "soft_deleted" => "updated",
                other => other,
            };
            let due = at + n.delay(typical, max);
            n.on_the_way.push((due, tenant, id, change));
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut n.on_the_way)
            .into_iter()
            .partition(|(at, t, _, _)| *t == tenant && *at <= now);
        n.on_the_way = later;
        due.into_iter()
            .map(|(_, _, id, change)| (id, change))
            .collect::<Vec<(String, &str)>>()
    };
    if changes.is_empty() {
        return;
    }
    let subs = s.notifier().live(now);
    for sub in subs.into_iter().filter(|x| x.tenant == tenant) {
        let wanted: Vec<&(String, &str)> = changes
            .iter()
            .filter(|(_, c)| sub.change_type.split(',').any(|w| w.trim() == *c))
            .collect();
        for chunk in wanted.chunks(BATCH) {
            let items: Vec<Value> = chunk
                .iter()
                .map(|(id, change)| change_item(&sub, &tenant_id, id, change))
                .collect();
            tokio::spawn(deliver_with_faults(
                s.clone(),
                client.clone(),
                sub.notification_url.clone(),
                items,
            ));
        }
    }
}

fn change_item(sub: &Subscription, tenant_id: &str, user_id: &str, change: &str) -> Value {
    json!({
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": sub.expiration_date_time.to_rfc3339_opts(SecondsFormat::Micros, true),
        "changeType": change,
        "resource": format!("Users/{user_id}"),
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.User",
            "@odata.id": format!("Users/{user_id}"),
            "id": user_id,
            "organizationId": tenant_id,
        },
        "clientState": sub.client_state,
        "tenantId": tenant_id,
    })
}

async fn deliver_with_faults(
    s: Arc<Shared>,
    client: reqwest::Client,
    url: String,
    mut items: Vec<Value>,
) {
    let (faults, dropped, twice) = {
        let mut n = s.notifier();
        let f = n.faults.clone();
        let dropped = n.chance(f.drop_probability);
        let twice = !dropped && n.chance(f.duplicate_probability);
        if dropped {
            n.stats.notifications_dropped += items.len() as u64;
        }
        if twice {
            n.stats.batches_duplicated += 1;
        }
        (f, dropped, twice)
    };
    if dropped {
        return;
    }
    if faults.delay_ms > 0 {
        tokio::time::sleep(StdDuration::from_millis(faults.delay_ms)).await;
    }
    if faults.reverse {
        items.reverse();
    }
    let body = json!({ "value": items }).to_string();
    let n = items.len() as u64;
    deliver(&s, &client, &url, &body, n).await;
    if twice {
        deliver(&s, &client, &url, &body, n).await;
    }
}

/// Posts one batch, retrying with backoff as Graph does; counts the outcome.
async fn deliver(s: &Shared, client: &reqwest::Client, url: &str, body: &str, count: u64) -> bool {
    let mut wait = StdDuration::from_millis(500);
    for _ in 0..ATTEMPTS {
        let started = Instant::now();
        let sent = client
            .post(url)
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await;
        let took = started.elapsed();
        let acknowledged =
            matches!(&sent, Ok(r) if r.status().is_success()) && took <= DELIVERY_DEADLINE;
        {
            let mut n = s.notifier();
            if acknowledged {
                n.stats.batches_delivered += 1;
                n.stats.notifications_delivered += count;
                n.stats.slowest_ack_ms = n.stats.slowest_ack_ms.max(took.as_millis() as u64);
            } else {
                n.stats.attempts_failed += 1;
            }
        }
        if acknowledged {
            return true;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    s.notifier().stats.batches_abandoned += 1;
    false
}

// ---------- control ----------

pub(super) async fn ctl_faults(
    State(s): State<Arc<Shared>>,
    Json(f): Json<NotifyFaults>,
) -> Response {
    s.notifier().faults = f;
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn ctl_stats(State(s): State<Arc<Shared>>) -> Response {
    let now = s.tenant().now;
    let mut n = s.notifier();
    let subs: Vec<Value> = n.live(now).iter().map(render).collect();
    Json(json!({"stats": n.stats, "subscriptions": subs})).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LifecycleBody {
    event: String,
}

pub(super) async fn ctl_lifecycle(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Json(b): Json<LifecycleBody>,
) -> Response {
    // Microsoft sends `missed` and `subscriptionRemoved` for Outlook and Teams resources only; every subscription
    // here is on /users, whose only lifecycle event is `reauthorizationRequired`.
    if b.event != "reauthorizationRequired" {
        return invalid(&format!(
            "event '{}': Graph sends only reauthorizationRequired for subscriptions on users",
            b.event
        ));
    }
    let (tenant_id, now) = {
        let t = s.tenant();
        (t.tenant_id.clone(), t.now)
    };
    let sub = {
        let mut n = s.notifier();
        n.live(now);
        let Some(sub) = n.subs.get(&id).cloned() else {
            return not_found(&id);
        };
        sub
    };
    let Some(url) = sub.lifecycle_notification_url.clone() else {
        return invalid("the subscription has no lifecycleNotificationUrl");
    };
    let body = json!({"value": [{
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": sub.expiration_date_time.to_rfc3339_opts(SecondsFormat::Micros, true),
        "tenantId": tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": b.event,
    }]})
    .to_string();
    let client = reqwest::Client::new();
    let delivered = deliver(&s, &client, &url, &body, 0).await;
    if delivered {
        s.notifier().stats.lifecycle_delivered += 1;
    }
    Json(json!({"delivered": delivered})).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct BulkRemoveBody {
    sku_id: String,
    count: usize,
    #[serde(default)]
    actor: Option<String>,
}

/// Removes a directly assigned SKU from the first `count` users holding it, one licence write each (an admin's
/// script or a bulk edit in the admin centre).
pub(super) async fn ctl_bulk_remove(
    State(s): State<Arc<Shared>>,
    Json(b): Json<BulkRemoveBody>,
) -> Response {
    let mut t = s.tenant();
    let actor = admin_or(b.actor, &t);
    let holders: Vec<usize> = (0..t.users.len())
        .filter(|&ui| {
            t.users[ui]
                .assignments
                .iter()
                .any(|a| a.by_group.is_none() && a.sku_id.eq_ignore_ascii_case(&b.sku_id))
        })
        .take(b.count)
        .collect();
    let mut removed = Vec::new();
    for ui in holders {
        let sku = b.sku_id.clone();
        if t.assign_direct(ui, &[], &[sku], Some(&actor), true).is_ok() {
            removed.push(t.users[ui].spec.id.clone());
        }
    }
    Json(json!({"removed": removed.len(), "users": removed, "at": t.now})).into_response()
}

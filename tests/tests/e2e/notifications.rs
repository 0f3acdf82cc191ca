//! Real-time detection end to end: the simulated tenant creates Graph subscriptions (validating the endpoint),
//! posts change and lifecycle notifications over HTTP to license-check's Lambda handler behind a real HTTP server
//! (as a function URL would), the handler queues them, and the queue is delivered back to the handler as SQS
//! events. Forged notifications, bursts, duplicates, lost notifications and renewals are played as Graph plays them.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use licensewatch_core::domain::change_notifications::{ChangeType, Notification};
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::clock::FixedClock;
use licensewatch_core::ports::testing::MemoryQueue;
use licensewatch_core::runtime::tenants::TenantRuntimes;
use licensewatch_core::usecases::change_notifications::{
    ChangeMessage, ChangeMessageKind, REREAD_AFTER,
};
use licensewatch_sim::{Scenario, SimHandle};
use serde_json::{Value, json};

use crate::helpers::*;

const CLIENT_STATE: &str = "e2e-client-state-7f3a9c1d2b4e6f80a1b2c3d4";
const E3_SKU: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";

/// The simulated tenant, license-check's handler behind an HTTP server, and the change queue.
struct Live {
    sim: SimHandle,
    clock: Arc<FixedClock>,
    deps: Arc<TenantRuntimes>,
    queue: Arc<MemoryQueue>,
    url: String,
    http: reqwest::Client,
}

impl Live {
    async fn start(users: usize, policy: Policy) -> Self {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z")
            .expect("time")
            .to_utc();
        let mut scenario = Scenario::generated(users, "8c3f1a2b-6d4e-4f50-9a1b-2c3d4e5f6a7b", now);
        // Replicas lag: a read within ten seconds of a change may not show it (Graph's notifications take
        // longer, so only a notification posted at once meets it).
        scenario.behaviour.read_lag_seconds = 10;
        let env = TestEnv::with_vars(
            scenario,
            policy,
            None,
            &[(
                "LICENSEWATCH_NOTIFICATION_CLIENT_STATE",
                CLIENT_STATE.into(),
            )],
        )
        .await;
        let (sim, clock) = (env.sim.clone(), env.clock.clone());
        let queue = Arc::new(MemoryQueue::default());
        let mut rt = env.into_runtime();
        rt.change_queue = Some(queue.clone());
        let deps = Arc::new(TenantRuntimes::new(rt));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/graph/notifications",
            listener.local_addr().expect("addr")
        );
        let app = axum::Router::new()
            .fallback(function_url_front)
            .with_state(deps.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            sim,
            clock,
            deps,
            queue,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.base_url))
            .json(&body)
            .send()
            .await
            .expect("control");
        r.json().await.unwrap_or(Value::Null)
    }

    async fn sim_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.sim.base_url))
            .send()
            .await
            .expect("get");
        r.json().await.expect("json")
    }

    async fn stats(&self) -> Value {
        self.sim_get("/_sim/notifications").await
    }

    /// Moves the simulator's clock and ours together.
    async fn advance(&self, by: Duration) {
        self.control("/_sim/clock", json!({"advance_minutes": by.num_minutes()}))
            .await;
        self.clock.advance(by);
    }

    /// The renewal timer's event, as EventBridge delivers it.
    async fn keep(&self) -> Vec<Value> {
        let mut ev = serde_json::to_value(schedule()).expect("event");
        ev["detail"] = json!({"action": "keep-subscriptions", "notification_url": self.url});
        let out = license_check::handle_event(&self.deps, ev)
            .await
            .expect("keep-subscriptions");
        out.as_array().cloned().expect("reports")
    }

    /// Delivers every queued message to the handler as one SQS event; returns the ids SQS would deliver again.
    async fn drain(&self) -> Vec<String> {
        let messages: Vec<(String, String)> = self
            .queue
            .take()
            .into_iter()
            .map(|b| (String::new(), b))
            .collect();
        if messages.is_empty() {
            return Vec::new();
        }
        let out = license_check::handle_event(&self.deps, sqs_event(&messages))
            .await
            .expect("sqs batch");
        out["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| f["itemIdentifier"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Lets Graph's longest documented delivery delay pass (15 minutes, on the simulated clock and ours), then
    /// waits until the simulator has delivered at least `n` notifications.
    async fn delivered(&self, n: u64) -> Value {
        self.advance(Duration::minutes(15)).await;
        let started = Instant::now();
        loop {
            let stats = self.stats().await;
            if stats["stats"]["notifications_delivered"].as_u64() >= Some(n) {
                return stats;
            }
            assert!(
                started.elapsed() < StdDuration::from_secs(20),
                "only {stats} delivered"
            );
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        }
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(&self.url)
            .json(body)
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn full_check(&self) {
        let rt = &self.deps.home;
        licensewatch_core::usecases::check_licenses::check_licenses(
            &rt.check_deps(),
            &rt.tenant_run(),
            &rt.policy,
            &|_| {},
        )
        .await
        .expect("check");
    }

    fn tenant(&self) -> &str {
        &self.sim.tenant_id
    }

    /// A user's licence history as license-check recorded it.
    async fn history(&self, user: &str) -> Vec<licensewatch_core::ports::store::HistoryEntry> {
        (self.deps.home.store.history(self.tenant(), user).await).expect("history")
    }
}

/// What a function URL does: the HTTP request as a payload-v2 event to the handler, its answer back as HTTP.
async fn function_url_front(
    State(deps): State<Arc<TenantRuntimes>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Vec<(&str, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?.to_string())))
        .collect();
    let mut ev = function_url(method.as_str(), uri.path(), &body, &pairs);
    ev["rawQueryString"] = uri.query().unwrap_or("").into();
    // The HTTP branch of `handle_event` (whose other branches' futures are not `Send` for every lifetime, which an
    // axum handler needs).
    let out = match license_check::handle_http_event(&deps, ev).await {
        Ok(v) => v,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = StatusCode::from_u16(out["statusCode"].as_u64().unwrap_or(502) as u16)
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = out["headers"]["content-type"]
        .as_str()
        .unwrap_or("application/json")
        .to_string();
    let text = out["body"].as_str().unwrap_or("").to_string();
    (status, [("content-type", content_type)], text).into_response()
}

/// Alerts by mail from a mailbox of the generated tenant (user 10 has one) to the IT team.
fn mass_policy() -> Policy {
    let mut p = notify_policy();
    p.notify.sender = upn("user000010");
    p.check.mass_delicensing_min_users = 50;
    p
}

async fn mail_about_mass_delicensing(live: &Live) -> Vec<Value> {
    let mail = live.sim_get("/_sim/mail").await;
    mail.as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.to_string().contains("lost licences"))
        .collect()
}

#[tokio::test]
async fn graph_validates_the_endpoint_and_the_subscription_is_renewed_and_recreated() {
    let live = Live::start(60, Policy::default()).await;
    let created = live.keep().await;
    assert_eq!(created[0]["action"], "created", "{created:?}");
    let id = created[0]["subscription"]["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    let stats = live.stats().await;
    let subs = stats["subscriptions"].as_array().expect("subscriptions");
    assert_eq!(subs.len(), 1, "{stats}");
    assert_eq!(subs[0]["id"], id.as_str());
    assert_eq!(subs[0]["resource"], "/users");
    assert_eq!(subs[0]["changeType"], "updated,deleted");
    assert_eq!(subs[0]["notificationUrl"], live.url.as_str());
    assert_eq!(subs[0]["clientState"], CLIENT_STATE);
    let stored = live
        .deps
        .home
        .store
        .subscription(live.tenant())
        .await
        .expect("read");
    assert_eq!(
        stored.as_ref().map(|r| r.subscription_id.as_str()),
        Some(id.as_str())
    );

    // Run again at once: nothing to do.
    assert_eq!(live.keep().await[0]["action"], "kept");

    // 27 days later, less than three are left: renewed, same subscription, a later expiry at Graph too.
    live.advance(Duration::days(27)).await;
    let renewed = live.keep().await;
    assert_eq!(renewed[0]["action"], "renewed", "{renewed:?}");
    assert_eq!(renewed[0]["subscription"]["subscription_id"], id.as_str());
    let at_graph = live.stats().await["subscriptions"][0]["expirationDateTime"]
        .as_str()
        .expect("expiry")
        .to_string();
    let at_graph = chrono::DateTime::parse_from_rfc3339(&at_graph).expect("time");
    assert!(
        at_graph.to_utc() > live.clock_now() + Duration::days(28),
        "{at_graph}"
    );

    // Graph never says it removed a subscription on users (subscriptionRemoved is Outlook's and Teams'), so the
    // simulator refuses to send one.
    let said = live
        .control(
            &format!("/_sim/subscriptions/{id}/lifecycle"),
            json!({"event": "subscriptionRemoved"}),
        )
        .await;
    assert_eq!(said["error"]["code"], "InvalidRequest", "{said}");

    // Graph drops it silently: the renewal finds it gone and creates another.
    let rt = &live.deps.home;
    use licensewatch_core::ports::directory::ChangeSubscriptions;
    rt.microsoft
        .graph
        .delete_subscription(&id)
        .await
        .expect("delete");
    live.advance(Duration::days(27)).await;
    let recreated = live.keep().await;
    assert_eq!(recreated[0]["action"], "recreated", "{recreated:?}");
    assert_ne!(recreated[0]["subscription"]["subscription_id"], id.as_str());

    // reauthorizationRequired: reauthorised at Graph, the subscription kept.
    let third = recreated[0]["subscription"]["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    live.control(
        &format!("/_sim/subscriptions/{third}/lifecycle"),
        json!({"event": "reauthorizationRequired"}),
    )
    .await;
    assert!(live.drain().await.is_empty());
    let requests = live.sim_get("/_sim/requests").await;
    assert!(
        requests
            .to_string()
            .contains(&format!("/v1.0/subscriptions/{third}/reauthorize")),
        "reauthorised"
    );
    assert_eq!(live.stats().await["subscriptions"][0]["id"], third.as_str());
}

impl Live {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use licensewatch_core::ports::clock::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn an_endpoint_that_does_not_echo_the_token_is_refused_by_graph() {
    let live = Live::start(10, Policy::default()).await;
    let rt = &live.deps.home;
    use licensewatch_core::ports::directory::{ChangeSubscriptions, NewSubscription};
    let wrong = format!("{}/../nowhere", live.sim.base_url);
    let err = rt
        .microsoft
        .graph
        .create_subscription(&NewSubscription {
            resource: "/users",
            change_type: "updated,deleted",
            notification_url: &wrong,
            lifecycle_url: &wrong,
            expires_at: live.clock_now() + Duration::days(2),
            client_state: CLIENT_STATE,
        })
        .await
        .expect_err("validation fails");
    assert!(err.to_string().contains("validation"), "{err}");
    let too_long = rt
        .microsoft
        .graph
        .create_subscription(&NewSubscription {
            resource: "/users",
            change_type: "updated",
            notification_url: &live.url,
            lifecycle_url: &live.url,
            expires_at: live.clock_now() + Duration::days(30),
            client_state: CLIENT_STATE,
        })
        .await
        .expect_err("too far");
    assert!(too_long.to_string().contains("41760"), "{too_long}");
}

#[tokio::test]
async fn forged_or_missing_client_state_is_refused_and_changes_nothing() {
    let live = Live::start(60, mass_policy()).await;
    live.full_check().await;
    let runs_before = live
        .deps
        .home
        .store
        .runs(live.tenant(), 10)
        .await
        .expect("runs")
        .len();
    // A real removal, so that acting on a forged notification would show.
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 3}),
    )
    .await;
    let user = "00000003-0000-4000-8000-000000000003";
    let item = |client_state: Option<&str>| {
        let mut v = json!({"subscriptionId": "5d6c0f4e-0000-4000-8000-000000000001", "changeType": "updated",
            "resource": format!("Users/{user}"), "resourceData": {"id": user}, "tenantId": live.tenant(),
            "subscriptionExpirationDateTime": "2026-12-01T00:00:00Z"});
        if let Some(c) = client_state {
            v["clientState"] = c.into();
        }
        v
    };
    let forged = "e2e-client-state-7f3a9c1d2b4e6f80a1b2c3d5";
    let (status, body) = live
        .post(&json!({"value": [item(Some(forged)), item(None), item(Some(""))]}))
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 0, "{body}");
    assert_eq!(body["refused"], 3, "{body}");
    let (status, _) = live.post(&json!({"nothing": true})).await;
    assert_eq!(status, 400);
    assert!(live.queue.sent().is_empty(), "nothing queued");
    assert!(live.drain().await.is_empty());
    let runs_after = live
        .deps
        .home
        .store
        .runs(live.tenant(), 10)
        .await
        .expect("runs")
        .len();
    assert_eq!(runs_after, runs_before, "no run happened");
    let history = live.history(user).await;
    assert!(
        history.iter().all(|h| h.change != "removed"),
        "the removal was not acted on: {history:?}"
    );
    // The same notification with the right secret is acted on; posted the moment the change was made, its read
    // comes from a replica that does not have the change yet, so the user is read again two minutes later.
    let (status, body) = live
        .post(&json!({"value": [item(Some(CLIENT_STATE))]}))
        .await;
    assert_eq!((status, body["accepted"].as_u64()), (202, Some(1)));
    assert!(live.drain().await.is_empty());
    let history = live.history(user).await;
    assert!(
        history.iter().all(|h| h.change != "removed"),
        "not visible yet: {history:?}"
    );
    let later = live.queue.delayed();
    assert_eq!(later.len(), 1, "{later:?}");
    assert_eq!(later[0].1, REREAD_AFTER);
    assert!(later[0].0.contains(user), "{later:?}");
    live.advance(Duration::seconds(REREAD_AFTER.as_secs() as i64))
        .await;
    live.queue.release_delayed();
    assert!(live.drain().await.is_empty());
    assert!(
        live.queue.delayed().is_empty(),
        "read again once, not asked a third time"
    );
    let history = live.history(user).await;
    assert!(history.iter().any(|h| h.change == "removed"), "{history:?}");
}

#[tokio::test]
async fn a_burst_of_2000_is_answered_in_time_and_processed_once() {
    let live = Live::start(2200, mass_policy()).await;
    live.full_check().await;
    live.keep().await;
    // Graph sometimes posts a batch twice and out of order.
    live.control(
        "/_sim/notifications/faults",
        json!({"duplicate_probability": 0.3, "reverse": true}),
    )
    .await;
    let removed = live
        .control(
            "/_sim/licenses/remove",
            json!({"sku_id": E3_SKU, "count": 2000}),
        )
        .await;
    assert_eq!(removed["removed"], 2000);
    let stats = live.delivered(2000).await;
    let s = &stats["stats"];
    assert_eq!(
        s["attempts_failed"], 0,
        "every POST acknowledged in time: {s}"
    );
    assert!(s["slowest_ack_ms"].as_u64().expect("ms") < 3000, "{s}");
    let duplicated = s["batches_duplicated"].as_u64().expect("n");
    // Wait for the duplicates to land too.
    let stats = live.delivered(2000 + duplicated * 100).await;
    let queued: usize = live
        .queue
        .sent()
        .iter()
        .map(|b| {
            serde_json::from_str::<ChangeMessage>(b)
                .expect("message")
                .notifications
                .len()
        })
        .sum();
    assert_eq!(
        queued as u64,
        stats["stats"]["notifications_delivered"]
            .as_u64()
            .expect("n")
    );
    let messages = live.queue.sent();
    assert!(live.drain().await.is_empty(), "processed");
    let entries = |h: Vec<licensewatch_core::ports::store::HistoryEntry>| {
        h.into_iter().filter(|e| e.change == "removed").count()
    };
    let sample = "00000005-0000-4000-8000-000000000005";
    let store = &live.deps.home.store;
    assert_eq!(
        entries(store.history(live.tenant(), sample).await.expect("h")),
        1
    );
    let mail = mail_about_mass_delicensing(&live).await;
    assert_eq!(mail.len(), 1, "one alert: {mail:?}");
    assert!(
        mail[0].to_string().contains("2000 users lost licences"),
        "{}",
        mail[0]
    );

    // SQS delivers the whole burst again: nothing is recorded or sent twice.
    for m in &messages {
        use licensewatch_core::ports::queue::MessageQueue;
        live.queue.send(m).await.expect("requeue");
    }
    assert!(live.drain().await.is_empty());
    assert_eq!(
        entries(store.history(live.tenant(), sample).await.expect("h")),
        1
    );
    assert_eq!(mail_about_mass_delicensing(&live).await.len(), 1);
}

#[tokio::test]
async fn lost_notifications_are_never_announced_and_the_next_scheduled_run_finds_the_change() {
    let live = Live::start(120, Policy::default()).await;
    live.full_check().await;
    let created = live.keep().await;
    let id = created[0]["subscription"]["subscription_id"]
        .as_str()
        .expect("id")
        .to_string();
    live.control(
        "/_sim/notifications/faults",
        json!({"drop_probability": 1.0}),
    )
    .await;
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 2}),
    )
    .await;
    live.advance(Duration::minutes(16)).await;
    let started = Instant::now();
    while live.stats().await["stats"]["notifications_dropped"].as_u64() < Some(2) {
        assert!(started.elapsed() < StdDuration::from_secs(10));
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert!(live.queue.sent().is_empty(), "the notifications were lost");
    // For users Graph has no `missed`: nothing says the changes were lost.
    let said = live
        .control(
            &format!("/_sim/subscriptions/{id}/lifecycle"),
            json!({"event": "missed"}),
        )
        .await;
    assert_eq!(said["error"]["code"], "InvalidRequest", "{said}");
    assert!(live.drain().await.is_empty());
    let store = &live.deps.home.store;
    let removed = |h: &[licensewatch_core::ports::store::HistoryEntry]| {
        h.iter().any(|e| e.change == "removed")
    };
    let user = "00000003-0000-4000-8000-000000000003";
    assert!(!removed(
        &store.history(live.tenant(), user).await.expect("history")
    ));
    // The scheduled run (a delta round) is the ground truth.
    live.full_check().await;
    for user in [user, "00000004-0000-4000-8000-000000000004"] {
        let h = store.history(live.tenant(), user).await.expect("history");
        assert!(removed(&h), "{user}: {h:?}");
    }
}

#[tokio::test]
async fn a_mass_delicensing_produces_one_alert_with_the_right_count() {
    let live = Live::start(1000, mass_policy()).await;
    live.full_check().await;
    live.keep().await;
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 400}),
    )
    .await;
    live.delivered(400).await;
    assert!(live.drain().await.is_empty());
    let mail = mail_about_mass_delicensing(&live).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].to_string().contains("400 users lost licences"),
        "{}",
        mail[0]
    );
    // A straggler notification within the window is the same occurrence: no second alert.
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 10}),
    )
    .await;
    live.delivered(410).await;
    assert!(live.drain().await.is_empty());
    assert_eq!(mail_about_mass_delicensing(&live).await.len(), 1);
    // The next scheduled check an hour later sees the window drained: the occurrence ends; a new wave later
    // would be a new alert.
    live.advance(Duration::minutes(61)).await;
    live.full_check().await;
    let open = live
        .deps
        .home
        .store
        .open_alerts(live.tenant())
        .await
        .expect("alerts");
    assert!(
        open.iter().all(|a| a.condition != "mass_delicensing"),
        "{open:?}"
    );
}

#[tokio::test]
async fn a_removal_spread_over_several_re_checks_is_one_occurrence_raised_when_it_crosses_the_threshold()
 {
    let live = Live::start(1000, mass_policy()).await;
    live.full_check().await;
    live.keep().await;
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 40}),
    )
    .await;
    live.delivered(40).await;
    assert!(live.drain().await.is_empty());
    assert!(
        mail_about_mass_delicensing(&live).await.is_empty(),
        "40 is below 50"
    );
    live.advance(Duration::minutes(10)).await;
    live.control(
        "/_sim/licenses/remove",
        json!({"sku_id": E3_SKU, "count": 40}),
    )
    .await;
    live.delivered(80).await;
    assert!(live.drain().await.is_empty());
    let mail = mail_about_mass_delicensing(&live).await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert!(
        mail[0].to_string().contains("80 users lost licences"),
        "{}",
        mail[0]
    );
}

#[test]
fn change_messages_name_their_kind() {
    let m = ChangeMessage {
        kind: ChangeMessageKind::GraphChanges,
        tenant_id: "t".into(),
        notifications: vec![Notification::Change {
            subscription_id: "s".into(),
            tenant_id: "t".into(),
            change: ChangeType::Updated,
            user_id: "u".into(),
        }],
    };
    let v = serde_json::to_value(&m).expect("json");
    assert_eq!(v["kind"], "graph_changes");
    // A tenant-run message is not mistaken for one.
    assert!(serde_json::from_value::<ChangeMessage>(json!({"tenant_id": "t"})).is_err());
}

mod crash {
    use super::*;
    use licensewatch_core::error::CoreError;
    use licensewatch_core::usecases::change_notifications::process;
    use licensewatch_core::usecases::check_licenses::CheckStep;

    /// Every notification queued so far.
    fn queued(live: &Live) -> Vec<Notification> {
        live.queue
            .take()
            .iter()
            .flat_map(|b| {
                serde_json::from_str::<ChangeMessage>(b)
                    .expect("message")
                    .notifications
            })
            .collect()
    }

    async fn run(
        live: &Live,
        notifications: &[Notification],
        crash: &(dyn Fn(CheckStep) -> Result<(), CoreError> + Sync),
    ) -> Result<licensewatch_core::usecases::change_notifications::ProcessReport, CoreError> {
        let rt = &live.deps.home;
        let channels = rt.notify_channels(None).expect("channels");
        let mut deps = rt.change_deps(&channels);
        deps.check.crash = crash;
        process(&deps, &rt.tenant_run(), &rt.policy, None, notifications).await
    }

    async fn remove_and_collect(live: &Live, count: usize, already: u64) -> Vec<Notification> {
        live.control(
            "/_sim/licenses/remove",
            json!({"sku_id": E3_SKU, "count": count}),
        )
        .await;
        live.delivered(already + count as u64).await;
        queued(live)
    }

    /// (duplicated, lost) removal entries and alert mails after a crash at `step`, a changed tenant and a rerun of
    /// every notification.
    async fn crash_then_redeliver(step: CheckStep) -> (usize, usize) {
        let live = Live::start(200, mass_policy()).await;
        live.full_check().await;
        live.keep().await;
        let first = remove_and_collect(&live, 60, 0).await;
        let crash = |s: CheckStep| match s == step {
            true => Err(CoreError::BadInput(format!("crash at {s:?}"))),
            false => Ok(()),
        };
        assert!(run(&live, &first, &crash).await.is_err(), "{step:?}");
        // The tenant moves on; SQS delivers the first batch again, with the new one.
        let mut again = remove_and_collect(&live, 5, 60).await;
        again.extend(first);
        run(&live, &again, &|_| Ok(())).await.expect("redelivery");
        let store = &live.deps.home.store;
        let (mut duplicated, mut lost) = (0, 0);
        for i in (3..80).filter(|i| i % 50 > 2).take(65) {
            let user = format!("{i:08x}-0000-4000-8000-{i:012x}");
            let removed = store
                .history(live.tenant(), &user)
                .await
                .expect("history")
                .iter()
                .filter(|e| e.change == "removed")
                .count();
            duplicated += removed.saturating_sub(1);
            lost += 1usize.saturating_sub(removed);
        }
        let mails = mail_about_mass_delicensing(&live).await.len();
        duplicated += mails.saturating_sub(1);
        lost += 1usize.saturating_sub(mails);
        (duplicated, lost)
    }

    #[tokio::test]
    async fn a_crash_at_any_write_boundary_of_a_re_check_loses_and_repeats_nothing() {
        let mut failures = Vec::new();
        for step in [
            CheckStep::AfterAlerts,
            CheckStep::AfterCases,
            CheckStep::AfterHistory,
            CheckStep::AfterQueue,
            CheckStep::AfterSnapshot,
        ] {
            let (duplicated, lost) = crash_then_redeliver(step).await;
            eprintln!("re-check crash at {step:?}: {lost} lost, {duplicated} duplicated");
            if duplicated + lost > 0 {
                failures.push(format!("{step:?}: {duplicated} duplicated, {lost} lost"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }

    #[tokio::test]
    async fn a_re_check_during_a_scheduled_run_fails_retryably_and_its_redelivery_does_the_work() {
        use licensewatch_core::ports::store::lease_name;
        let live = Live::start(200, mass_policy()).await;
        live.full_check().await;
        live.keep().await;
        let notifications = remove_and_collect(&live, 60, 0).await;
        let store = &live.deps.home.store;
        let name = lease_name("license-check", live.tenant());
        let now = live.clock_now();
        store
            .acquire_lease(&name, "a-scheduled-run", now, Duration::minutes(15))
            .await
            .expect("lease");
        let busy = run(&live, &notifications, &|_| Ok(())).await;
        assert!(matches!(&busy, Err(CoreError::Busy(_))), "{busy:?}");
        assert!(busy.as_ref().err().is_some_and(|e| e.is_retryable()));
        let user = "00000003-0000-4000-8000-000000000003";
        let removed = |h: Vec<licensewatch_core::ports::store::HistoryEntry>| {
            h.iter().filter(|e| e.change == "removed").count()
        };
        assert_eq!(
            removed(store.history(live.tenant(), user).await.expect("h")),
            0
        );
        store
            .release_lease(&name, "a-scheduled-run")
            .await
            .expect("release");
        run(&live, &notifications, &|_| Ok(()))
            .await
            .expect("redelivered");
        assert_eq!(
            removed(store.history(live.tenant(), user).await.expect("h")),
            1
        );
        assert_eq!(mail_about_mass_delicensing(&live).await.len(), 1);
    }

    #[tokio::test]
    async fn two_deliveries_at_once_do_the_work_once_and_the_busy_one_is_retried() {
        let live = Live::start(200, mass_policy()).await;
        live.full_check().await;
        live.keep().await;
        let notifications = remove_and_collect(&live, 60, 0).await;
        let (a, b) = tokio::join!(
            run(&live, &notifications, &|_| Ok(())),
            run(&live, &notifications, &|_| Ok(()))
        );
        let busy: Vec<&CoreError> = [&a, &b]
            .into_iter()
            .filter_map(|r| r.as_ref().err())
            .collect();
        assert!(busy.len() <= 1, "{a:?} {b:?}");
        for e in &busy {
            assert!(matches!(e, CoreError::Busy(_)) && e.is_retryable(), "{e:?}");
        }
        // The queue delivers the busy one again.
        if !busy.is_empty() {
            run(&live, &notifications, &|_| Ok(()))
                .await
                .expect("retried");
        }
        let user = "00000003-0000-4000-8000-000000000003";
        let h = live
            .deps
            .home
            .store
            .history(live.tenant(), user)
            .await
            .expect("history");
        assert_eq!(
            h.iter().filter(|e| e.change == "removed").count(),
            1,
            "{h:?}"
        );
        assert_eq!(mail_about_mass_delicensing(&live).await.len(), 1);
    }
}

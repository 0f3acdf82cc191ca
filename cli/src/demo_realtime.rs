//! The demo's last chapter: real-time detection. A second simulated tenant (2,000 users) is watched through Graph
//! change notifications by `licensewatch serve`'s own endpoint and worker: the simulated Graph validates the
//! endpoint and subscribes it; an administrator's script removes E3 from 400 users; Graph posts the changes; the
//! worker re-checks the named users, finds a mass delicensing and mails the admins seconds after Graph's
//! notifications arrive (Graph delays them up to 15 minutes: the simulated clock moves on a quarter of an hour),
//! instead of at the next hourly check.

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Utc};
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::clock::FixedClock;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::change_notifications::keep_subscription;
use licensewatch_core::usecases::check_licenses::check_licenses;
use licensewatch_sim::Scenario;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::endpoint_state::Changes;
use crate::serve::{App, Limits, serve_with_limits};

const TENANT: &str = "5b1e2f3a-4c5d-4e6f-8a7b-9c0d1e2f3a4b";
const USERS: usize = 2_000;
const REMOVED: usize = 400;
const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";

/// What the chapter shows (`demo --json`: `realtime`).
#[derive(Debug, Serialize)]
pub(crate) struct Realtime {
    /// Users in the second tenant.
    pub tenant_users: usize,
    /// Users the administrator's script took E3 from.
    pub users_removed: usize,
    /// Notifications Graph delivered.
    pub notifications_delivered: u64,
    /// Users the worker read again.
    pub users_rechecked: usize,
    /// From the change to the alert mail sent, in milliseconds.
    pub alert_after_ms: u128,
    /// Alert mails the simulated tenant recorded.
    pub alert_mails: usize,
}

/// Runs the chapter at `now` with its state under `dir`.
pub(crate) async fn chapter(now: DateTime<Utc>, dir: &std::path::Path) -> Result<Realtime, String> {
    let sim = licensewatch_sim::start(
        Scenario::generated(USERS, TENANT, now),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .map_err(|e| format!("cannot start the second simulated tenant: {e}"))?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| format!("cannot open the notification endpoint: {e}"))?;
    let url = format!(
        "http://{}{}",
        listener.local_addr().map_err(|e| e.to_string())?,
        crate::changes::PATH
    );
    let rt = runtime(&sim, &url, now, dir).await?;
    let changes = Changes::from_runtime(&rt, None).await?;
    let app = Arc::new(App {
        rt,
        auth: None,
        changes,
        desks: Vec::new(),
    });
    let server = app.clone();
    tokio::spawn(async move {
        serve_with_limits(listener, server, Limits::default(), std::future::pending()).await;
    });
    let (tx, mut reports) = mpsc::unbounded_channel();
    tokio::spawn(crate::changes::worker(app.clone(), Some(tx)));

    // The hourly check has run once: the baseline.
    let rt = &app.rt;
    check_licenses(&rt.check_deps(), &rt.tenant_run(), &rt.policy, &|_| {})
        .await
        .map_err(|e| format!("license-check: {e}"))?;
    let changes = app.changes.as_ref().ok_or("change notifications are off")?;
    keep_subscription(
        &rt.change_deps(&[]),
        &rt.microsoft.tenant_id,
        &changes.settings,
    )
    .await
    .map_err(|e| format!("subscribing to Graph change notifications: {e}"))?;

    let http = reqwest::Client::new();
    let started = Instant::now();
    control(
        &http,
        &sim.base_url,
        "/_sim/licenses/remove",
        json!({"sku_id": E3, "count": REMOVED}),
    )
    .await?;
    // Graph posts a change to users within about a minute, up to 15: the simulated tenant's clock moves on a
    // quarter of an hour, and its notifications leave.
    control(
        &http,
        &sim.base_url,
        "/_sim/clock",
        json!({"advance_minutes": 15}),
    )
    .await?;
    let mut rechecked = 0;
    let alert_after = loop {
        let report = tokio::time::timeout(StdDuration::from_secs(60), reports.recv())
            .await
            .map_err(|_| "no alert within a minute of the change".to_string())?
            .ok_or("the change worker stopped")?;
        rechecked += report.users_notified;
        if report.alerts_sent > 0 {
            break started.elapsed();
        }
    };
    let stats = get(&http, &sim.base_url, "/_sim/notifications").await?;
    let mail = get(&http, &sim.base_url, "/_sim/mail").await?;
    let alert_mails = mail
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|x| x.to_string().contains("lost licences"))
                .count()
        })
        .unwrap_or(0);
    Ok(Realtime {
        tenant_users: USERS,
        users_removed: REMOVED,
        notifications_delivered: stats["stats"]["notifications_delivered"]
            .as_u64()
            .unwrap_or(0),
        users_rechecked: rechecked,
        alert_after_ms: alert_after.as_millis(),
        alert_mails,
    })
}

/// The lines people read.
pub(crate) fn lines(r: &Realtime) -> Vec<String> {
    vec![
        String::new(),
        format!(
            "Real time, on a second tenant of {} users watched through Graph change notifications:",
            r.tenant_users
        ),
        format!(
            "  an administrator's script removes E3 from {} users; Graph posts {} notifications; licensewatch re-reads {} users",
            r.users_removed, r.notifications_delivered, r.users_rechecked
        ),
        format!(
            "  and mails the admins a mass-delicensing alert {:.1} s after they arrive ({} alert mail; Graph takes a minute or so, up to 15), not at the next hourly check.",
            r.alert_after_ms as f64 / 1000.0,
            r.alert_mails
        ),
    ]
}

async fn runtime(
    sim: &licensewatch_sim::SimHandle,
    url: &str,
    now: DateTime<Utc>,
    dir: &std::path::Path,
) -> Result<Runtime, String> {
    let client_state = format!(
        "demo-{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let extra = [
        ("LICENSEWATCH_NOTIFICATION_URL", url.to_string()),
        ("LICENSEWATCH_NOTIFICATION_CLIENT_STATE", client_state),
    ];
    let mut policy = Policy::default();
    policy.notify.admins = vec!["it-team@contoso.com".into()];
    // A mailbox of the generated tenant sends the alert.
    policy.notify.sender = "user000010@contoso.onmicrosoft.com".into();
    let mut rt = crate::sim_runtime::sim_runtime(
        sim,
        dir,
        "realtime.db",
        "realtime-archive",
        &extra,
        policy,
    )
    .await?;
    rt.clock = Arc::new(FixedClock::at(now));
    Ok(rt)
}

async fn control(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> Result<(), String> {
    let r = http
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("simulated tenant: {e}"))?;
    match r.status().is_success() {
        true => Ok(()),
        false => Err(format!("simulated tenant: {path} answered {}", r.status())),
    }
}

async fn get(http: &reqwest::Client, base: &str, path: &str) -> Result<Value, String> {
    http.get(format!("{base}{path}"))
        .send()
        .await
        .map_err(|e| format!("simulated tenant: {e}"))?
        .json()
        .await
        .map_err(|e| format!("simulated tenant: {e}"))
}

//! Load generator for `licensewatch serve` (benchmark, not a test): signed valid requests or bad signatures from
//! `--concurrency` connections for `--seconds`, reporting requests/s, p50/p99 latency and status counts. With
//! `--mode notifications`, Graph change-notification batches of `--batch` items carrying `--client-state` to
//! `/graph/notifications` instead.
//!
//! cargo run --release -p licensewatch --example webhook_load -- --url http://127.0.0.1:8080 \
//!     --secret whsec_... --mode valid --seconds 60 --concurrency 64

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use licensewatch_core::domain::signing::WebhookSecret;

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() {
    let mode = arg("--mode", "valid");
    let notifications = mode == "notifications";
    let path = if notifications {
        "/graph/notifications"
    } else {
        "/remediations"
    };
    let url = format!("{}{path}", arg("--url", "http://127.0.0.1:8080"));
    let client_state = arg("--client-state", "");
    let tenant = arg("--tenant", "00000000-0000-0000-0000-000000000000");
    let batch: usize = arg("--batch", "100").parse().expect("--batch");
    let secret = WebhookSecret::parse(&arg("--secret", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"))
        .expect("--secret");
    let valid = mode == "valid";
    let seconds: u64 = arg("--seconds", "60").parse().expect("--seconds");
    let concurrency: usize = arg("--concurrency", "64").parse().expect("--concurrency");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (http, url, secret, counter) =
            (http.clone(), url.clone(), secret.clone(), counter.clone());
        let (client_state, tenant) = (client_state.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let request = match notifications {
                    true => http
                        .post(&url)
                        .body(notification_batch(n, batch, &client_state, &tenant)),
                    false => {
                        let body = format!(
                            r#"{{"user":"user{:06}@contoso.onmicrosoft.com","action":"reprocess","ticket":{{"system":"load","id":"T{w}-{n}"}}}}"#,
                            n % 100_000
                        );
                        let id = format!("msg_load_{w}_{n}");
                        let ts = chrono::Utc::now().timestamp();
                        let sig = if valid { secret.sign(&id, ts, body.as_bytes()) } else { "v1,bm90IGEgcmVhbCBzaWduYXR1cmUgYXQgYWxsIQ==".into() };
                        http.post(&url)
                            .header("webhook-id", id)
                            .header("webhook-timestamp", ts.to_string())
                            .header("webhook-signature", sig)
                            .body(body)
                    }
                };
                let t0 = Instant::now();
                let r = request
                    .header("content-type", "application/json")
                    .send()
                    .await;
                let status = match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                lat.push(t0.elapsed().as_micros() as u32);
                *statuses.entry(status).or_default() += 1;
            }
            (lat, statuses)
        }));
    }
    let started = Instant::now();
    let mut lat = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
    for t in tasks {
        let (l, s) = t.await.expect("task");
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{}",
        serde_json::json!({"mode": if notifications {"notifications"} else if valid {"valid"} else {"bad_signature"},
            "notifications_per_request": if notifications { batch } else { 0 }, "requests": lat.len(), "seconds": elapsed,
            "requests_per_s": (lat.len() as f64 / elapsed).round(), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "statuses": statuses})
    );
}

/// A batch of `batch` change notifications as Graph posts them, naming generated users.
fn notification_batch(n: u64, batch: usize, client_state: &str, tenant: &str) -> String {
    let items: Vec<serde_json::Value> = (0..batch as u64)
        .map(|k| {
            let i = (n * batch as u64 + k) % 100_000;
            let user = format!("{i:08x}-0000-4000-8000-{i:012x}");
            serde_json::json!({"subscriptionId": "0b6c1f2e-0000-4000-8000-000000000001",
                "subscriptionExpirationDateTime": "2026-12-29T00:00:00Z", "changeType": "updated",
                "resource": format!("Users/{user}"),
                "resourceData": {"@odata.type": "#Microsoft.Graph.User", "@odata.id": format!("Users/{user}"),
                    "id": user, "organizationId": tenant},
                "clientState": client_state, "tenantId": tenant})
        })
        .collect();
    serde_json::json!({ "value": items }).to_string()
}

//! Monthly statements against the simulated tenant: a week across a month's end of starters, a leaver and seats
//! bought, then November's statement checked against what the tenant said at each run; published once, whatever
//! crashes or reruns.

use chrono::{Duration, TimeZone, Utc};
use licensewatch_core::adapters::files::FileDocuments;
use licensewatch_core::domain::statement::{Month, Statement};
use licensewatch_core::error::StoreError;
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::documents::Documents;
use licensewatch_core::usecases::fetch_audit::fetch_audit;
use licensewatch_core::usecases::statement::{Published, publish, statement};
use serde_json::json;

use crate::helpers::*;

const PRICE: f64 = 23.5;

fn priced() -> Policy {
    let mut p = Policy::default();
    p.prices.currency = "EUR".into();
    p.prices.monthly.insert("ENTERPRISEPACK".into(), PRICE);
    p
}

/// E3's (enabled, consumed) as the tenant reports it.
async fn e3_seats(env: &TestEnv) -> (i64, i64) {
    let state = env.get("/_sim/state").await;
    let sku = state["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|k| k["sku_id"] == E3)
        .cloned()
        .expect("E3");
    (
        sku["enabled"].as_i64().expect("enabled"),
        sku["consumed"].as_i64().expect("consumed"),
    )
}

async fn licence(env: &TestEnv, nick: &str, change: serde_json::Value) {
    let status = env
        .control(&format!("/_sim/users/{}/licenses", upn(nick)), change)
        .await;
    assert_eq!(status, 200, "{nick}");
}

/// Runs 26 November to 3 December, a check and an audit fetch a day; returns November's statement and E3's seats
/// at each November run as the tenant reported them.
async fn a_week_across_the_month_end() -> (TestEnv, Statement, Vec<(i64, i64)>) {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 26, 8, 0, 0)
        .single()
        .expect("t");
    let env = TestEnv::at(start, priced()).await;
    let mut november = Vec::new();
    for day in 0..8 {
        match day {
            1 => licence(&env, "pradeep.gupta", json!({"add": [{"sku_id": E3}]})).await,
            2 => licence(&env, "megan.bowen", json!({"add": [{"sku_id": E3}]})).await,
            3 => {
                licence(&env, "pradeep.gupta", json!({"remove": [E3]})).await;
                let (enabled, _) = e3_seats(&env).await;
                env.control(
                    &format!("/_sim/skus/{E3}/seats"),
                    json!({"enabled": enabled + 5}),
                )
                .await;
            }
            6 => licence(&env, "lee.gu", json!({"add": [{"sku_id": E3}]})).await,
            _ => {}
        }
        env.check().await;
        if env.now()
            < Utc
                .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
                .single()
                .expect("t")
        {
            november.push(e3_seats(&env).await);
        }
        fetch_audit(&env.rt.audit_deps(), &env.rt.policy)
            .await
            .expect("audit-fetch");
        env.advance(Duration::days(1)).await;
    }
    // The audit logs deliver late: one more fetch after the last change.
    env.advance(Duration::hours(6)).await;
    fetch_audit(&env.rt.audit_deps(), &env.rt.policy)
        .await
        .expect("audit-fetch");
    let st = statement(
        &env.rt.statement_deps(),
        &env.sim.tenant_id,
        Month::parse("2026-11").expect("month"),
        &env.rt.policy,
    )
    .await
    .expect("statement");
    (env, st, november)
}

#[tokio::test]
async fn novembers_statement_is_what_the_tenant_said_at_each_november_run() {
    let (env, st, november) = a_week_across_the_month_end().await;
    assert_eq!(st.runs, november.len(), "the five November runs");
    let e3 = st.skus.iter().find(|l| l.sku_id == E3).expect("E3 line");
    let (enabled, consumed) = *november.last().expect("runs");
    let peak = november.iter().map(|(_, c)| *c).max().expect("peak");
    assert_eq!(
        (e3.bought, e3.assigned, e3.peak_assigned, e3.unassigned),
        (enabled, consumed, peak, enabled - consumed),
        "month-end seats and the month's peak: {november:?}"
    );
    assert!(
        peak > consumed,
        "the leaver lowered the month's end below its peak"
    );
    assert_eq!(e3.sku, "Office 365 E3");
    assert_eq!(e3.monthly_cost, Some(PRICE * enabled as f64));
    assert_eq!(st.total_cost, PRICE * enabled as f64, "only E3 has a price");
    assert_eq!(st.currency, "EUR");

    let e3_changes: Vec<(String, Vec<String>, Vec<String>)> = st
        .changes
        .iter()
        // The default story's own changes come before the week.
        .filter(|c| {
            c.at >= Utc
                .with_ymd_and_hms(2026, 11, 26, 0, 0, 0)
                .single()
                .expect("t")
        })
        .filter(|c| {
            c.added
                .iter()
                .chain(&c.removed)
                .any(|s| s == "Office 365 E3")
        })
        .map(|c| (c.user.clone(), c.added.clone(), c.removed.clone()))
        .collect();
    let e3 = || vec!["Office 365 E3".to_string()];
    assert_eq!(
        e3_changes,
        vec![
            (upn("pradeep.gupta"), e3(), vec![]),
            (upn("megan.bowen"), e3(), vec![]),
            (upn("pradeep.gupta"), vec![], e3()),
        ],
        "November's changes once each (both audit sources record them), December's left out"
    );
    assert!(st.changes.iter().all(|c| !c.by.is_empty()));

    let december = statement(
        &env.rt.statement_deps(),
        &env.sim.tenant_id,
        Month::parse("2026-12").expect("month"),
        &env.rt.policy,
    )
    .await
    .expect("december");
    assert!(
        december
            .changes
            .iter()
            .any(|c| c.user == upn("lee.gu") && c.added == e3()),
        "{:?}",
        december.changes
    );
}

/// Documents that fail after `ok` writes, as a crash would stop a run.
struct CrashAfter {
    inner: FileDocuments,
    ok: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Documents for CrashAfter {
    async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        if self
            .ok
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(StoreError::Busy(format!("crash before writing {key}")));
        }
        self.inner.put_new(key, bytes).await
    }
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for p in std::fs::read_dir(&d)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
        {
            if p.is_dir() {
                stack.push(p);
            } else {
                let key = p.strip_prefix(dir).expect("under").display().to_string();
                out.push((key, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn publishing_writes_each_document_once_whatever_crashes_or_reruns() {
    let (env, _, _) = a_week_across_the_month_end().await;
    let month = Month::parse("2026-11").expect("month");
    let tenants = vec![env.sim.tenant_id.clone()];
    let run = async |docs: &dyn Documents| {
        publish(
            &env.rt.statement_deps(),
            docs,
            &tenants,
            month,
            &env.rt.policy,
        )
        .await
    };
    let clean = tempfile::tempdir().expect("dir");
    let first: Published = run(&FileDocuments::new(clean.path()))
        .await
        .expect("publish");
    assert_eq!(first.written.len(), 6, "{first:?}");
    let whole = files(clean.path());
    let tenant = env.sim.tenant_id.to_ascii_lowercase();
    let keys: Vec<&str> = whole.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("{tenant}/2026-11/changes.csv"),
            format!("{tenant}/2026-11/skus.csv"),
            format!("{tenant}/2026-11/statement.pdf"),
            "fleet/2026-11/changes.csv".to_string(),
            "fleet/2026-11/skus.csv".to_string(),
            "fleet/2026-11/statements.pdf".to_string(),
        ]
    );
    let again = run(&FileDocuments::new(clean.path())).await.expect("again");
    assert_eq!((again.written.len(), again.already_there), (0, 6));

    // Two runs at once (an overlapping schedule): each document is written by exactly one of them.
    let both = tempfile::tempdir().expect("dir");
    let (one, other) = (
        FileDocuments::new(both.path()),
        FileDocuments::new(both.path()),
    );
    let (a, b) = tokio::join!(run(&one), run(&other));
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert_eq!(a.written.len() + b.written.len(), 6, "{a:?} {b:?}");
    assert_eq!(a.already_there + b.already_there, 6);
    assert_eq!(files(both.path()), whole);

    // A crash before each write, then a rerun: the documents are the clean run's, each written once.
    for crash_at in 0..6 {
        let dir = tempfile::tempdir().expect("dir");
        let crashing = CrashAfter {
            inner: FileDocuments::new(dir.path()),
            ok: crash_at.into(),
        };
        let err = run(&crashing).await.expect_err("crashed");
        assert!(err.to_string().contains("crash before writing"), "{err}");
        let rerun = run(&FileDocuments::new(dir.path())).await.expect("rerun");
        assert_eq!(rerun.written.len(), 6 - crash_at, "crash at {crash_at}");
        assert_eq!(files(dir.path()), whole, "crash at {crash_at}");
    }
}

#[tokio::test]
async fn the_monthly_schedule_writes_every_customers_statement_to_the_bucket() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(priced(), &aws).await;
    env.check().await;
    let deps = license_check::Deps::new(env.into_runtime());
    let now = deps.home.clock.now();
    let event = json!({
        "version": "0", "id": "1", "detail-type": "licensewatch monthly statements", "source": "licensewatch",
        "account": "123456789012", "time": now, "region": "eu-west-1", "resources": [],
        "detail": {"action": "statement", "month": Month::parse(&now.format("%Y-%m").to_string()).expect("m").to_string()}
    });
    let out = license_check::handle_event(&deps, event.clone())
        .await
        .expect("statements");
    assert_eq!(out["tenants"], 1);
    assert_eq!(out["written"].as_array().map(Vec::len), Some(6), "{out}");
    let again = license_check::handle_event(&deps, event.clone())
        .await
        .expect("again");
    assert_eq!(
        again["already_there"], 6,
        "a retried schedule writes nothing twice"
    );
    let objects = licensewatch_core::adapters::aws::s3::S3Objects::new(&aws.conf, &aws.bucket, "");
    let keys = objects.list("statements/").await.expect("list");
    assert_eq!(keys.len(), 6, "{keys:?}");
    let pdf = objects
        .get_opt(
            keys.iter()
                .find(|k| k.ends_with("statement.pdf"))
                .expect("pdf"),
        )
        .await
        .expect("get")
        .expect("object");
    assert!(pdf.starts_with(b"%PDF-1.4"));

    let mut bad = event;
    bad["detail"]["month"] = json!("2026-13");
    let err = license_check::handle_event(&deps, bad)
        .await
        .expect_err("bad month");
    assert!(err.to_string().contains("detail.month"), "{err}");
}

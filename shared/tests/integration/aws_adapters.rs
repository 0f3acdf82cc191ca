//! The AWS adapters against moto in server mode (started by `scripts/test.sh`, which exports
//! `LICENSEWATCH_TEST_MOTO_URL`). Every test makes its own table, bucket and queue, so tests run in parallel.

use licensewatch_core::ports::store::traits::*;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use licensewatch_core::adapters::aws::dynamo::{DynamoStore, create_table};
use licensewatch_core::adapters::aws::s3::{S3Archive, S3Objects};
use licensewatch_core::adapters::aws::sqs::SqsQueue;
use licensewatch_core::adapters::aws::{create_bucket, create_queue, emulator_config};
use licensewatch_core::domain::license_event::LicenseEvent;
use licensewatch_core::domain::snapshot::{SkuSnap, Snapshot};
use licensewatch_core::ports::archive::AuditArchive;
use licensewatch_core::ports::store::{
    Admitted, Alert, AuditState, Claim, Gap, HistoryEntry, LedgerEntry, LedgerStatus,
    RemediationQueue, RemediationRecord, RemediationRequest, RemediationStore, RunRecord, Ticket,
};

const TENANT: &str = "48a80680-7326-48cd-9935-b556b81d3a4e";

fn moto_url() -> String {
    std::env::var("LICENSEWATCH_TEST_MOTO_URL").expect(
        "LICENSEWATCH_TEST_MOTO_URL is not set: run the tests with ./scripts/test.sh, which installs and starts moto",
    )
}

struct Aws {
    conf: aws_config::SdkConfig,
    table: String,
    bucket: String,
    queue_url: String,
}

async fn aws() -> Aws {
    let conf = emulator_config(&moto_url()).await;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let table = format!("lw-{id}");
    let bucket = format!("lw-{id}");
    create_table(&conf, &table).await.expect("create table");
    create_bucket(&conf, &bucket).await.expect("bucket");
    let queue_url = create_queue(&conf, &format!("lw-{id}"))
        .await
        .expect("queue");
    Aws {
        conf,
        table,
        bucket,
        queue_url,
    }
}

impl Aws {
    fn store(&self, with_sqs: bool) -> DynamoStore {
        let objects = S3Objects::new(&self.conf, &self.bucket, "state");
        let queue = with_sqs.then(|| {
            std::sync::Arc::new(SqsQueue::new(&self.conf, &self.queue_url))
                as std::sync::Arc<dyn licensewatch_core::ports::queue::MessageQueue>
        });
        DynamoStore::new(&self.conf, &self.table, objects, queue, TENANT)
    }
}

fn at(h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, h, 0, 0)
        .single()
        .expect("time")
}

fn record(id: &str, ticket: Option<&str>, now: DateTime<Utc>) -> RemediationRecord {
    RemediationRecord {
        request: RemediationRequest {
            remediation_id: id.into(),
            tenant_id: TENANT.into(),
            user: "adele@contoso.example".into(),
            action: licensewatch_core::domain::kinds::RemediationAction::Reprocess,
            sku_ids: vec![],
            reason: "test".into(),
            requested_at: now,
            disabled_plans: BTreeMap::new(),
            template_user: None,
            ticket: ticket.map(|t| Ticket {
                system: "servicenow".into(),
                id: t.into(),
                callback_url: None,
            }),
        },
        ticket_key: ticket.map(|t| format!("servicenow|{t}|reprocess")),
        body_hash: "h".into(),
        status: licensewatch_core::domain::kinds::RemediationStatus::Queued,
        detail: serde_json::json!({}),
        created_at: now,
        updated_at: now,
    }
}

#[tokio::test]
async fn a_replayed_webhook_id_is_admitted_once_even_when_deliveries_race() {
    let aws = aws().await;
    let store = Arc::new(aws.store(false));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = record(&format!("r{i}"), None, at(9));
            // A lost transaction race is retryable; the caller (the webhook endpoint) answers 503 and the sender
            // retries, so do the same here.
            loop {
                match store.admit(Some("msg_1"), &rec, 50).await {
                    Err(e) if e.to_string().contains("race") || e.to_string().contains("busy") => {
                        continue;
                    }
                    other => return other,
                }
            }
        }));
    }
    let mut new = Vec::new();
    let mut replays = Vec::new();
    for t in tasks {
        match t.await.expect("join").expect("admit") {
            Admitted::New => new.push(()),
            Admitted::ReplayedWebhook(id) => replays.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        new.len(),
        1,
        "exactly one delivery is admitted (replays: {replays:?})"
    );
    assert_eq!(replays.len(), 7);
    let first = &replays[0];
    assert!(
        replays.iter().all(|r| r == first),
        "all replays name the admitted remediation"
    );
    assert!(store.remediation(first).await.expect("read").is_some());
}

#[tokio::test]
async fn the_hourly_budget_holds_under_concurrent_admissions() {
    let aws = aws().await;
    let store = Arc::new(aws.store(false));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let rec = record(&format!("b{i}"), None, at(10));
            loop {
                match store.admit(Some(&format!("msg_b{i}")), &rec, 3).await {
                    Err(e) if e.to_string().contains("race") || e.to_string().contains("busy") => {
                        continue;
                    }
                    other => return other,
                }
            }
        }));
    }
    let mut new = 0;
    let mut over = 0;
    for t in tasks {
        match t.await.expect("join").expect("admit") {
            Admitted::New => new += 1,
            Admitted::OverBudget => over += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((new, over), (3, 7));
    // The next hour has a fresh budget.
    let rec = record("next-hour", None, at(11));
    assert_eq!(
        store.admit(Some("msg_next"), &rec, 3).await.expect("admit"),
        Admitted::New
    );
}

#[tokio::test]
async fn the_same_ticket_within_a_day_returns_the_first_remediation() {
    let aws = aws().await;
    let store = aws.store(false);
    let first = record("t1", Some("INC001"), at(8));
    assert_eq!(
        store.admit(Some("w1"), &first, 50).await.expect("admit"),
        Admitted::New
    );
    let second = record("t2", Some("INC001"), at(12));
    match store.admit(Some("w2"), &second, 50).await.expect("admit") {
        Admitted::SameTicket(r) => assert_eq!(r.request.remediation_id, "t1"),
        other => panic!("expected the first remediation, got {other:?}"),
    }
    assert!(
        store.remediation("t2").await.expect("read").is_none(),
        "nothing of the refused request was written"
    );
    // Two days later the same ticket may ask again.
    let later = record("t3", Some("INC001"), at(8) + Duration::days(2));
    assert_eq!(
        store.admit(Some("w3"), &later, 50).await.expect("admit"),
        Admitted::New
    );

    // claim() (the queue path) follows the same rule.
    let c1 = record("c1", Some("INC002"), at(9));
    assert_eq!(store.claim(&c1).await.expect("claim"), Claim::New);
    match store
        .claim(&record("c2", Some("INC002"), at(9)))
        .await
        .expect("claim")
    {
        Claim::Existing(r) => assert_eq!(r.request.remediation_id, "c1"),
        Claim::New => panic!("a second claim of the ticket was stored"),
    }

    // Status updates and forget.
    store
        .set_status(
            "c1",
            licensewatch_core::domain::kinds::RemediationStatus::Succeeded,
            &serde_json::json!({"ok": true}),
            at(10),
        )
        .await
        .expect("status");
    let r = store
        .remediation("c1")
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((r.status.as_str(), r.updated_at), ("succeeded", at(10)));
    store.forget("c1").await.expect("forget");
    assert!(store.remediation("c1").await.expect("read").is_none());
    assert_eq!(
        store
            .claim(&record("c3", Some("INC002"), at(9)))
            .await
            .expect("claim"),
        Claim::New,
        "a forgotten remediation frees its ticket"
    );
}

fn ledger(key: &str, status: LedgerStatus) -> LedgerEntry {
    LedgerEntry {
        key: key.into(),
        tenant_id: TENANT.into(),
        case_id: "case-1".into(),
        user_principal_name: "adele@contoso.example".into(),
        audience: licensewatch_core::ports::channel::Audience::Admin,
        kind: licensewatch_core::domain::kinds::NoticeKind::Threshold,
        threshold_days: Some(7),
        deadline: Some(at(9)),
        channel: "mail".into(),
        recipient: "admin@contoso.example".into(),
        status,
        updated_at: at(9),
        claimed_by: None,
        reference: None,
    }
}

#[tokio::test]
async fn a_sent_notice_never_goes_back_to_intended() {
    let aws = aws().await;
    let store = aws.store(false);
    store
        .ledger_put(&[
            ledger("k1", LedgerStatus::Intended),
            ledger("k2", LedgerStatus::Intended),
        ])
        .await
        .expect("intend");
    store
        .ledger_put(&[ledger("k1", LedgerStatus::Sent)])
        .await
        .expect("sent");
    // A slow older run writes its intention again: k1 must stay sent.
    store
        .ledger_put(&[ledger("k1", LedgerStatus::Intended)])
        .await
        .expect("late");
    let status = store
        .ledger_status(&["k1".into(), "k2".into(), "k3".into()])
        .await
        .expect("status");
    assert_eq!(status.get("k1"), Some(&LedgerStatus::Sent));
    assert_eq!(status.get("k2"), Some(&LedgerStatus::Intended));
    assert!(!status.contains_key("k3"));
    let notified = store.notified_cases(TENANT).await.expect("notified");
    assert!(notified.contains("case-1"));
}

#[tokio::test]
async fn cursors_only_move_forward_and_the_dedupe_index_remembers() {
    let aws = aws().await;
    let store = aws.store(false);
    assert_eq!(store.cursor("directory_audit").await.expect("read"), None);
    store
        .set_cursor("directory_audit", at(10))
        .await
        .expect("set");
    store
        .set_cursor("directory_audit", at(8))
        .await
        .expect("older run");
    assert_eq!(
        store.cursor("directory_audit").await.expect("read"),
        Some(at(10))
    );
    store
        .set_cursor("directory_audit", at(11))
        .await
        .expect("newer");
    assert_eq!(
        store.cursor("directory_audit").await.expect("read"),
        Some(at(11))
    );

    let ids: Vec<String> = (0..230).map(|i| format!("rec-{i}")).collect();
    store.mark_records(&ids[..150], at(9)).await.expect("mark");
    let seen = store.seen_records(&ids).await.expect("seen");
    assert_eq!(seen.len(), 150);
    assert!(seen.contains("rec-0") && seen.contains("rec-149") && !seen.contains("rec-150"));

    assert!(!store.blob_done("blob-1").await.expect("blob"));
    store.mark_blob("blob-1", at(9)).await.expect("mark blob");
    assert!(store.blob_done("blob-1").await.expect("blob"));

    let gap = Gap {
        source: "management_api:Audit.AzureActiveDirectory".into(),
        from: at(1),
        to: at(2),
    };
    store.record_gap(&gap).await.expect("gap");
    store.record_gap(&gap).await.expect("gap again");
    assert_eq!(store.gaps().await.expect("gaps"), vec![gap]);
}

fn event(id: &str, at: DateTime<Utc>) -> LicenseEvent {
    LicenseEvent {
        at,
        actor: Some("admin@contoso.example".into()),
        user_id: Some("u1".into()),
        user_principal_name: Some("Adele@contoso.example".into()),
        added_sku_ids: vec!["sku-a".into()],
        removed_sku_ids: vec![],
        result: "success".into(),
        reason: None,
        source: "directory_audit".into(),
        record_ids: vec![id.into()],
        correlation_id: None,
    }
}

#[tokio::test]
async fn licence_events_are_stored_once_and_history_is_found_by_upn() {
    let aws = aws().await;
    let store = aws.store(false);
    let n = store
        .put_license_events(TENANT, &[event("e2", at(10)), event("e1", at(9))])
        .await
        .expect("put");
    assert_eq!(n, 2);
    let again = store
        .put_license_events(TENANT, &[event("e1", at(9)), event("e3", at(11))])
        .await
        .expect("put again");
    assert_eq!(again, 1, "an event already stored is skipped");
    let all = store.license_events(TENANT, None).await.expect("events");
    let ids: Vec<&str> = all.iter().map(|e| e.record_ids[0].as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"], "oldest first");
    assert_eq!(
        store
            .license_events(TENANT, Some("adele@CONTOSO.example"))
            .await
            .expect("by upn")
            .len(),
        3
    );
    assert!(
        store
            .license_events(TENANT, Some("u2"))
            .await
            .expect("other")
            .is_empty()
    );

    let entries: Vec<HistoryEntry> = [("sku-a", "added", 8), ("sku-a", "removed", 10)]
        .iter()
        .map(|(sku, change, h)| HistoryEntry {
            user_id: "u1".into(),
            user_principal_name: "Adele@contoso.example".into(),
            sku_id: (*sku).into(),
            change: (*change).into(),
            at: at(*h),
            baseline: false,
            since: Some(at(*h - 1)),
        })
        .collect();
    store
        .append_history(TENANT, &entries)
        .await
        .expect("history");
    // A rerun of the same run (it died before its snapshot) stores nothing new.
    store
        .append_history(TENANT, &entries)
        .await
        .expect("history again");
    let by_upn = store
        .history(TENANT, "adele@contoso.example")
        .await
        .expect("by upn");
    let by_id = store.history(TENANT, "u1").await.expect("by id");
    assert_eq!(by_upn, entries);
    assert_eq!(by_id, entries);
}

fn snapshot(taken_at: DateTime<Utc>, consumed: i64) -> Snapshot {
    Snapshot {
        tenant_id: TENANT.into(),
        taken_at,
        users: Default::default(),
        skus: vec![SkuSnap {
            sku_id: "sku-a".into(),
            part_number: "SPE_E3".into(),
            enabled: 10,
            consumed,
            warning: 0,
            suspended: 0,
            plans: vec![],
        }],
        delta_link: None,
        full_scan_at: None,
        recent_removals: vec![],
    }
}

fn part(id: &str, correlation: &str) -> licensewatch_core::domain::license_event::LicenseRecord {
    licensewatch_core::domain::license_event::LicenseRecord {
        id: id.into(),
        correlation: correlation.into(),
        at: at(5),
        actor: Some("admin@contoso.example".into()),
        user_id: Some("u1".into()),
        upn: None,
        old: None,
        new: None,
        failed: false,
        reason: None,
        source: "management_api".into(),
        chunk: None,
    }
}

#[tokio::test]
async fn licence_parts_stay_pending_until_settled_and_a_completed_event_replaces_the_partial_one() {
    let aws = aws().await;
    let store = aws.store(false);
    store
        .put_license_parts(TENANT, &[part("cul", "corr-1")])
        .await
        .expect("parts");
    let pending = store.pending_license_parts(TENANT).await.expect("pending");
    assert_eq!(pending.changes.len(), 1);
    assert_eq!(pending.records, vec![part("cul", "corr-1")]);
    // The other half arrives (another run) before the first merge settles: it makes the change pending again, so
    // settling with the old marker leaves it for the next merge.
    store
        .put_license_parts(TENANT, &[part("uu", "corr-1")])
        .await
        .expect("parts");
    store
        .settle_license_parts(TENANT, &pending.changes)
        .await
        .expect("settle");
    let again = store.pending_license_parts(TENANT).await.expect("pending");
    assert_eq!(again.changes.len(), 1, "made pending by the later part");
    let mut ids: Vec<&str> = again.records.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["cul", "uu"]);
    store
        .settle_license_parts(TENANT, &again.changes)
        .await
        .expect("settle");
    assert!(
        store
            .pending_license_parts(TENANT)
            .await
            .expect("pending")
            .changes
            .is_empty()
    );
    // One key per change: the completed event replaces the partial one and is not counted as new.
    let mut partial = event("cul", at(5));
    partial.correlation_id = Some("corr-1".into());
    partial.added_sku_ids.clear();
    assert_eq!(
        store
            .put_license_events(TENANT, std::slice::from_ref(&partial))
            .await
            .expect("put"),
        1
    );
    let mut complete = partial.clone();
    complete.record_ids = vec!["cul".into(), "uu".into()];
    complete.added_sku_ids = vec!["sku-a".into()];
    assert_eq!(
        store
            .put_license_events(TENANT, std::slice::from_ref(&complete))
            .await
            .expect("put"),
        0
    );
    let stored = store
        .license_events(TENANT, Some("u1"))
        .await
        .expect("events");
    assert_eq!(stored, vec![complete]);
}

#[tokio::test]
async fn snapshots_and_run_records_live_in_s3_behind_table_pointers() {
    let aws = aws().await;
    let store = aws.store(false);
    assert!(store.previous_run(TENANT).await.expect("none").is_none());
    store
        .save_snapshot(&snapshot(at(8), 3))
        .await
        .expect("save");
    store
        .save_snapshot(&snapshot(at(9), 4))
        .await
        .expect("save");
    let prev = store
        .previous_run(TENANT)
        .await
        .expect("read")
        .expect("some");
    assert_eq!(prev.taken_at, at(9), "the newest snapshot");
    for h in [8, 9, 10] {
        store
            .save_run(&RunRecord {
                tenant_id: TENANT.into(),
                run_at: at(h),
                users_scanned: h as usize,
                licensed_users: 1,
                skus: snapshot(at(h), 3).skus,
                findings: vec![],
                group_seats: vec![],
            })
            .await
            .expect("run");
    }
    let runs = store.runs(TENANT, 2).await.expect("runs");
    let times: Vec<_> = runs.iter().map(|r| r.run_at).collect();
    assert_eq!(times, [at(9), at(10)], "the newest two, oldest first");
    let keys = S3Objects::new(&aws.conf, &aws.bucket, "state")
        .list("snapshots/")
        .await
        .expect("list");
    assert_eq!(keys.len(), 2);
}

#[tokio::test]
async fn alerts_open_once_per_occurrence_and_close_when_the_condition_ends() {
    let aws = aws().await;
    let store = aws.store(false);
    let alert = |id: &str, cond: &str, h: u32| Alert {
        alert_id: id.into(),
        condition: cond.into(),
        kind: licensewatch_core::domain::kinds::AlertKind::SkuExhausted,
        summary: "E3 has no seats".into(),
        raised_at: at(h),
    };
    let open = store
        .sync_alerts(TENANT, &[alert("a1", "sku_exhausted:e3", 8)])
        .await
        .expect("sync");
    assert_eq!(open.len(), 1);
    // Still holds: the same occurrence, even if the caller proposes a new id.
    let open = store
        .sync_alerts(TENANT, &[alert("a2", "sku_exhausted:e3", 9)])
        .await
        .expect("sync");
    assert_eq!(
        open.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(),
        ["a1"]
    );
    let open = store.sync_alerts(TENANT, &[]).await.expect("sync");
    assert!(open.is_empty(), "closed when the condition ends");
    store
        .raise_alert(TENANT, &alert("gap-1", "audit_gap:x", 10))
        .await
        .expect("raise");
    store
        .raise_alert(TENANT, &alert("gap-1", "audit_gap:x", 10))
        .await
        .expect("raise twice");
    let recent = store.recent_alerts(TENANT, at(9)).await.expect("recent");
    assert_eq!(
        recent
            .iter()
            .map(|a| a.alert_id.as_str())
            .collect::<Vec<_>>(),
        ["gap-1"]
    );
}

#[tokio::test]
async fn the_s3_archive_never_overwrites_an_object_even_under_racing_writers() {
    let aws = aws().await;
    let archive = Arc::new(S3Archive::new(S3Objects::new(
        &aws.conf,
        &aws.bucket,
        "audit",
    )));
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let archive = archive.clone();
        tasks.push(tokio::spawn(async move {
            archive
                .put_new("directory_audit/2026/11/21/a.ndjson.gz", vec![i; 16])
                .await
        }));
    }
    let mut wrote = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.expect("join").expect("put") {
            wrote.push(i as u8);
        }
    }
    assert_eq!(wrote.len(), 1, "exactly one writer wins");
    let body = archive
        .get("directory_audit/2026/11/21/a.ndjson.gz")
        .await
        .expect("get");
    assert_eq!(body, vec![wrote[0]; 16], "the winner's bytes are kept");
    assert!(
        archive
            .put_new("directory_audit/2026/11/21/b.ndjson.gz", vec![1])
            .await
            .expect("b")
    );
    let keys = archive.keys("directory_audit/").await.expect("keys");
    assert_eq!(
        keys,
        [
            "directory_audit/2026/11/21/a.ndjson.gz",
            "directory_audit/2026/11/21/b.ndjson.gz"
        ]
    );
    assert!(archive.get("nope").await.is_err());
}

#[tokio::test]
async fn remediation_requests_go_to_sqs_when_a_queue_is_configured() {
    let aws = aws().await;
    let store = aws.store(true);
    let req = record("q1", None, at(9)).request;
    store.enqueue(&req).await.expect("enqueue");
    assert!(
        store.pending(TENANT).await.expect("pending").is_empty(),
        "SQS delivers, nothing waits locally"
    );
    let queue = SqsQueue::new(&aws.conf, &aws.queue_url);
    let msgs = queue.receive(1).await.expect("receive");
    assert_eq!(msgs.len(), 1);
    let got: RemediationRequest = serde_json::from_str(&msgs[0].1).expect("json");
    assert_eq!(got, req);
    queue.delete(&msgs[0].0).await.expect("delete");

    // SQS cannot be asked what it holds: the remediation item records the queueing, and a status set later keeps it.
    let admitted = record("q2", None, at(9));
    store.admit(None, &admitted, 10).await.expect("admit");
    assert!(
        !store.is_queued("q2").await.expect("read"),
        "admitted, not queued"
    );
    let queued = record("q3", None, at(9));
    store
        .admit_and_queue(None, &queued, 10)
        .await
        .expect("admit");
    assert!(store.is_queued("q3").await.expect("read"));
    let done = licensewatch_core::domain::kinds::RemediationStatus::Succeeded;
    store
        .set_status("q3", done, &serde_json::Value::Null, at(10))
        .await
        .expect("status");
    assert!(store.is_queued("q3").await.expect("read"));
    assert_eq!(
        queue.receive(10).await.expect("receive").len(),
        1,
        "q3 only"
    );

    // Without SQS the table holds the queue.
    let local = aws.store(false);
    local.enqueue(&req).await.expect("enqueue");
    local.enqueue(&req).await.expect("enqueue twice");
    assert_eq!(
        local.pending(TENANT).await.expect("pending"),
        vec![req.clone()]
    );
    local.ack("q1").await.expect("ack");
    assert!(local.pending(TENANT).await.expect("pending").is_empty());
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error_that_names_the_operation() {
    let aws = aws().await;
    let objects = S3Objects::new(&aws.conf, &aws.bucket, "state");
    let store = DynamoStore::new(&aws.conf, "no-such-table", objects, None, TENANT);
    let err = store.cursor("x").await.expect_err("no table");
    let text = err.to_string();
    assert!(text.contains("GetItem"), "{text}");
    let core: licensewatch_core::error::CoreError = err.into();
    assert!(!core.is_retryable(), "retrying cannot create the table");
}

#[tokio::test]
async fn credentials_come_from_secrets_manager_and_never_leak() {
    use licensewatch_core::adapters::credentials::Microsoft;
    use licensewatch_core::config::Settings;
    use licensewatch_core::domain::retry::RetryPolicy;
    let conf = emulator_config(&moto_url()).await;
    let client = aws_sdk_secretsmanager::Client::new(&conf);
    let name = format!("lw-{}", uuid::Uuid::new_v4().simple());
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(
            serde_json::json!({
                "LICENSEWATCH_TENANT_ID": TENANT,
                "LICENSEWATCH_CLIENT_ID": "0f0f0f0f-1111-2222-3333-444455556666",
                "LICENSEWATCH_CLIENT_SECRET": "s3cr3t-from-the-vault",
            })
            .to_string(),
        )
        .send()
        .await
        .expect("create secret");
    let arn = created.arn().expect("arn").to_string();
    let settings = |arn: &str| {
        let arn = arn.to_string();
        Settings::from_lookup(move |k| (k == "LICENSEWATCH_SECRET_ARN").then(|| arn.clone()))
            .expect("settings")
    };
    let ms = Microsoft::connect_with(&settings(&arn), RetryPolicy::quick(), "", Some(&conf))
        .await
        .expect("connect");
    assert_eq!(ms.tenant_id, TENANT, "the tenant comes from the secret");

    // A secret that is not the expected JSON is named by its variable, and its value never appears.
    let bad = client
        .create_secret()
        .name(format!("{name}-bad"))
        .secret_string("not json s3cr3t-from-the-vault")
        .send()
        .await
        .expect("create");
    let err = Microsoft::connect_with(
        &settings(bad.arn().expect("arn")),
        RetryPolicy::quick(),
        "",
        Some(&conf),
    )
    .await
    .expect_err("not JSON");
    let text = format!("{err} {err:?}");
    assert!(text.contains("LICENSEWATCH_SECRET_ARN"), "{text}");
    assert!(
        !text.contains("s3cr3t"),
        "the secret's value leaked: {text}"
    );

    let missing = Microsoft::connect_with(
        &settings(&format!("{arn}-missing")),
        RetryPolicy::quick(),
        "",
        Some(&conf),
    )
    .await
    .expect_err("no such secret");
    assert!(
        missing.to_string().contains("ResourceNotFound"),
        "{missing}"
    );
}

/// A delayed message (a re-read after a lagging replica) is not delivered before its delay, then is; the queue
/// says how many messages wait.
#[tokio::test]
async fn a_delayed_message_waits_its_delay_and_the_queue_counts_what_waits() {
    use licensewatch_core::ports::queue::MessageQueue;
    let aws = aws().await;
    let queue = SqsQueue::new(&aws.conf, &aws.queue_url);
    queue
        .send_after("{\"later\": true}", std::time::Duration::from_secs(2))
        .await
        .expect("send");
    assert!(
        queue.receive(0).await.expect("receive").is_empty(),
        "not before its delay"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    assert_eq!(queue.waiting().await.expect("count"), Some(1));
    let got = queue.receive(1).await.expect("receive");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "{\"later\": true}");
}

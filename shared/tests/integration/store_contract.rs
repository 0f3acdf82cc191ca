//! The promises every state store keeps, run against SQLite, DynamoDB in moto (`LICENSEWATCH_TEST_MOTO_URL`, started
//! by `scripts/test.sh`) and the in-memory fake the use-case unit tests use: one lease holder at a time, a notice
//! claimed by one run only, every archived record claimed by one object only, with racing callers.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use licensewatch_core::adapters::aws::dynamo::{DynamoStore, create_table};
use licensewatch_core::adapters::aws::s3::S3Objects;
use licensewatch_core::adapters::aws::{create_bucket, emulator_config};
use licensewatch_core::adapters::sqlite::SqliteStore;
use licensewatch_core::domain::kinds::{NoticeKind, RemediationAction, RemediationStatus};
use licensewatch_core::ports::channel::Audience;
use licensewatch_core::ports::store::{
    Backend, HistoryEntry, Lease, LedgerEntry, LedgerStatus, RemediationRequest,
};
use licensewatch_core::ports::testing::MemoryStore;

const TENANT: &str = "48a80680-7326-48cd-9935-b556b81d3a4e";

fn at(m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, m, 0)
        .single()
        .expect("time")
}

/// The stores, fresh: SQLite, DynamoDB in moto and the in-memory fake. Without `LICENSEWATCH_TEST_MOTO_URL` (a
/// quick `cargo test` of the core; `scripts/test.sh` always sets it) DynamoDB is left out, and says so.
async fn stores() -> Vec<(&'static str, Arc<dyn Backend>)> {
    let dir = tempfile::tempdir().expect("tmp");
    let sqlite = SqliteStore::open(&dir.keep().join("state.db")).expect("sqlite");
    let mut all: Vec<(&'static str, Arc<dyn Backend>)> = vec![
        ("sqlite", Arc::new(sqlite)),
        ("memory", Arc::new(MemoryStore::new())),
    ];
    match std::env::var("LICENSEWATCH_TEST_MOTO_URL") {
        Ok(url) => {
            let conf = emulator_config(&url).await;
            let name = format!("lw-{}", uuid::Uuid::new_v4().simple());
            create_table(&conf, &name).await.expect("table");
            create_bucket(&conf, &name).await.expect("bucket");
            let dynamo = DynamoStore::new(
                &conf,
                &name,
                S3Objects::new(&conf, &name, "state"),
                None,
                TENANT,
            );
            all.insert(1, ("dynamodb", Arc::new(dynamo)));
        }
        Err(_) => eprintln!(
            "store contract: DynamoDB left out (LICENSEWATCH_TEST_MOTO_URL is not set; scripts/test.sh sets it)"
        ),
    }
    all
}

#[tokio::test]
async fn one_lease_holder_at_a_time_and_an_expired_lease_is_taken_over() {
    for (name, store) in stores().await {
        let ttl = Duration::minutes(16);
        // Eight runs start at once: exactly one gets the lease.
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .acquire_lease("audit-fetch:t", &format!("run-{i}"), at(0), ttl)
                        .await
                        .expect("lease")
                })
            })
            .collect();
        let mut won = 0;
        for r in racers {
            if r.await.expect("task") == Lease::Acquired {
                won += 1;
            }
        }
        assert_eq!(won, 1, "{name}");
        // Another job or tenant is another lease.
        assert_eq!(
            store
                .acquire_lease("grace-period-notify:t", "other", at(0), ttl)
                .await
                .expect("lease"),
            Lease::Acquired,
            "{name}"
        );
        // Before it expires it is held; after, a new run takes it over; its old holder cannot release it.
        let held = store
            .acquire_lease("audit-fetch:t", "late", at(10), ttl)
            .await
            .expect("lease");
        assert!(
            matches!(held, Lease::Held { until, .. } if until == at(16)),
            "{name}: {held:?}"
        );
        assert_eq!(
            store
                .acquire_lease("audit-fetch:t", "late", at(17), ttl)
                .await
                .expect("lease"),
            Lease::Acquired,
            "{name}"
        );
        for i in 0..8 {
            store
                .release_lease("audit-fetch:t", &format!("run-{i}"))
                .await
                .expect("release");
        }
        assert!(
            matches!(
                store.acquire_lease("audit-fetch:t", "third", at(18), ttl).await.expect("lease"),
                Lease::Held { ref owner, .. } if owner == "late"
            ),
            "{name}"
        );
        store
            .release_lease("audit-fetch:t", "late")
            .await
            .expect("release");
        assert_eq!(
            store
                .acquire_lease("audit-fetch:t", "third", at(18), ttl)
                .await
                .expect("lease"),
            Lease::Acquired,
            "{name}: released"
        );
    }
}

fn notice(key: &str, owner: &str, t: DateTime<Utc>) -> LedgerEntry {
    LedgerEntry {
        key: key.into(),
        tenant_id: TENANT.into(),
        case_id: "case-1".into(),
        user_principal_name: "adele@contoso.example".into(),
        audience: Audience::Admin,
        kind: NoticeKind::Threshold,
        threshold_days: Some(7),
        deadline: Some(at(30)),
        channel: "mail".into(),
        recipient: "it-team@contoso.example".into(),
        status: LedgerStatus::Sending,
        updated_at: t,
        claimed_by: Some(owner.into()),
        reference: None,
    }
}

#[tokio::test]
async fn a_notice_is_claimed_by_one_run_and_a_dead_runs_claim_is_taken_over() {
    for (name, store) in stores().await {
        // Six runs claim the same notices at once (each believing it may): each notice goes to one of them.
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let owner = format!("run-{i}");
                    store
                        .ledger_claim(
                            &[notice("n1", &owner, at(5)), notice("n2", &owner, at(5))],
                            at(0),
                        )
                        .await
                        .expect("claim")
                })
            })
            .collect();
        let mut claims = 0;
        for r in racers {
            claims += r.await.expect("task").len();
        }
        assert_eq!(claims, 2, "{name}: each notice claimed once");
        // A run that took the lease at minute 10 may take over claims made up to then (their run died) ...
        let taken = store
            .ledger_claim(&[notice("n1", "run-new", at(10))], at(10))
            .await
            .expect("claim");
        assert_eq!(taken, vec!["n1".to_string()], "{name}");
        // ... but not a claim made after it (a live run).
        let later = store
            .ledger_claim(&[notice("n1", "run-other", at(11))], at(9))
            .await
            .expect("claim");
        assert!(later.is_empty(), "{name}");
        // A sent notice is never claimed again.
        let mut sent = notice("n1", "run-new", at(10));
        sent.status = LedgerStatus::Sent;
        store.ledger_put(&[sent]).await.expect("sent");
        let again = store
            .ledger_claim(&[notice("n1", "run-x", at(20))], at(20))
            .await
            .expect("claim");
        assert!(again.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn every_record_is_claimed_for_one_archive_object_and_a_dead_objects_claims_are_settled() {
    for (name, store) in stores().await {
        let ids: Vec<String> = (0..120).map(|i| format!("rec-{i:03}")).collect();
        // Four runs claim overlapping batches for different objects at once.
        let racers: Vec<_> = (0..4)
            .map(|k| {
                let store = store.clone();
                let batch: Vec<String> = ids[k * 20..k * 20 + 60].to_vec();
                tokio::spawn(async move {
                    store
                        .claim_records(&format!("obj-{k}"), &batch, at(1))
                        .await
                        .expect("claim")
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for r in racers {
            claimed.extend(r.await.expect("task"));
        }
        claimed.sort();
        let mut unique = claimed.clone();
        unique.dedup();
        assert_eq!(claimed, unique, "{name}: no id claimed twice");
        assert_eq!(
            claimed.len(),
            120,
            "{name}: every id of the batches claimed"
        );
        // Two objects were written and confirmed; two were never written (their runs died).
        store.confirm_object("obj-0", at(2)).await.expect("confirm");
        store.confirm_object("obj-1", at(2)).await.expect("confirm");
        let mut left = store.unconfirmed_objects().await.expect("unconfirmed");
        left.sort();
        assert_eq!(left, vec!["obj-2", "obj-3"], "{name}");
        for k in &left {
            store.release_object(k).await.expect("release");
        }
        assert!(store.unconfirmed_objects().await.expect("none").is_empty());
        // Confirmed ids are archived; released ones can be claimed again, once.
        let seen = store.seen_records(&ids).await.expect("seen");
        let again = store
            .claim_records("obj-retry", &ids, at(3))
            .await
            .expect("claim");
        assert_eq!(seen.len() + again.len(), 120, "{name}");
        assert!(
            again.iter().all(|id| !seen.contains(id)),
            "{name}: an archived id is never claimed again"
        );
        assert!(
            store
                .claim_records("obj-retry-2", &ids, at(3))
                .await
                .expect("claim")
                .is_empty(),
            "{name}"
        );
    }
}

fn remediation(id: &str, t: DateTime<Utc>) -> licensewatch_core::ports::store::RemediationRecord {
    licensewatch_core::ports::store::RemediationRecord {
        request: licensewatch_core::ports::store::RemediationRequest {
            remediation_id: id.into(),
            tenant_id: TENANT.into(),
            user: "adele@contoso.example".into(),
            action: RemediationAction::Reprocess,
            sku_ids: vec![],
            reason: "test".into(),
            requested_at: t,
            disabled_plans: Default::default(),
            template_user: None,
            ticket: None,
        },
        ticket_key: None,
        body_hash: "h".into(),
        status: RemediationStatus::Queued,
        detail: serde_json::Value::Null,
        created_at: t,
        updated_at: t,
    }
}

#[tokio::test]
async fn the_action_budget_is_a_rolling_sixty_minutes() {
    use licensewatch_core::ports::store::Admitted;
    for (name, store) in stores().await {
        let t = |m: i64| at(0) + Duration::minutes(m);
        // Two actions at 09:59 spend a budget of two.
        for i in 0..2 {
            let r = store
                .admit(None, &remediation(&format!("a{i}"), t(59)), 2)
                .await
                .expect("admit");
            assert_eq!(r, Admitted::New, "{name}");
        }
        // 10:01: a new calendar hour, the same rolling hour.
        assert_eq!(
            store
                .admit(None, &remediation("b", t(61)), 2)
                .await
                .expect("admit"),
            Admitted::OverBudget,
            "{name}"
        );
        // 11:00: sixty minutes after them.
        assert_eq!(
            store
                .admit(None, &remediation("c", t(120)), 2)
                .await
                .expect("admit"),
            Admitted::New,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_burst_of_concurrent_admissions_keeps_replay_and_budget_rules_and_each_one_is_durable() {
    use licensewatch_core::ports::store::Admitted;
    for (name, store) in stores().await {
        // 60 deliveries at once: 40 distinct webhooks (of which the budget admits 25) and 20 replays of one of them.
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = if i < 40 {
                        format!("burst-{i}")
                    } else {
                        "burst-7".to_string()
                    };
                    let rec = remediation(&format!("burst-r{i}"), at(5));
                    loop {
                        match store.admit(Some(&key), &rec, 25).await {
                            Err(e)
                                if e.to_string().contains("race")
                                    || e.to_string().contains("busy") =>
                            {
                                continue;
                            }
                            other => return (i, other.expect("admit")),
                        }
                    }
                })
            })
            .collect();
        let mut new = Vec::new();
        let mut replays = 0;
        let mut over = 0;
        for t in tasks {
            match t.await.expect("join") {
                (i, Admitted::New) => new.push(i),
                (_, Admitted::ReplayedWebhook(_)) => replays += 1,
                (_, Admitted::OverBudget) => over += 1,
                (_, other) => panic!("{name}: unexpected {other:?}"),
            }
        }
        assert_eq!(new.len(), 25, "{name}: the budget admits exactly 25");
        assert!(
            new.iter().filter(|i| **i == 7 || **i >= 40).count() <= 1,
            "{name}: webhook burst-7 admitted at most once"
        );
        assert_eq!(new.len() + replays + over, 60, "{name}");
        for i in new {
            assert!(
                store
                    .remediation(&format!("burst-r{i}"))
                    .await
                    .expect("read")
                    .is_some(),
                "{name}: an admitted request is stored when its answer comes"
            );
        }
    }
}

#[tokio::test]
async fn an_admitted_request_is_queued_once() {
    use licensewatch_core::ports::store::Admitted;
    for (name, store) in stores().await {
        let rec = remediation("queued-1", at(5));
        let queued = || async { store.pending(TENANT).await.expect("queue") };
        let admitted = store.admit_and_queue(Some("msg-q1"), &rec, 5).await;
        assert_eq!(admitted.expect("admit"), Admitted::New, "{name}");
        let ids = |q: Vec<RemediationRequest>| {
            q.into_iter().map(|r| r.remediation_id).collect::<Vec<_>>()
        };
        assert_eq!(ids(queued().await), ["queued-1"], "{name}");
        let replay = remediation("queued-2", at(6));
        let again = store.admit_and_queue(Some("msg-q1"), &replay, 5).await;
        assert_eq!(
            again.expect("admit"),
            Admitted::ReplayedWebhook("queued-1".into()),
            "{name}"
        );
        assert_eq!(
            ids(queued().await),
            ["queued-1"],
            "{name}: a replay queues nothing"
        );
        assert!(store.is_queued("queued-1").await.expect("read"), "{name}");
        // Admitted by a process that died before queueing it: the store says so.
        let lost = remediation("lost-1", at(7));
        let admitted = store.admit(Some("msg-q2"), &lost, 5).await;
        assert_eq!(admitted.expect("admit"), Admitted::New, "{name}");
        assert!(!store.is_queued("lost-1").await.expect("read"), "{name}");
        store.enqueue(&lost.request).await.expect("queue");
        store.mark_queued("lost-1").await.expect("mark");
        assert!(store.is_queued("lost-1").await.expect("read"), "{name}");
    }
}

#[tokio::test]
async fn a_sqlite_admission_whose_request_cannot_be_queued_spends_and_remembers_nothing() {
    use licensewatch_core::ports::store::Admitted;
    use licensewatch_core::ports::store::traits::*;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).expect("sqlite");
    // The queue refuses every write (as a full disk or a damaged table would), through another connection.
    let other = rusqlite::Connection::open(&path).expect("open");
    other
        .execute_batch(
            "CREATE TRIGGER queue_down BEFORE INSERT ON remediation_queue \
             BEGIN SELECT RAISE(ABORT, 'queue down'); END;",
        )
        .expect("trigger");
    let failed = store
        .admit_and_queue(Some("msg-1"), &remediation("first", at(5)), 1)
        .await;
    assert!(failed.is_err(), "{failed:?}");
    other
        .execute_batch("DROP TRIGGER queue_down")
        .expect("drop");
    // Nothing of the failed admission stands: no record, the webhook id unseen, the budget of one unspent.
    assert_eq!(store.remediation("first").await.expect("read"), None);
    let retry = store
        .admit_and_queue(Some("msg-1"), &remediation("retry", at(6)), 1)
        .await;
    assert_eq!(retry.expect("admit"), Admitted::New);
    let queued = store.pending(TENANT).await.expect("queue");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].remediation_id, "retry");
}

#[tokio::test]
async fn a_database_from_before_the_per_minute_budget_keeps_its_last_hour_of_actions() {
    use licensewatch_core::ports::store::{Admitted, RemediationStore};
    // A database as the earlier schema left it: actions in the log, and the unused `action_budget` table of that
    // version (other columns than the per-minute counts).
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("old.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch(
            "CREATE TABLE action_log (tenant_id TEXT NOT NULL, remediation_id TEXT NOT NULL, at TEXT NOT NULL,
                PRIMARY KEY (tenant_id, remediation_id));
             CREATE TABLE action_budget (tenant_id TEXT NOT NULL, bucket TEXT NOT NULL, n INTEGER NOT NULL,
                PRIMARY KEY (tenant_id, bucket));",
        )
        .expect("old schema");
        for i in 0..2 {
            c.execute(
                "INSERT INTO action_log VALUES (?1, ?2, ?3)",
                rusqlite::params![TENANT, format!("old{i}"), "2026-11-20T09:30:00.000Z"],
            )
            .expect("row");
        }
    }
    let store = SqliteStore::open(&path).expect("the old database opens");
    let at = |h: u32, m: u32| {
        Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0)
            .single()
            .expect("time")
    };
    assert_eq!(
        store
            .admit(None, &remediation("new", at(10, 0)), 2)
            .await
            .expect("admit"),
        Admitted::OverBudget,
        "the two actions of 09:30 still count at 10:00"
    );
    assert_eq!(
        store
            .admit(None, &remediation("later", at(10, 31)), 2)
            .await
            .expect("admit"),
        Admitted::New
    );
}

#[tokio::test]
async fn many_users_histories_equal_each_users_own_and_reclamation_reports_are_kept() {
    for (name, store) in stores().await {
        let entry = |user: usize, sku: &str, change: &str, m: u32| HistoryEntry {
            user_id: format!("0000000{user}-0000-4000-8000-000000000000"),
            user_principal_name: format!("user{user}@contoso.com"),
            sku_id: sku.into(),
            change: change.into(),
            at: at(m),
            baseline: m == 0,
            since: (m > 0).then(|| at(m - 1)),
        };
        let entries = vec![
            entry(1, "E3", "added", 0),
            entry(2, "E3", "added", 0),
            entry(1, "E3", "removed", 5),
            entry(1, "E3", "added", 9),
            entry(3, "EMS", "added", 7),
        ];
        store
            .append_history(TENANT, &entries)
            .await
            .expect("append");
        let ids: Vec<String> = [1, 2, 4]
            .iter()
            .map(|u| format!("0000000{u}-0000-4000-8000-000000000000"))
            .collect();
        let many = store.histories(TENANT, &ids).await.expect("histories");
        assert_eq!(many.len(), 2, "{name}: a user without history is absent");
        for id in &ids[..2] {
            assert_eq!(
                many[id],
                store.history(TENANT, id).await.expect("history"),
                "{name}: {id}"
            );
        }
        assert_eq!(many[&ids[0]].len(), 3, "{name}: oldest first, all of them");

        assert!(store.latest_reclaim(TENANT).await.expect("none").is_none());
        for m in [1, 3, 2] {
            let report = licensewatch_core::domain::reclaim::ReclaimReport {
                tenant_id: TENANT.into(),
                generated_at: at(m),
                inactive_days: 90,
                users_read: m as usize,
                activity_source: licensewatch_core::domain::reclaim::ActivitySource::SignIn,
                activity_notes: vec![],
                mailbox_notes: vec!["kept".into()],
                rows: vec![],
                idle_seats: vec![],
                currency: None,
                monthly_total: None,
            };
            store.save_reclaim(&report).await.expect("save");
        }
        let latest = store
            .latest_reclaim(TENANT)
            .await
            .expect("read")
            .expect("some");
        assert_eq!(latest.generated_at, at(3), "{name}: the newest");
    }
}

#[tokio::test]
async fn job_statuses_are_kept_per_tenant_and_job_and_tenants_partition_the_audit_book_keeping() {
    use licensewatch_core::adapters::partition::AuditPartition;
    use licensewatch_core::domain::tenant_status::{Job, JobStatus};
    use licensewatch_core::ports::store::AuditState;
    const OTHER: &str = "Customer002.onmicrosoft.com";
    for (name, store) in stores().await {
        let ok = JobStatus::after(None, Job::AuditFetch, at(1), Ok(()));
        let failing = JobStatus::after(
            Some(&ok),
            Job::AuditFetch,
            at(2),
            Err(("AADSTS7000229", true)),
        );
        let check = JobStatus::after(None, Job::LicenseCheck, at(3), Ok(()));
        store.put_job_status(TENANT, &ok).await.expect("put");
        store.put_job_status(TENANT, &check).await.expect("put");
        store.put_job_status(OTHER, &failing).await.expect("put");
        store
            .put_job_status(TENANT, &failing)
            .await
            .expect("replace");
        let mut own = store.job_statuses(TENANT).await.expect("statuses");
        own.sort_by_key(|s| s.job.as_str());
        assert_eq!(own, vec![failing.clone(), check], "{name}");
        assert_eq!(
            store
                .job_statuses(&OTHER.to_lowercase())
                .await
                .expect("statuses"),
            vec![failing],
            "{name}: tenant ids are matched without case"
        );

        // Two tenants' audit-fetch in one store: the same record ids and object keys, apart.
        let home = AuditPartition::home(store.clone());
        let other = AuditPartition::tenant(store.clone(), OTHER);
        let ids: Vec<String> = (0..5).map(|i| format!("rec-{i}")).collect();
        for state in [&home as &dyn AuditState, &other] {
            let mut claimed = state
                .claim_records("directory_audit/2026/11/21/a.ndjson.gz", &ids, at(4))
                .await
                .expect("claim");
            claimed.sort();
            assert_eq!(claimed, ids, "{name}");
            state
                .set_cursor("directory_audits", at(4))
                .await
                .expect("cursor");
        }
        other
            .confirm_object("directory_audit/2026/11/21/a.ndjson.gz", at(5))
            .await
            .expect("confirm");
        assert_eq!(
            home.unconfirmed_objects().await.expect("home"),
            vec!["directory_audit/2026/11/21/a.ndjson.gz"],
            "{name}: the home tenant's object is still its own to settle"
        );
        assert!(other.unconfirmed_objects().await.expect("other").is_empty());
        assert_eq!(other.seen_records(&ids).await.expect("seen").len(), 5);
        assert_eq!(
            home.cursor("directory_audits").await.expect("cursor"),
            Some(at(4)),
            "{name}"
        );
        assert!(
            store
                .cursor(&format!("tenant:{}/directory_audits", OTHER.to_lowercase()))
                .await
                .expect("cursor")
                .is_some(),
            "{name}: the other tenant's cursor is its own"
        );
    }
}

/// A snapshot of `n` users, each holding E3 and, every other one, EMS with a plan off and a group error.
fn snapshot(taken_at: DateTime<Utc>, n: usize) -> licensewatch_core::domain::snapshot::Snapshot {
    use licensewatch_core::domain::assignment::{AssignmentError, AssignmentState};
    use licensewatch_core::domain::snapshot::{
        AssignmentSnap, LicenseSnap, Snapshot, UserNames, UserSnapshot,
    };
    let users = (0..n)
        .map(|i| {
            let mut licenses = vec![LicenseSnap {
                sku_id: "e3".into(),
                disabled_plans: vec![],
            }];
            let mut states = vec![];
            if i % 2 == 1 {
                licenses.push(LicenseSnap {
                    sku_id: "ems".into(),
                    disabled_plans: vec!["plan".into()],
                });
                states.push(AssignmentSnap {
                    sku_id: "ems".into(),
                    group: Some("group".into()),
                    state: AssignmentState::Error,
                    error: Some(AssignmentError::CountViolation),
                });
            }
            let upn = format!("user{i}@contoso.com");
            UserSnapshot {
                names: UserNames::new(
                    &format!("{i:08}-0000-4000-8000-000000000000"),
                    &upn,
                    Some(&format!("User {i}")),
                    Some(&upn),
                ),
                mailbox: true,
                exchange_enabled: i % 3 != 0,
                created: Some(at(0)),
                licenses,
                states,
                ..UserSnapshot::bare("", "")
            }
        })
        .collect();
    Snapshot {
        tenant_id: TENANT.into(),
        taken_at,
        users,
        skus: vec![],
        delta_link: Some("https://graph.microsoft.com/v1.0/users/delta?$deltatoken=x".into()),
        full_scan_at: Some(taken_at),
        recent_removals: vec![],
    }
}

#[tokio::test]
async fn snapshots_read_back_whole_and_in_part_and_an_earlier_versions_document_is_still_read() {
    use licensewatch_core::domain::snapshot::{PreviousRun, SnapshotMark};
    use licensewatch_core::ports::store::{EncodedSnapshot, RunRecord};
    for (name, store) in stores().await {
        assert!(store.latest_snapshot(TENANT).await.expect("none").is_none());
        assert!(
            store
                .latest_snapshot_mark(TENANT)
                .await
                .expect("none")
                .is_none()
        );
        assert!(!store.has_runs(TENANT).await.expect("runs"), "{name}");
        // Stored by a version before the binary format: gzipped JSON.
        let old = snapshot(at(1), 5);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &serde_json::to_vec(&old).expect("json")).expect("gzip");
        let legacy = EncodedSnapshot {
            tenant_id: TENANT.into(),
            taken_at: old.taken_at,
            bytes: gz.finish().expect("gzip"),
        };
        store.save_encoded_snapshot(&legacy).await.expect("save");
        let read = store.latest_snapshot(TENANT).await.expect("read");
        assert_eq!(read.as_ref(), Some(&old), "{name}: the earlier document");
        let previous = store.previous_run(TENANT).await.expect("read");
        assert_eq!(previous, Some(PreviousRun::from(&old)), "{name}");
        let mark = store.latest_snapshot_mark(TENANT).await.expect("read");
        assert_eq!(mark, Some(SnapshotMark::from(&old)), "{name}");

        let new = snapshot(at(2), 7);
        store.save_snapshot(&new).await.expect("save");
        let read = store.latest_snapshot(TENANT).await.expect("read");
        assert_eq!(read.as_ref(), Some(&new), "{name}: the newest, whole");
        let previous = store.previous_run(TENANT).await.expect("read");
        assert_eq!(previous, Some(PreviousRun::from(&new)), "{name}: in part");
        let mark = store.latest_snapshot_mark(TENANT).await.expect("read");
        assert_eq!(mark, Some(SnapshotMark::from(&new)), "{name}: its header");

        let run = RunRecord {
            tenant_id: TENANT.into(),
            run_at: at(2),
            users_scanned: 7,
            licensed_users: 7,
            skus: vec![],
            findings: vec![],
            group_seats: vec![],
        };
        store.save_run(&run).await.expect("run");
        assert!(store.has_runs(TENANT).await.expect("runs"), "{name}");
        assert!(
            !store.has_runs("another-tenant").await.expect("runs"),
            "{name}"
        );
    }
}

/// A closed SQLite store that wrote much has copied it into the database file: the next run (another process, often
/// an hour later) does not pay for this one's write-ahead log, and the file alone is a whole copy of the state.
#[tokio::test]
async fn a_closed_sqlite_store_leaves_a_large_write_in_the_database_file() {
    use licensewatch_core::ports::store::HistoryStore;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    let store = SqliteStore::open(&path).expect("open");
    // About a first run's baseline history over 100,000 users: some 45 MB of log.
    let entries: Vec<HistoryEntry> = (0..80_000)
        .map(|i| HistoryEntry {
            user_id: format!("00000000-0000-0000-0000-{i:012}"),
            user_principal_name: format!("user{i:06}@contoso.onmicrosoft.com"),
            sku_id: "6fd2c87f-b296-42f0-b197-1e91e994b900".into(),
            change: "added".into(),
            at: at(5),
            baseline: true,
            since: None,
        })
        .collect();
    store
        .append_history(TENANT, &entries)
        .await
        .expect("history");
    drop(store);
    let log = dir.path().join("state.db-wal");
    assert_eq!(
        std::fs::metadata(&log).map_or(0, |m| m.len()),
        0,
        "the write-ahead log is emptied"
    );
    // The database file without its write-ahead log.
    let copy = dir.path().join("copy.db");
    std::fs::copy(&path, &copy).expect("copy");
    let store = SqliteStore::open(&copy).expect("the copy opens");
    let last = "00000000-0000-0000-0000-000000079999";
    assert_eq!(
        store.history(TENANT, last).await.expect("read").len(),
        1,
        "the last entry written is in the file"
    );
}

#[tokio::test]
async fn pending_remediations_are_listed_per_tenant_until_they_settle() {
    use licensewatch_core::ports::store::Claim;
    for (name, store) in stores().await {
        let mut other = remediation("elsewhere", at(1));
        other.request.tenant_id = "11111111-2222-3333-4444-555555555555".into();
        for r in [remediation("p1", at(1)), remediation("p2", at(2)), other] {
            assert!(
                matches!(store.claim(&r).await.expect("claim"), Claim::New),
                "{name}"
            );
            let detail = serde_json::json!({"verify_by": "2026-11-22T09:00:00Z"});
            store
                .set_status(
                    &r.request.remediation_id,
                    RemediationStatus::Pending,
                    &detail,
                    at(3),
                )
                .await
                .expect("pending");
        }
        let ids = |list: Vec<licensewatch_core::ports::store::RemediationRecord>| {
            list.into_iter()
                .map(|r| r.request.remediation_id)
                .collect::<Vec<_>>()
        };
        let pending = store.pending_verification(TENANT).await.expect("list");
        assert_eq!(
            ids(pending.clone()),
            ["p1", "p2"],
            "{name}: oldest first, this tenant's"
        );
        assert_eq!(
            pending[0].detail["verify_by"], "2026-11-22T09:00:00Z",
            "{name}"
        );
        store
            .set_status(
                "p1",
                RemediationStatus::Succeeded,
                &serde_json::json!({}),
                at(4),
            )
            .await
            .expect("settled");
        // Set twice (a retried run): still listed once.
        store
            .set_status(
                "p2",
                RemediationStatus::Pending,
                &serde_json::json!({}),
                at(4),
            )
            .await
            .expect("again");
        let pending = store.pending_verification(TENANT).await.expect("list");
        assert_eq!(ids(pending), ["p2"], "{name}");
    }
}

#[tokio::test]
async fn each_runs_seat_counts_are_read_back_since_a_time_oldest_first() {
    use licensewatch_core::domain::snapshot::SkuSnap;
    use licensewatch_core::ports::store::RunRecord;
    for (name, store) in stores().await {
        for m in [5, 1, 3] {
            let skus: Vec<SkuSnap> = ["e3", "ems"]
                .iter()
                .enumerate()
                .map(|(i, id)| SkuSnap {
                    sku_id: id.to_string(),
                    part_number: id.to_uppercase(),
                    enabled: 100 + i as i64,
                    consumed: i64::from(m) * 10 + i as i64,
                    warning: 0,
                    suspended: 0,
                    plans: vec![],
                })
                .collect();
            store
                .save_run(&RunRecord {
                    tenant_id: TENANT.into(),
                    run_at: at(m),
                    users_scanned: 1,
                    licensed_users: 1,
                    skus,
                    findings: vec![],
                    group_seats: vec![licensewatch_core::domain::forecast::GroupSeats {
                        group_id: "all-staff".into(),
                        sku_id: "e3".into(),
                        assigned: m as i64,
                    }],
                })
                .await
                .expect("run");
        }
        let history = store.seat_history(TENANT, at(2)).await.expect("history");
        let groups: Vec<(DateTime<Utc>, &str, i64)> = history
            .iter()
            .filter_map(|s| Some((s.point.at, s.group_id.as_deref()?, s.point.consumed)))
            .collect();
        assert_eq!(
            groups,
            [(at(3), "all-staff", 3), (at(5), "all-staff", 5)],
            "{name}: each licensing group's seats beside the SKU's"
        );
        let history: Vec<_> = history
            .into_iter()
            .filter(|s| s.group_id.is_none())
            .collect();
        let seen: Vec<(DateTime<Utc>, i64, i64)> = history
            .iter()
            .map(|s| (s.point.at, s.point.enabled, s.point.consumed))
            .collect();
        assert_eq!(
            seen,
            [
                (at(3), 100, 30),
                (at(3), 101, 31),
                (at(5), 100, 50),
                (at(5), 101, 51)
            ],
            "{name}"
        );
        assert_eq!(history[1].sku_id, "ems", "{name}");
        assert!(
            store
                .seat_history("another-tenant", at(0))
                .await
                .expect("none")
                .is_empty(),
            "{name}"
        );
    }
}

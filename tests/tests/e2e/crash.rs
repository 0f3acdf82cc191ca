//! Crash at every write boundary of audit-fetch, then rerun against a source that changed in between (new records
//! that shift the directory's page boundaries, another blob), and read the archive back: nothing lost, nothing
//! archived twice. The crash hook stops the run exactly where a killed process would stop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::error::CoreError;
use licensewatch_core::ports::archive::decode_batch;
use licensewatch_core::usecases::fetch_audit::{AuditReport, AuditStep, fetch_audit};
use serde_json::{Value, json};

use crate::helpers::*;

/// A directory audit that is not licence activity.
fn directory_record(n: usize, at: DateTime<Utc>) -> Value {
    json!({"id": format!("Directory_crash_{n:05}"), "category": "GroupManagement",
        "correlationId": format!("c0000000-0000-4000-8000-{n:012}"), "result": "success",
        "activityDisplayName": "Add member to group",
        "activityDateTime": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "loggedByService": "Core Directory", "operationType": "Assign",
        "initiatedBy": {"user": {"userPrincipalName": upn("it.admin")}, "app": null},
        "targetResources": [{"id": "g1", "type": "Group", "modifiedProperties": []}],
        "additionalDetails": []})
}

fn management_record(n: usize, at: DateTime<Utc>) -> Value {
    json!({"CreationTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
        "Id": format!("c7a50000-0000-4000-8000-{n:012}"), "Operation": "UserLoggedIn", "RecordType": 15,
        "ResultStatus": "Success", "Workload": "AzureActiveDirectory", "UserId": upn("it.admin"),
        "ModifiedProperties": []})
}

async fn inject(env: &TestEnv, directory: Vec<Value>, management: Vec<Value>) {
    assert_eq!(
        env.control(
            "/_sim/audit/records",
            json!({"directory": directory, "management": management}),
        )
        .await,
        201
    );
}

async fn run(
    env: &TestEnv,
    archive: &FileArchive,
    crash: &(dyn Fn(AuditStep) -> Result<(), CoreError> + Sync),
) -> Result<AuditReport, CoreError> {
    let mut deps = env.rt.audit_deps_with(archive);
    deps.crash = crash;
    fetch_audit(&deps, &env.rt.policy).await
}

/// One crash at the `nth` time the run reaches `step`, a changed source, a rerun; returns (lost, duplicated).
async fn crash_then_rerun(step: AuditStep, nth: usize) -> (usize, usize) {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let now = env.now();
    // 1,500 directory records over the last day (two pages of 999), 900 Management API records in three hours.
    let mut expected: HashSet<String> = HashSet::new();
    let directory: Vec<Value> = (0..1_500)
        .map(|n| directory_record(n, now - Duration::minutes(1_440 - n as i64 / 2)))
        .collect();
    let management: Vec<Value> = (0..900)
        .map(|n| management_record(n, now - Duration::minutes(180 - n as i64 / 5)))
        .collect();
    for r in directory.iter().chain(&management) {
        expected.insert(r["id"].as_str().or(r["Id"].as_str()).expect("id").into());
    }
    inject(&env, directory, management).await;
    env.advance(Duration::hours(1)).await;

    let seen = AtomicUsize::new(0);
    let crash = |s: AuditStep| {
        if s == step && seen.fetch_add(1, Ordering::SeqCst) + 1 == nth {
            return Err(CoreError::BadInput(format!("crash at {s:?} #{nth}")));
        }
        Ok(())
    };
    let first = run(&env, &archive, &crash).await;
    let reached = seen.load(Ordering::SeqCst) >= nth;
    assert_eq!(first.is_err(), reached, "{step:?} #{nth}: {first:?}");

    // The source moves on: 400 newer directory records push every page boundary, and a new blob arrives.
    let later = env.now();
    let directory: Vec<Value> = (1_500..1_900)
        .map(|n| directory_record(n, later - Duration::minutes(30)))
        .collect();
    let management: Vec<Value> = (900..1_100)
        .map(|n| management_record(n, later - Duration::minutes(20)))
        .collect();
    for r in directory.iter().chain(&management) {
        expected.insert(r["id"].as_str().or(r["Id"].as_str()).expect("id").into());
    }
    inject(&env, directory, management).await;
    env.advance(Duration::hours(4)).await;
    run(&env, &archive, &|_| Ok(()))
        .await
        .expect("the rerun completes");
    let settled = run(&env, &archive, &|_| Ok(())).await.expect("a third run");
    assert_eq!(settled.records_archived, 0, "{step:?} #{nth}: nothing left");

    let ids = archived(&archive, "").await;
    let lost = expected.iter().filter(|id| !ids.contains_key(*id)).count();
    let duplicated = ids.values().filter(|&&n| n > 1).map(|n| n - 1).sum();
    (lost, duplicated)
}

#[tokio::test]
async fn a_crash_at_any_write_boundary_then_a_changed_source_loses_and_duplicates_nothing() {
    let steps = [
        AuditStep::AfterLicenceParts,
        AuditStep::AfterClaim,
        AuditStep::AfterObject,
        AuditStep::AfterIndex,
        AuditStep::AfterConfirm,
        AuditStep::AfterBlob,
        AuditStep::AfterCursor,
    ];
    let mut failures = Vec::new();
    for step in steps {
        // The first time (a directory page), and a later time (a Management API blob).
        for nth in [1, 3] {
            let (lost, duplicated) = crash_then_rerun(step, nth).await;
            // The figures docs/RELIABILITY.md reports (`cargo test -p e2e crash -- --nocapture`).
            eprintln!("audit-fetch crash at {step:?} #{nth}: {lost} lost, {duplicated} duplicated");
            if lost + duplicated > 0 {
                failures.push(format!(
                    "{step:?} #{nth}: {lost} lost, {duplicated} duplicated"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

mod license_check {
    use super::*;
    use licensewatch_core::usecases::check_licenses::{CheckReport, CheckStep, check_licenses};

    async fn check(
        env: &TestEnv,
        crash: &(dyn Fn(CheckStep) -> Result<(), CoreError> + Sync),
    ) -> Result<CheckReport, CoreError> {
        let mut deps = env.rt.check_deps();
        deps.crash = crash;
        check_licenses(&deps, &env.rt.tenant_run(), &env.rt.policy, &|_| {}).await
    }

    async fn remove_e3(env: &TestEnv, nick: &str) {
        assert_eq!(
            env.control(
                &format!("/_sim/users/{}/licenses", upn(nick)),
                json!({"remove": [E3]}),
            )
            .await,
            200
        );
    }

    /// (duplicated, lost) history entries after a crash at `step` in the first run (`first`) or a later one.
    async fn crash_then_rerun(step: CheckStep, first: bool) -> (usize, usize) {
        let env = TestEnv::spawn().await;
        let crash = |s: CheckStep| {
            if s == step {
                return Err(CoreError::BadInput(format!("crash at {s:?}")));
            }
            Ok(())
        };
        if first {
            assert!(check(&env, &crash).await.is_err());
        } else {
            check(&env, &|_| Ok(())).await.expect("baseline");
            env.advance(Duration::hours(1)).await;
            remove_e3(&env, "joni.sherman").await;
            assert!(check(&env, &crash).await.is_err());
        }
        // The tenant moves on before the rerun.
        env.advance(Duration::hours(1)).await;
        remove_e3(&env, "nestor.wilke").await;
        check(&env, &|_| Ok(())).await.expect("rerun");
        env.advance(Duration::hours(1)).await;
        let quiet = check(&env, &|_| Ok(())).await.expect("third run");
        assert!(
            quiet
                .findings
                .iter()
                .all(|f| !matches!(f.kind().as_str(), "license_removed" | "license_added")),
            "{step:?}: the third run sees no change"
        );
        // What the history must say. joni lost E3 only when the crash was in a later run; nestor lost it before
        // the rerun, which licensewatch saw unless the crashed run was a first run that died before its snapshot
        // (then the rerun is the first run, and nestor never held E3 as far as licensewatch knows).
        let snapshot_saved = !first
            || matches!(
                step,
                CheckStep::AfterSnapshot | CheckStep::AfterHistory | CheckStep::AfterQueue
            );
        let expected = [
            ("joni.sherman", 1, usize::from(!first)),
            (
                "nestor.wilke",
                usize::from(snapshot_saved),
                usize::from(snapshot_saved),
            ),
            ("grady.archie", 1, 0),
        ];
        let mut duplicated = 0;
        let mut lost = 0;
        for (nick, baselines, removals) in expected {
            let h = env
                .rt
                .store
                .history(&env.sim.tenant_id, &upn(nick))
                .await
                .expect("history");
            let e3 = |baseline: bool, change: &str| {
                h.iter()
                    .filter(|e| e.sku_id == E3 && e.baseline == baseline && e.change == change)
                    .count()
            };
            for (got, want) in [
                (e3(true, "added"), baselines),
                (e3(false, "removed"), removals),
            ] {
                duplicated += got.saturating_sub(want);
                lost += want.saturating_sub(got);
            }
        }
        (duplicated, lost)
    }

    #[tokio::test]
    async fn a_crash_at_any_write_boundary_then_a_changed_tenant_keeps_history_exact() {
        let mut failures = Vec::new();
        for step in [
            CheckStep::AfterAlerts,
            CheckStep::AfterCases,
            CheckStep::AfterHistory,
            CheckStep::AfterQueue,
            CheckStep::AfterSnapshot,
        ] {
            for first in [true, false] {
                let (duplicated, lost) = crash_then_rerun(step, first).await;
                eprintln!(
                    "license-check crash at {step:?} (first run: {first}): {lost} lost, {duplicated} duplicated"
                );
                if duplicated + lost > 0 {
                    failures.push(format!(
                        "{step:?} (first run: {first}): {duplicated} duplicated, {lost} lost"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}

#[tokio::test]
async fn two_audit_fetch_and_notify_runs_at_once_on_aws_do_their_work_once() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(notify_policy(), &aws).await;
    let now = env.now();
    let directory: Vec<Value> = (0..1_200)
        .map(|n| directory_record(n, now - Duration::minutes(600 - n as i64 / 2)))
        .collect();
    let expected: HashSet<String> = directory
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect();
    inject(&env, directory, vec![]).await;
    let archive = env.rt.archive.clone();
    let deps = env.rt.audit_deps_with(archive.as_ref());
    let (a, b) = tokio::join!(
        fetch_audit(&deps, &env.rt.policy),
        fetch_audit(&deps, &env.rt.policy)
    );
    let (a, b) = (a.expect("first"), b.expect("second"));
    assert_eq!(
        usize::from(a.skipped.is_some()) + usize::from(b.skipped.is_some()),
        1,
        "one run works, the other says why it did nothing: {a:?} {b:?}"
    );
    let mut ids: HashMap<String, usize> = HashMap::new();
    for key in archive.keys("directory_audit/").await.expect("keys") {
        for r in decode_batch(&archive.get(&key).await.expect("object")).expect("decode") {
            *ids.entry(r["id"].as_str().expect("id").to_string())
                .or_default() += 1;
        }
    }
    assert!(ids.values().all(|&n| n == 1), "a record archived twice");
    assert!(
        expected.iter().all(|id| ids.contains_key(id)),
        "a record lost"
    );
    assert_eq!(a.records_archived + b.records_archived, ids.len());

    // Two grace-period-notify runs at once: every notice once.
    env.check().await;
    let channels = env.mail_channels();
    let (x, y) = tokio::join!(
        env.notify_with(&channels, &|_| Ok(()), false),
        env.notify_with(&channels, &|_| Ok(()), false)
    );
    let (x, y) = (x.expect("first"), y.expect("second"));
    assert!(x.sent.len() + y.sent.len() > 0);
    let mail = env.mail().await;
    let mut seen = HashSet::new();
    for m in &mail {
        let id = m["message"]["internetMessageHeaders"][0]["value"].to_string();
        let to = m["message"]["toRecipients"].to_string();
        assert!(seen.insert((id, to)), "a message sent twice: {m}");
    }
}

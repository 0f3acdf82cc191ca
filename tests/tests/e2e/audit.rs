//! audit-fetch end to end against the simulated tenant: both sources archived exactly once (read back from the
//! archive), late blobs, duplicates, faults, an aborted run, gaps, and licence events used as grace evidence.

use chrono::Duration;
use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::usecases::fetch_audit::{AuditReport, fetch_audit};
use serde_json::json;

use crate::helpers::*;

async fn fetch(
    env: &TestEnv,
    archive: &FileArchive,
) -> Result<AuditReport, licensewatch_core::error::CoreError> {
    fetch_audit(&env.rt.audit_deps_with(archive), &env.rt.policy).await
}

async fn changes(env: &TestEnv, n: usize) {
    for i in 1..=n {
        let who = upn(&format!("teacher{i:02}"));
        env.control(
            &format!("/_sim/users/{who}/licenses"),
            json!({"add": [{"sku_id": E3}]}),
        )
        .await;
        env.advance(Duration::minutes(20)).await;
    }
}

#[tokio::test]
async fn both_sources_are_archived_exactly_once_across_runs_late_blobs_and_duplicates() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let first = fetch(&env, &archive).await.expect("first run");
    assert_eq!(
        first.records_archived, 10,
        "the directory history within 30 days"
    );
    assert!(first.gaps.is_empty());
    changes(&env, 10).await;
    env.advance(Duration::hours(2)).await;
    let second = fetch(&env, &archive).await.expect("second run");
    assert!(second.blobs_fetched > 0);
    // Late blobs appear in a later listing of windows already listed.
    env.advance(Duration::hours(6)).await;
    let third = fetch(&env, &archive).await.expect("third run");
    let fourth = fetch(&env, &archive).await.expect("fourth run");
    assert_eq!(fourth.records_archived, 0, "nothing new");
    assert!(third.records_archived + second.records_archived > 0);
    assert!(
        second.duplicates_skipped + third.duplicates_skipped > 0,
        "overlap and Microsoft's duplicates are dropped"
    );

    let dir_ids = archived(&archive, "directory_audit/").await;
    assert!(
        dir_ids.values().all(|&n| n == 1),
        "each directory record once"
    );
    assert_eq!(
        dir_ids.len(),
        10 + 10 * 2,
        "history + a Change/Update pair per change"
    );
    let mgmt_ids = archived(&archive, "management_api/").await;
    assert!(
        mgmt_ids.values().all(|&n| n == 1),
        "each Management API record once"
    );
    // Every Management API record the sim produced for the ten changes (2 each) is there, late blobs included,
    // + the scenario's history within the Purview audit log's 180 days (five changes, 2 records each: the two of the
    // last week from the Management API too, archived once); its 2024 assignment is older than any source keeps.
    let expected: usize = 10 * 2 + 5 * 2;
    assert_eq!(mgmt_ids.len(), expected);
    // Licence events from both sources: each assignment (its "Change user license" + "Update user" pair) is one
    // event by the simulated admin. teacher03's fails (E3 conflicts with the faculty group's plans): the failure
    // records name no SKU, as real ones do.
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(&upn("teacher03")))
        .await
        .expect("events");
    for source in ["directory_audit", "management_api"] {
        let e = events
            .iter()
            .find(|e| e.source == source)
            .unwrap_or_else(|| panic!("{source}: {events:#?}"));
        assert_eq!(e.record_ids.len(), 2, "{e:?}");
        assert_eq!(e.actor.as_deref(), Some("admin@contoso.onmicrosoft.com"));
        if e.failed() {
            assert!(e.added_sku_ids.is_empty(), "{e:?}");
        } else {
            assert_eq!(e.added_sku_ids, vec![E3.to_string()]);
        }
    }
}

#[tokio::test]
async fn faults_and_an_aborted_run_lose_and_duplicate_nothing() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    changes(&env, 6).await;
    env.advance(Duration::hours(5)).await;
    // Throttling and a server error on the way are retried.
    env.control(
        "/_sim/faults",
        json!({"route": "activity/feed/audit", "kind": "af429", "count": 1}),
    )
    .await;
    env.control(
        "/_sim/faults",
        json!({"route": "subscriptions/content", "kind": "server_error", "count": 1}),
    )
    .await;
    // The run dies midway: every blob download after the first few fails for good.
    env.control(
        "/_sim/faults",
        json!({"route": "activity/feed/audit", "kind": "truncate"}),
    )
    .await;
    assert!(fetch(&env, &archive).await.is_err(), "the run aborts");
    let cleared = reqwest::Client::new()
        .delete(format!("{}/_sim/faults", env.sim.base_url))
        .send()
        .await
        .expect("clear");
    assert_eq!(cleared.status().as_u16(), 204);
    let rerun = fetch(&env, &archive).await.expect("the rerun completes");
    assert!(rerun.blobs_fetched > 0);
    let again = fetch(&env, &archive).await.expect("third");
    assert_eq!(again.records_archived, 0);
    let ids = archived(&archive, "").await;
    assert!(
        ids.values().all(|&n| n == 1),
        "no record twice: {:?}",
        ids.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    let mgmt = archived(&archive, "management_api/").await;
    assert_eq!(
        mgmt.len(),
        6 * 2 + 2 * 2,
        "no record lost (six changes + the two historical ones of the last week; older ones come from the Purview \
         audit log, whose query Microsoft is still running)"
    );
}

#[tokio::test]
async fn an_expired_range_is_reported_as_a_gap() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    fetch(&env, &archive).await.expect("first");
    // Nine days without a run: the Management API keeps seven.
    env.advance(Duration::days(9)).await;
    let r = fetch(&env, &archive).await.expect("catch-up");
    let gap = r
        .gaps
        .iter()
        .find(|g| g.source.starts_with("management_api"))
        .expect("a gap");
    assert!(gap.to - gap.from >= Duration::days(1), "{gap:?}");
    assert!(gap.to <= env.now() - Duration::days(6));
    // The gap is an alert that grace-period-notify sends once.
    let alerts = env
        .rt
        .store
        .recent_alerts(&env.sim.tenant_id, env.now() - Duration::days(1))
        .await
        .expect("alerts");
    assert!(
        alerts
            .iter()
            .any(|a| a.kind == "audit_gap" && a.summary.contains("management_api"))
    );
}

#[tokio::test]
async fn audit_events_date_grace_cases() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let r = fetch(&env, &archive).await.expect("fetch");
    assert_eq!(r.license_events, 5);
    let report = env.check().await;
    let ul = of_kind(&report, "unlicensed_mailbox");
    let megan = &for_user(&ul, &upn("megan.bowen"))[0];
    assert_eq!(megan["grace_evidence"], "audit_failed_assignment");
    assert_eq!(megan["grace_started_at"], "2026-10-24T10:12:00Z");
    let pradeep = &for_user(&ul, &upn("pradeep.gupta"))[0];
    assert_eq!(pradeep["grace_evidence"], "audit_removal");
    assert_eq!(pradeep["access_ends_at"], "2026-11-19T14:03:00Z");
}

#[tokio::test]
async fn audit_verify_compares_a_day_of_the_source_with_the_archive() {
    use licensewatch_core::usecases::fetch_audit::verify_day;
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    changes(&env, 3).await;
    env.advance(Duration::hours(5)).await;
    let day = env.now().date_naive();
    // Before any fetch, everything of the day is missing.
    let before = verify_day(&env.rt.audit_deps_with(&archive), &env.rt.policy, day)
        .await
        .expect("verify");
    let mgmt = before
        .iter()
        .find(|c| c.source.starts_with("management_api"))
        .expect("mgmt");
    assert!(
        mgmt.source_records > 0 && mgmt.archived_records == 0 && !mgmt.blobs_missing.is_empty()
    );
    fetch(&env, &archive).await.expect("fetch");
    let after = verify_day(&env.rt.audit_deps_with(&archive), &env.rt.policy, day)
        .await
        .expect("verify");
    for c in &after {
        assert!(
            c.missing_records.is_empty() && c.blobs_missing.is_empty(),
            "{c:?}"
        );
        assert_eq!(c.archived_records, c.source_records);
    }
    assert!(
        after
            .iter()
            .any(|c| c.source == "directory_audit" && c.source_records == 6)
    );
}

/// Microsoft allows 5 directoryAudits requests per window per app and tenant (10 s; compressed here, in the
/// simulator and the pacer alike). Fifteen reads started at once by one process meet no 429: they wait for slots
/// instead of spending the window on refusals.
#[tokio::test]
async fn concurrent_audit_reads_of_one_process_keep_to_the_quota_without_a_429() {
    use licensewatch_core::ports::directory::Directory;
    let env = TestEnv::spawn().await;
    let from = env.now() - Duration::days(2);
    let started = std::time::Instant::now();
    let mut reads = tokio::task::JoinSet::new();
    for _ in 0..15 {
        let graph = env.rt.microsoft.graph.clone();
        reads.spawn(async move {
            let mut pages = graph.directory_audits(from, None);
            pages.next_page().await.map(|p| p.map_or(0, |p| p.len()))
        });
    }
    for read in reads.join_all().await {
        read.expect("each read succeeds");
    }
    let audits = requests_to(&env, |p| p.contains("/auditLogs/")).await;
    assert_eq!(audits.len(), 15, "one request a read: {audits:?}");
    assert!(
        audits.iter().all(|r| r["status"] == 200),
        "no request refused: {audits:?}"
    );
    // 15 requests at 5 a window: the last five go out two windows after the first.
    let window = std::time::Duration::from_secs_f64(10.0 * QUOTA_TIME_SCALE);
    assert!(started.elapsed() >= window * 2, "{:?}", started.elapsed());
}

/// Starting a Management API subscription that another run (or deployment of the same app) already started is
/// answered 400 AF20024: that is success, not a failed run.
#[tokio::test]
async fn starting_an_enabled_subscription_again_is_success() {
    let env = TestEnv::spawn().await;
    assert_eq!(env.control("/_sim/feeds/stopped", json!({})).await, 204);
    let management = &env.rt.microsoft.management;
    management
        .start_subscription("Audit.General")
        .await
        .expect("started");
    management
        .start_subscription("Audit.General")
        .await
        .expect("already enabled: AF20024 is success");
    let starts: Vec<u64> = requests_to(&env, |p| p.ends_with("/subscriptions/start"))
        .await
        .into_iter()
        .filter_map(|r| r["status"].as_u64())
        .collect();
    assert_eq!(
        starts,
        [200, 400],
        "the simulator answered AF20024 the second time"
    );
}

/// An app registration without `AuditLog.Read.All`: Graph answers 403 `Authorization_RequestDenied`, and the error
/// names the permission, the function that needs it and where to grant it. license-check, which does not need it,
/// goes on.
#[tokio::test]
async fn a_missing_permission_is_named_with_the_function_that_needs_it_and_other_jobs_go_on() {
    let mut scenario = licensewatch_sim::Scenario::default_story();
    scenario.behaviour.granted_permissions = Some(
        [
            "User.Read.All",
            "Organization.Read.All",
            "GroupMember.Read.All",
            "LicenseAssignment.Read.All",
            "Mail.Send",
        ]
        .map(String::from)
        .to_vec(),
    );
    let env = TestEnv::with_scenario(scenario, licensewatch_core::policy::Policy::default()).await;
    let archive = FileArchive::new(env.archive_dir());
    let err = fetch(&env, &archive)
        .await
        .expect_err("no AuditLog.Read.All");
    let text = err.to_string();
    for part in [
        "Authorization_RequestDenied",
        "AuditLog.Read.All",
        "audit-fetch",
        "admin consent",
    ] {
        assert!(text.contains(part), "{part} in: {text}");
    }
    assert!(!err.is_retryable(), "retrying cannot grant a permission");
    let report = env.check().await;
    assert!(!report.findings.is_empty(), "license-check goes on");
}

/// A Management Activity API subscription that Microsoft disabled answers AF20023: the run archives the other
/// sources, reports the content type, and raises one alert saying the archive is no longer fed.
#[tokio::test]
async fn a_disabled_feed_raises_an_alert_and_the_other_sources_go_on() {
    let mut policy = licensewatch_core::policy::Policy::default();
    policy.audit.content_types = vec!["Audit.AzureActiveDirectory".into(), "Audit.General".into()];
    let env = TestEnv::with_policy(policy).await;
    let disabled = json!({"content_type": "Audit.General", "by": "Microsoft"});
    assert_eq!(env.control("/_sim/feed/disabled", disabled).await, 204);
    let archive = FileArchive::new(env.archive_dir());
    let report = fetch(&env, &archive).await.expect("the run goes on");
    assert_eq!(report.feeds_disabled, ["Audit.General"]);
    assert!(
        report.records_archived > 0,
        "the other sources were archived"
    );
    let tenant = env.sim.tenant_id.clone();
    let since = env.now() - Duration::days(1);
    let alerts = env
        .rt
        .store
        .recent_alerts(&tenant, since)
        .await
        .expect("alerts");
    let feed: Vec<_> = alerts
        .iter()
        .filter(|a| a.kind == licensewatch_core::domain::kinds::AlertKind::AuditFeedDisabled)
        .collect();
    assert_eq!(feed.len(), 1, "{alerts:?}");
    assert!(
        feed[0].summary.contains("Audit.General") && feed[0].summary.contains("AF20023")
            || feed[0].summary.contains("disabled by Microsoft"),
        "{}",
        feed[0].summary
    );
    // A second run the same day: still one alert.
    env.advance(Duration::hours(1)).await;
    fetch(&env, &archive).await.expect("again");
    let again = env
        .rt
        .store
        .recent_alerts(&tenant, since)
        .await
        .expect("alerts");
    assert_eq!(
        again
            .iter()
            .filter(|a| a.kind == licensewatch_core::domain::kinds::AlertKind::AuditFeedDisabled)
            .count(),
        1
    );
}

/// A first run over 30 days of a busy tenant's directory audits does not fit one invocation under Microsoft's
/// 5-requests-per-10-s quota: each run stops at its deadline with the cursor at the last whole day it archived, the
/// next run goes on from there, and in the end every record is archived once.
#[tokio::test]
async fn a_first_run_too_long_for_one_invocation_resumes_where_it_stopped_and_loses_nothing() {
    let env = TestEnv::spawn().await;
    let now = env.now();
    let records: Vec<serde_json::Value> = (0..30 * 400)
        .map(|i| {
            let at = now - Duration::days(29) - Duration::hours(12) + Duration::seconds(i * 210);
            json!({"id": format!("0b5e55ed-0000-4000-8000-{i:012}"), "activityDateTime": at.to_rfc3339(),
                "activityDisplayName": "Update user", "category": "UserManagement", "result": "success",
                "loggedByService": "Core Directory", "operationType": "Update",
                "initiatedBy": {"user": {"id": "a0", "userPrincipalName": "admin@contoso.onmicrosoft.com"}},
                "targetResources": [{"id": "u1", "type": "User", "userPrincipalName": "u1@contoso.onmicrosoft.com"}]})
        })
        .collect();
    let generated = records.len();
    for batch in records.chunks(2_000) {
        let status = env
            .control("/_sim/audit/records", json!({"directory": batch}))
            .await;
        assert_eq!(status, 201);
    }
    let archive = FileArchive::new(env.archive_dir());
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 40, "the runs never finish");
        // Time for a couple of quota windows' requests (compressed), less than the whole read needs (about 15
        // requests at 5 per window). Each run gets a little more, so a loaded machine still sees every run end.
        let budget = std::time::Duration::from_millis(200) * runs;
        let deadline = std::time::Instant::now() + budget;
        let report = licensewatch_core::runtime::deadline::within(deadline, fetch(&env, &archive))
            .await
            .expect("run");
        if !report.incomplete {
            break;
        }
    }
    assert!(runs > 1, "one run was enough: the deadline did not bite");
    let ids = archived(&archive, "directory_audit/").await;
    let ours: Vec<_> = ids
        .iter()
        .filter(|(id, _)| id.starts_with("0b5e55ed"))
        .collect();
    assert_eq!(ours.len(), generated, "every record archived");
    assert!(ours.iter().all(|(_, n)| **n == 1), "none twice");
}

/// The requests the simulator logged whose path `matches`.
async fn requests_to(env: &TestEnv, matches: impl Fn(&str) -> bool) -> Vec<serde_json::Value> {
    env.requests()
        .await
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(&matches))
        .collect()
}

/// Microsoft publishes a new subscription's first content up to 12 hours after the start: a run right after the
/// start archives no Management API record and says why, the cursor does not skip what is published late, and a
/// run after the 12 hours archives every record of the time before, once.
#[tokio::test]
async fn content_first_published_twelve_hours_after_a_start_is_archived_once_when_it_comes() {
    // The Management API alone (the Purview backfill would bring the same records sooner).
    let mut policy = licensewatch_core::policy::Policy::default();
    policy.audit.backfill_days = 0;
    let env = TestEnv::with_policy(policy).await;
    assert_eq!(env.control("/_sim/feeds/stopped", json!({})).await, 204);
    changes(&env, 3).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let first = fetch(&env, &archive).await.expect("first run");
    assert!(
        !first.feeds_started.is_empty(),
        "the run started the subscriptions: {first:?}"
    );
    assert!(
        archived(&archive, "management_api").await.is_empty(),
        "nothing is published yet"
    );
    env.advance(Duration::hours(6)).await;
    let early = fetch(&env, &archive).await.expect("six hours later");
    assert!(early.feeds_started.is_empty(), "started once: {early:?}");
    assert!(archived(&archive, "management_api").await.is_empty());
    env.advance(Duration::hours(7)).await;
    fetch(&env, &archive).await.expect("after twelve hours");
    fetch(&env, &archive).await.expect("and again");
    let ids = archived(&archive, "management_api").await;
    assert!(ids.len() >= 3, "the changes made before: {ids:?}");
    assert!(ids.values().all(|n| *n == 1), "each once: {ids:?}");
}

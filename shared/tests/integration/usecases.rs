//! Unit tests of the use cases on the in-memory fakes (feature `testing`): the edge cases of evidence, deadlines,
//! alerts, dedupe and the remediation budget, in milliseconds and without the simulator. The end-to-end tests
//! (tests/) run the same use cases over HTTP against the simulated tenant, SQLite and moto.

use chrono::{DateTime, Duration, TimeZone, Utc};
use licensewatch_core::domain::catalog::Catalog;
use licensewatch_core::domain::findings::{Detail, Finding, Severity};
use licensewatch_core::domain::grace::{CaseKind, EvidenceKind};
use licensewatch_core::error::CoreError;
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::clock::{Clock, FixedClock};
use licensewatch_core::ports::store::traits::*;
use licensewatch_core::ports::testing::{MemoryArchive, MemoryDirectory, MemoryFeed, MemoryStore};
use licensewatch_core::usecases::check_licenses::{
    CheckDeps, CheckReport, TenantRun, check_licenses,
};
use licensewatch_core::usecases::fetch_audit::{AuditDeps, AuditStep, fetch_audit};
use serde_json::{Value, json};

const TENANT: &str = "48a80680-7326-48cd-9935-b556b81d3a4e";
const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const EXCHANGE_PLAN: &str = "efb87545-963c-4e0d-99df-69c6916d9eb0";

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 9, 0, 0)
        .single()
        .expect("time")
}

/// A member mailbox; licensed with E3 (and an enabled Exchange plan) or not.
fn mailbox(id: &str, licensed: bool) -> Value {
    let (licenses, plans) = if licensed {
        (
            json!([{"skuId": E3, "disabledPlans": []}]),
            json!([{"service": "exchange", "capabilityStatus": "Enabled", "servicePlanId": EXCHANGE_PLAN,
                    "assignedDateTime": "2026-01-01T00:00:00Z"}]),
        )
    } else {
        (json!([]), json!([]))
    };
    json!({"id": id, "userPrincipalName": format!("{id}@contoso.com"), "displayName": id,
           "mail": format!("{id}@contoso.com"), "proxyAddresses": [format!("SMTP:{id}@contoso.com")],
           "accountEnabled": true, "userType": "Member", "createdDateTime": "2025-01-01T00:00:00Z",
           "assignedLicenses": licenses, "assignedPlans": plans, "licenseAssignmentStates": []})
}

fn e3(enabled: i64, consumed: i64) -> Value {
    json!({"skuId": E3, "skuPartNumber": "ENTERPRISEPACK", "capabilityStatus": "Enabled",
           "consumedUnits": consumed, "prepaidUnits": {"enabled": enabled, "suspended": 0, "warning": 0}})
}

/// A failed "Change user license" as Entra writes it: no SKU anywhere in the record.
fn failed_license_change(id: &str, user: &str, at: DateTime<Utc>) -> Value {
    json!({"id": id, "category": "UserManagement", "correlationId": format!("corr-{id}"),
           "result": "failure", "resultReason": "Microsoft.Online.Workflows.LicenseAssignmentException",
           "activityDisplayName": "Change user license", "activityDateTime": at.to_rfc3339(),
           "loggedByService": "Core Directory", "operationType": "Update",
           "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}, "app": null},
           "targetResources": [{"id": user, "type": "User", "userPrincipalName": format!("{user}@contoso.com"),
                                "modifiedProperties": []}],
           "additionalDetails": []})
}

struct World {
    directory: MemoryDirectory,
    feed: MemoryFeed,
    store: MemoryStore,
    archive: MemoryArchive,
    clock: FixedClock,
    catalog: Catalog,
    policy: Policy,
}

fn no_crash<T>(_: T) -> Result<(), CoreError> {
    Ok(())
}

impl World {
    fn new() -> Self {
        Self {
            directory: MemoryDirectory::new(),
            feed: MemoryFeed::new(TENANT),
            store: MemoryStore::new(),
            archive: MemoryArchive::default(),
            clock: FixedClock::at(day(20)),
            catalog: Catalog::embedded(),
            policy: Policy::default(),
        }
    }

    async fn check(&self) -> CheckReport {
        let deps = CheckDeps {
            graph: &self.directory,
            store: &self.store,
            queue: &self.store,
            remediations: &self.store,
            clock: &self.clock,
            catalog: &self.catalog,
            crash: &no_crash,
        };
        let tenant = TenantRun {
            tenant_id: TENANT.into(),
            delayed_delicensing: false,
        };
        let report = check_licenses(&deps, &tenant, &self.policy, &|_| {})
            .await
            .expect("check");
        for f in &report.findings {
            // The typed kind and the JSON contract's `kind` agree.
            let json = serde_json::to_value(f).expect("json");
            assert_eq!(json["kind"], f.kind().as_str());
        }
        report
    }

    async fn fetch(&self) -> licensewatch_core::usecases::fetch_audit::AuditReport {
        self.fetch_with(&no_crash).await.expect("fetch")
    }

    async fn fetch_with(
        &self,
        crash: &(dyn Fn(AuditStep) -> Result<(), CoreError> + Sync),
    ) -> Result<licensewatch_core::usecases::fetch_audit::AuditReport, CoreError> {
        let deps = AuditDeps {
            graph: &self.directory,
            management: &self.feed,
            purview: &self.directory,
            state: &self.store,
            store: &self.store,
            archive: &self.archive,
            clock: &self.clock,
            crash,
            progress: &licensewatch_core::usecases::fetch_audit::no_progress,
            deadline: None,
        };
        fetch_audit(&deps, &self.policy).await
    }

    fn at(&self, t: DateTime<Utc>) {
        self.clock.set(t);
    }
}

fn of_kind<'f>(report: &'f CheckReport, kind: &str) -> Vec<&'f Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.kind() == kind)
        .collect()
}

#[tokio::test]
async fn a_skuless_failed_assignment_dates_the_case_and_the_last_three_days_are_critical() {
    let w = World::new();
    w.directory
        .put_sku(e3(10, 1))
        .put_user(mailbox("ada", false));
    w.directory.put_audit(failed_license_change(
        "f1",
        "ada",
        day(20) - Duration::days(25),
    ));
    // A later failure does not move the start: the earliest one is closest to when the mailbox began running.
    w.directory.put_audit(failed_license_change(
        "f2",
        "ada",
        day(20) - Duration::days(10),
    ));
    assert_eq!(w.fetch().await.license_events, 2);

    let report = w.check().await;
    let [f] = of_kind(&report, "unlicensed_mailbox")[..] else {
        panic!("one mailbox: {report:?}")
    };
    let Detail::UnlicensedMailbox {
        grace_evidence,
        case_type,
        days_left,
        attempted_sku_source,
        ..
    } = &f.detail
    else {
        unreachable!()
    };
    assert_eq!(*grace_evidence, EvidenceKind::AuditFailedAssignment);
    assert_eq!(*case_type, CaseKind::NeverLicensed);
    assert_eq!(*days_left, 5);
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        attempted_sku_source.is_some(),
        "a failed assignment says where its SKUs come from"
    );

    w.at(day(22) + Duration::hours(1));
    let report = w.check().await;
    let [f] = of_kind(&report, "unlicensed_mailbox")[..] else {
        panic!("still one")
    };
    assert_eq!(
        f.severity,
        Severity::Critical,
        "three days or fewer left: {f:?}"
    );
}

#[tokio::test]
async fn a_failure_before_the_last_successful_grant_is_not_evidence() {
    let w = World::new();
    w.directory
        .put_sku(e3(10, 1))
        .put_user(mailbox("bob", false));
    w.directory
        .put_audit(failed_license_change("f1", "bob", day(1)));
    // The licence was granted after the failure (and removed since without an audit record we can read).
    w.directory.put_audit(json!({"id": "g1", "category": "UserManagement", "correlationId": "corr-g1",
        "result": "success", "activityDisplayName": "Update user", "activityDateTime": day(5).to_rfc3339(),
        "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}},
        "targetResources": [{"id": "bob", "type": "User", "userPrincipalName": "bob@contoso.com",
            "modifiedProperties": [{"displayName": "AssignedLicense", "oldValue": "[]",
                "newValue": format!("[\"[SkuName=ENTERPRISEPACK, AccountId=x, SkuId={E3}, DisabledPlans=[]]\"]")}]}]}));
    w.fetch().await;
    let report = w.check().await;
    let [f] = of_kind(&report, "unlicensed_mailbox")[..] else {
        panic!("one mailbox")
    };
    let Detail::UnlicensedMailbox { grace_evidence, .. } = &f.detail else {
        unreachable!()
    };
    assert_ne!(
        *grace_evidence,
        EvidenceKind::AuditFailedAssignment,
        "{f:?}"
    );
}

#[tokio::test]
async fn an_unexplained_removal_is_a_warning_and_the_case_closes_when_exchange_returns() {
    let w = World::new();
    w.directory
        .put_sku(e3(10, 2))
        .put_user(mailbox("cy", true))
        .put_user(mailbox("di", true));
    w.check().await;

    w.at(day(20) + Duration::hours(1));
    w.directory.put_user(mailbox("cy", false));
    let report = w.check().await;
    let [removed] = of_kind(&report, "license_removed")[..] else {
        panic!("one removal: {report:?}")
    };
    assert_eq!(removed.severity, Severity::Warning, "nobody explains it");
    let [case] = of_kind(&report, "unlicensed_mailbox")[..] else {
        panic!("one case")
    };
    let Detail::UnlicensedMailbox {
        grace_evidence,
        case_type,
        days_left,
        ..
    } = &case.detail
    else {
        unreachable!()
    };
    assert_eq!(
        (*grace_evidence, *case_type),
        (EvidenceKind::SnapshotDiff, CaseKind::LicenseRemoved)
    );
    assert!(*days_left > 0, "the data deadline is still ahead");
    assert_eq!(report.grace_cases.opened, 1);

    w.at(day(20) + Duration::hours(2));
    w.directory.put_user(mailbox("cy", true));
    let report = w.check().await;
    assert_eq!((report.grace_cases.open, report.grace_cases.closed), (0, 1));
    let cases = w.store.grace_cases(TENANT, false).await.expect("cases");
    assert_eq!(
        cases[0].close_reason.as_deref(),
        Some("an enabled Exchange plan is assigned again")
    );
}

async fn the_open_case(w: &World) -> licensewatch_core::domain::grace::GraceCase {
    let cases = w.store.grace_cases(TENANT, true).await.expect("cases");
    assert_eq!(cases.len(), 1);
    cases[0].clone()
}

#[tokio::test]
async fn a_grace_case_is_written_when_it_changes_not_on_every_run() {
    let w = World::new();
    w.directory.put_sku(e3(10, 2)).put_user(mailbox("cy", true));
    w.check().await;
    let opened = day(20) + Duration::hours(1);
    w.at(opened);
    w.directory.put_user(mailbox("cy", false));
    assert_eq!(w.check().await.grace_cases.opened, 1);
    let first = the_open_case(&w).await;
    assert_eq!(first.updated_at, opened);

    // Nothing new about the mailbox: the case stays open and is not rewritten.
    w.at(day(20) + Duration::hours(2));
    let report = w.check().await;
    assert_eq!((report.grace_cases.open, report.grace_cases.opened), (1, 0));
    assert_eq!(the_open_case(&w).await, first);

    // The user is renamed: the case says so from this run.
    let renamed_at = day(20) + Duration::hours(3);
    w.at(renamed_at);
    let mut renamed = mailbox("cy", false);
    renamed["displayName"] = json!("Cy Renamed");
    w.directory.put_user(renamed);
    w.check().await;
    let now = the_open_case(&w).await;
    assert_eq!(
        (now.display_name.as_deref(), now.updated_at, now.opened_at),
        (Some("Cy Renamed"), renamed_at, opened)
    );
}

#[tokio::test]
async fn mass_delicensing_is_one_alert_per_occurrence() {
    let mut w = World::new();
    // The threshold is the smaller of the two; a share of 100 % leaves the count to decide.
    w.policy.check.mass_delicensing_min_users = 3;
    w.policy.check.mass_delicensing_percent = 100.0;
    w.directory.put_sku(e3(100, 10));
    for i in 0..10 {
        w.directory.put_user(mailbox(&format!("u{i}"), true));
    }
    w.check().await;
    w.at(day(20) + Duration::hours(1));
    for i in 0..3 {
        w.directory.put_user(mailbox(&format!("u{i}"), false));
    }
    let report = w.check().await;
    let [mass] = of_kind(&report, "mass_delicensing")[..] else {
        panic!("mass: {report:?}")
    };
    assert_eq!(mass.severity, Severity::Critical);
    let alerts = w.store.open_alerts(TENANT).await.expect("alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, "mass_delicensing");

    // Two removals the next hour stay under the threshold: the occurrence ends, nothing new is raised.
    w.at(day(20) + Duration::hours(2));
    for i in 3..5 {
        w.directory.put_user(mailbox(&format!("u{i}"), false));
    }
    let report = w.check().await;
    assert!(of_kind(&report, "mass_delicensing").is_empty());
    assert!(
        w.store
            .open_alerts(TENANT)
            .await
            .expect("alerts")
            .is_empty()
    );
}

#[tokio::test]
async fn count_violations_on_an_exhausted_sku_are_critical_and_auto_reprocess_stays_within_budget()
{
    let mut w = World::new();
    w.policy.remediation.auto_reprocess = true;
    w.policy.remediation.max_actions_per_hour = 1;
    w.directory.put_sku(e3(2, 2));
    for id in ["eve", "fay"] {
        let mut u = mailbox(id, false);
        u["licenseAssignmentStates"] = json!([{"skuId": E3, "assignedByGroup": "g1", "state": "Error",
                                               "error": "CountViolation"}]);
        w.directory.put_user(u);
    }
    w.directory
        .put_error_group("g1", "All staff", &["eve", "fay"]);
    let report = w.check().await;
    let [cap] = of_kind(&report, "sku_capacity")[..] else {
        panic!("capacity: {report:?}")
    };
    assert_eq!(cap.severity, Severity::Critical);
    assert_eq!(
        w.store.open_alerts(TENANT).await.expect("alerts")[0].kind,
        "sku_exhausted"
    );
    let errors = of_kind(&report, "license_assignment_error");
    assert_eq!(errors.len(), 2);
    let Detail::LicenseAssignmentError {
        group_display_name, ..
    } = &errors[0].detail
    else {
        unreachable!()
    };
    assert_eq!(group_display_name.as_deref(), Some("All staff"));
    assert_eq!(
        report.remediations_queued, 0,
        "no free seat: nothing to reprocess"
    );

    // Seats are bought: both users could be reprocessed, the budget allows one an hour.
    w.directory.put_sku(e3(10, 2));
    w.at(day(20) + Duration::minutes(10));
    let report = w.check().await;
    assert_eq!(report.remediations_queued, 1);
    assert_eq!(w.store.pending(TENANT).await.expect("queue").len(), 1);
}

#[tokio::test]
async fn a_blob_listed_twice_and_a_record_in_two_blobs_are_archived_once() {
    let w = World::new();
    let record = |id: &str| {
        json!({"Id": id, "CreationTime": "2026-11-19T08:00:00", "Operation": "UserLoggedIn",
                                  "RecordType": 15, "UserId": "ada@contoso.com", "Workload": "AzureActiveDirectory"})
    };
    let ct = "Audit.AzureActiveDirectory";
    w.feed
        .publish(ct, "blob-1", day(19), &[record("r1"), record("r2")]);
    w.feed.publish(
        ct,
        "blob-2",
        day(19) + Duration::hours(1),
        &[record("r2"), record("r3")],
    );
    let first = w.fetch().await;
    assert_eq!((first.records_archived, first.duplicates_skipped), (3, 1));

    w.at(day(20) + Duration::hours(1));
    let again = w.fetch().await;
    assert_eq!(
        again.records_archived, 0,
        "the relisted blobs add nothing: {again:?}"
    );
    assert_eq!(
        w.feed.fetches().values().max(),
        Some(&1),
        "a finished blob is not downloaded again"
    );
    let seen = w
        .store
        .seen_records(&["r1".into(), "r2".into(), "r3".into()])
        .await
        .expect("seen");
    assert_eq!(seen.len(), 3);
}

/// Blobs are downloaded ahead while earlier ones are archived; a download, once sent, is read to its end even when
/// archiving is slow (its timeout runs from when it was sent: a download left waiting would time out and be sent
/// again, or fail the run). The times are chosen so that, two at a time, the fifth download is under way when the
/// fourth is ready and the archiving side is still busy with the first (300 ms a blob).
#[tokio::test]
async fn downloads_ahead_are_not_left_waiting_behind_a_slow_archive() {
    let ms = std::time::Duration::from_millis;
    let mut w = World::new();
    w.feed = MemoryFeed::new(TENANT)
        .with_downloads(&[ms(120), ms(10), ms(10), ms(40), ms(100)], ms(200));
    w.archive = MemoryArchive::slow(ms(150));
    w.policy.audit.max_parallel_blobs = 2;
    let ct = "Audit.AzureActiveDirectory";
    for b in 0..6 {
        let record = json!({"Id": format!("r{b}"), "CreationTime": "2026-11-19T08:00:00",
            "Operation": "UserLoggedIn", "RecordType": 15, "UserId": "ada@contoso.com",
            "Workload": "AzureActiveDirectory"});
        w.feed.publish(
            ct,
            &format!("blob-{b:02}"),
            day(19) + Duration::minutes(b),
            &[record],
        );
    }
    let report = w
        .fetch_with(&no_crash)
        .await
        .expect("no download timed out");
    assert_eq!((report.blobs_fetched, report.records_archived), (6, 6));
}

#[tokio::test]
async fn a_licence_record_read_again_is_not_stored_again() {
    let w = World::new();
    w.directory.put_audit(failed_license_change(
        "f1",
        "ada",
        day(20) - Duration::minutes(30),
    ));
    assert_eq!(w.fetch().await.license_events, 1);
    // The next run reads the last hour again (records arrive late) and meets the record once more: its licence
    // parts were stored before its claim, so nothing about it is stored again. A run stopped right after the
    // licence-parts step shows it: no licence work is left pending.
    w.at(day(20) + Duration::minutes(15));
    let stopped = w
        .fetch_with(&|step| match step {
            AuditStep::AfterLicenceParts => Err(CoreError::Busy("stopped here".into())),
            _ => Ok(()),
        })
        .await;
    assert!(stopped.is_err(), "the run met the record again");
    let pending = w
        .store
        .pending_license_parts(TENANT)
        .await
        .expect("pending");
    assert!(pending.changes.is_empty(), "{:?}", pending.changes);
    let again = w.fetch().await;
    assert_eq!((again.records_archived, again.license_events), (0, 0));
}

#[tokio::test]
async fn a_second_run_while_one_holds_the_tenant_does_nothing() {
    let w = World::new();
    w.directory.put_sku(e3(10, 0));
    w.store
        .acquire_lease(
            &licensewatch_core::ports::store::lease_name("license-check", TENANT),
            "other-run",
            w.clock.now(),
            Duration::minutes(16),
        )
        .await
        .expect("lease");
    let report = w.check().await;
    assert!(report.skipped.is_some());
    assert!(w.store.runs(TENANT, 10).await.expect("runs").is_empty());
}

fn request(
    action: &str,
    user: &str,
    skus: &[&str],
) -> licensewatch_core::ports::store::RemediationRequest {
    licensewatch_core::ports::store::RemediationRequest {
        remediation_id: format!("rem-{user}"),
        tenant_id: TENANT.into(),
        user: user.into(),
        action: action.parse().expect("action"),
        sku_ids: skus.iter().map(|s| s.to_string()).collect(),
        reason: "test".into(),
        requested_at: day(20),
        disabled_plans: Default::default(),
        template_user: None,
        ticket: None,
    }
}

#[tokio::test]
async fn remediation_plans_respect_the_rails_and_the_seats() {
    use licensewatch_core::domain::kinds::RemediationStatus;
    use licensewatch_core::usecases::reprocess_user::plan;
    let mut w = World::new();
    let mut ada = mailbox("ada", false);
    ada["usageLocation"] = json!("DE");
    w.directory.put_sku(e3(5, 4)).put_user(ada);

    // Assign by part number: resolved to the tenant's SKU id, one seat is free.
    let (_, call) = plan(
        &w.directory,
        &request("assign", "ada@contoso.com", &["ENTERPRISEPACK"]),
        &w.policy,
    )
    .await
    .expect("graph")
    .expect("planned");
    assert_eq!(call.path, "users/ada/assignLicense");
    assert_eq!(call.body["addLicenses"][0]["skuId"], E3);

    // Removal is off by default, before anything is read.
    let refused = plan(&w.directory, &request("remove", "ada", &[E3]), &w.policy)
        .await
        .expect("graph");
    let Err(outcome) = refused else {
        panic!("remove must be refused")
    };
    assert_eq!(outcome.status, RemediationStatus::Rejected);

    // A SKU off the allow-list is refused once resolved; a full SKU fails with the reason.
    w.policy.remediation.sku_allow_list = vec!["SPE_E5".into()];
    let Err(outcome) = plan(&w.directory, &request("assign", "ada", &[E3]), &w.policy)
        .await
        .expect("graph")
    else {
        panic!("not on the allow-list")
    };
    assert_eq!(outcome.status, RemediationStatus::Rejected);
    w.policy.remediation.sku_allow_list.clear();
    w.directory.put_sku(e3(5, 5));
    let Err(outcome) = plan(&w.directory, &request("assign", "ada", &[E3]), &w.policy)
        .await
        .expect("graph")
    else {
        panic!("no seat")
    };
    assert_eq!(
        (outcome.status, outcome.detail["reason"].as_str()),
        (
            RemediationStatus::Failed,
            Some("no free seats on ENTERPRISEPACK")
        )
    );
    assert!(w.directory.writes().is_empty(), "planning never writes");
}

mod change_endpoint {
    use licensewatch_core::domain::change_notifications::ClientState;
    use licensewatch_core::error::StoreError;
    use licensewatch_core::ports::queue::MessageQueue;
    use licensewatch_core::ports::testing::MemoryQueue;
    use licensewatch_core::secret::SecretString;
    use licensewatch_core::usecases::change_notifications::{
        ChangeMessage, NotificationRequest, endpoint,
    };
    use serde_json::json;

    const SECRET: &str = "unit-test-client-state-0123456789abcdef";

    fn secret() -> ClientState {
        ClientState::new(SecretString::new(SECRET)).expect("secret")
    }

    fn post(body: &[u8]) -> NotificationRequest<'_> {
        NotificationRequest {
            method: "POST",
            query: "",
            body,
        }
    }

    fn batch(items: &[(&str, &str, &str)]) -> Vec<u8> {
        let value: Vec<_> = items
            .iter()
            .map(|(tenant, user, state)| json!({"subscriptionId": "s", "tenantId": tenant, "clientState": state,
                "changeType": "updated", "resource": format!("Users/{user}"), "resourceData": {"id": user}}))
            .collect();
        json!({ "value": value }).to_string().into_bytes()
    }

    #[tokio::test]
    async fn the_validation_token_is_echoed_as_plain_text_whatever_the_method() {
        let queue = MemoryQueue::default();
        for method in ["POST", "GET"] {
            let req = NotificationRequest {
                method,
                query: "validationToken=Validation%3A%20Testing%20client%20application%20reachability",
                body: b"",
            };
            let a = endpoint(&req, &secret(), &queue).await;
            assert_eq!(a.status, 200);
            assert_eq!(a.content_type, "text/plain");
            assert_eq!(
                a.body,
                "Validation: Testing client application reachability"
            );
        }
        assert!(queue.sent().is_empty());
    }

    #[tokio::test]
    async fn accepted_notifications_are_queued_per_tenant_and_the_rest_only_counted() {
        let queue = MemoryQueue::default();
        let body = batch(&[
            ("T1", "u1", SECRET),
            ("t2", "u2", SECRET),
            ("t1", "u3", SECRET),
            ("t1", "u4", "unit-test-client-state-0123456789abcdeX"),
        ]);
        let a = endpoint(&post(&body), &secret(), &queue).await;
        assert_eq!((a.status, a.accepted, a.refused), (202, 3, 1));
        let messages: Vec<ChangeMessage> = queue
            .sent()
            .iter()
            .map(|m| serde_json::from_str(m).expect("message"))
            .collect();
        let per_tenant: Vec<(&str, usize)> = messages
            .iter()
            .map(|m| (m.tenant_id.as_str(), m.notifications.len()))
            .collect();
        assert_eq!(per_tenant, vec![("t1", 2), ("t2", 1)]);
        assert!(!a.body.contains(SECRET));
    }

    #[derive(Debug)]
    struct DownQueue;

    #[async_trait::async_trait]
    impl MessageQueue for DownQueue {
        async fn send(&self, _: &str) -> Result<(), StoreError> {
            Err(StoreError::Database("down".into()))
        }
        async fn send_all(&self, _: &[String]) -> Result<(), StoreError> {
            Err(StoreError::Database("down".into()))
        }
        async fn send_after(&self, _: &str, _: std::time::Duration) -> Result<(), StoreError> {
            Err(StoreError::Database("down".into()))
        }
    }

    #[tokio::test]
    async fn a_queue_that_is_down_makes_graph_deliver_again_and_bad_bodies_are_refused() {
        let body = batch(&[("t1", "u1", SECRET)]);
        let a = endpoint(&post(&body), &secret(), &DownQueue).await;
        assert_eq!(a.status, 503, "Graph retries a 5xx");
        let queue = MemoryQueue::default();
        assert_eq!(
            endpoint(&post(b"{\"value\": 1}"), &secret(), &queue)
                .await
                .status,
            400
        );
        assert_eq!(
            endpoint(&post(&vec![b' '; 2 << 20]), &secret(), &queue)
                .await
                .status,
            413
        );
        let get = NotificationRequest {
            method: "GET",
            query: "",
            body: b"",
        };
        assert_eq!(endpoint(&get, &secret(), &queue).await.status, 405);
        // Forged only: nothing queued, still 202 (Graph must not be told which secret is wrong).
        let forged = batch(&[("t1", "u1", "nope")]);
        let a = endpoint(&post(&forged), &secret(), &queue).await;
        assert_eq!((a.status, a.accepted, a.refused), (202, 0, 1));
        assert!(queue.sent().is_empty());
    }
}

/// The webhook endpoint over a store whose admission and queueing are writes of their own (DynamoDB, then SQS).
mod webhook_intake {
    use super::*;
    use licensewatch_core::domain::signing::WebhookSecret;
    use licensewatch_core::usecases::webhook::{HttpRequest, WebhookAuth, WebhookDeps, handle};

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

    fn delivery<'a>(id: &str, at: DateTime<Utc>, body: &'a [u8]) -> HttpRequest<'a> {
        let secret = WebhookSecret::parse(SECRET).expect("secret");
        let headers = [
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", at.timestamp().to_string()),
            ("webhook-signature", secret.sign(id, at.timestamp(), body)),
            ("content-type", "application/json".to_string()),
        ];
        HttpRequest {
            method: "POST",
            path: "/remediations",
            headers: headers.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            body,
        }
    }

    #[tokio::test]
    async fn a_delivery_admitted_but_never_queued_is_queued_when_the_sender_retries() {
        let mut policy = Policy::default();
        policy.webhook.secrets_env = vec!["LW_SECRET".into()];
        let auth = WebhookAuth::from_policy(&policy, &|_| Some(SECRET.into())).expect("auth");
        let store = MemoryStore::new();
        let (clock, directory) = (FixedClock::at(day(20)), MemoryDirectory::new());
        let deps = WebhookDeps {
            auth: &auth,
            store: &store,
            clock: &clock,
            policy: &policy,
            tenant_id: TENANT,
            graph: &directory,
        };
        let body = br#"{"user":"adele@contoso.com","action":"reprocess","ticket":{"system":"jira","id":"IT-1"}}"#;
        let queued = || async {
            let queue = store.pending(TENANT).await.expect("queue");
            queue
                .into_iter()
                .map(|r| r.remediation_id)
                .collect::<Vec<_>>()
        };
        // A delivery answered normally, then retried (the answer was lost on the way): queued once.
        let answered = handle(&deps, &delivery("msg_0", day(20), body)).await;
        assert_eq!(answered.status, 202, "{}", answered.body);
        let retried = handle(&deps, &delivery("msg_0", day(20), body)).await;
        assert_eq!(retried.status, 200);
        assert_eq!(
            queued().await,
            [answered.body["remediation_id"].as_str().expect("id")]
        );
        // Another ticket: the process dies between the admission and the queueing, so the sender gets no answer.
        let body = br#"{"user":"adele@contoso.com","action":"reprocess","ticket":{"system":"jira","id":"IT-2"}}"#;
        store.dies_after_next_admission();
        let first = handle(&deps, &delivery("msg_1", day(20), body)).await;
        assert_eq!(first.status, 500);
        assert_eq!(queued().await.len(), 1);
        // It delivers again with the same webhook id: the request admitted then is queued now, once.
        for _ in 0..2 {
            let retry = handle(&deps, &delivery("msg_1", day(20), body)).await;
            assert_eq!(retry.status, 200, "{}", retry.body);
            assert_eq!(retry.body["duplicate"], true);
            let ids = queued().await;
            assert_eq!(ids.len(), 2);
            assert_eq!(ids[1], retry.body["remediation_id"].as_str().expect("id"));
        }
    }
}

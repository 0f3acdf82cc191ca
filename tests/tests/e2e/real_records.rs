//! Real Microsoft record shapes, end to end through the simulated tenant over HTTP (audit-fetch, then check, then
//! notify): failures without SKUs (seed 000), "Change user license" / "Update user" pairs and split "sequence"
//! events arriving over several runs, group-licensing Finish counts, "Add user" grants, and public real records
//! replayed byte for byte (../shared/reference/REAL_RECORDS.md).

use chrono::{DateTime, Duration, Utc};
use licensewatch_core::adapters::files::FileArchive;
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::archive::{AuditArchive, decode_batch};
use licensewatch_core::usecases::fetch_audit::{AuditReport, fetch_audit};
use serde_json::{Value, json};

use crate::helpers::*;

const FACULTY_GROUP: &str = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f01";

async fn fetch(env: &TestEnv, archive: &FileArchive) -> AuditReport {
    fetch_audit(&env.rt.audit_deps_with(archive), &env.rt.policy)
        .await
        .expect("audit-fetch runs")
}

async fn inject(env: &TestEnv, directory: Vec<Value>, management: Vec<Value>) {
    let status = env
        .control(
            "/_sim/audit/records",
            json!({"directory": directory, "management": management}),
        )
        .await;
    assert_eq!(status, 201);
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A migrated mailbox (mail + SMTP address, enabled member) created long ago, with no licence.
async fn migrated_mailbox(env: &TestEnv, nick: &str, id: &str) {
    let status = env
        .control(
            "/_sim/users",
            json!({"id": id, "upn": upn(nick), "display_name": nick, "mail": upn(nick),
                "usage_location": "US", "created": "2026-06-01T08:00:00Z"}),
        )
        .await;
    assert_eq!(status, 201);
}

/// A failed Core Directory licence write as real tenants log it: result failure, a reason, no SKU anywhere, only
/// `TargetId.*` properties and `User-Agent` / `AppId` details (the shape of the public failure sample).
fn failed_write(activity: &str, at: DateTime<Utc>, user_id: &str, nick: &str, n: u32) -> Value {
    json!({
        "id": format!("Directory_8d1c2b7e-0000-4000-8000-0000000000{n:02}_FAIL_{n}"),
        "category": "UserManagement", "correlationId": "8d1c2b7e-0000-4000-8000-000000000001",
        "result": "failure", "resultReason": "The directory object quota limit for the tenant has been exceeded.",
        "activityDisplayName": activity, "activityDateTime": stamp(at),
        "loggedByService": "Core Directory", "operationType": "Update", "userAgent": null,
        "initiatedBy": {"user": {"id": null, "displayName": null, "userPrincipalName": upn("it.admin"),
            "ipAddress": "203.0.113.10"}, "app": null},
        "targetResources": [{"id": user_id, "displayName": null, "type": "User", "userPrincipalName": upn(nick),
            "modifiedProperties": [{"displayName": "TargetId.UserType", "oldValue": null, "newValue": "\"Member\""}],
            "administrativeUnits": []}],
        "additionalDetails": [{"key": "User-Agent", "value": "Microsoft Azure Graph Client Library 2.1.17-internal"},
            {"key": "AppId", "value": "a70a7931-c387-4dce-9f35-fbf95bdcc91e"}]
    })
}

#[tokio::test]
async fn seed_000_a_failed_assignment_without_skus_25_days_ago_leaves_5_days_and_notices_on_time() {
    let env = TestEnv::with_policy(notify_policy()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let id = "5eed0000-0000-4000-8000-000000000000";
    migrated_mailbox(&env, "migrated.user", id).await;
    let failed_at = env.now() - Duration::days(25);
    inject(
        &env,
        vec![
            failed_write("Change user license", failed_at, id, "migrated.user", 1),
            failed_write("Update user", failed_at, id, "migrated.user", 2),
        ],
        vec![],
    )
    .await;
    fetch(&env, &archive).await;
    let report = env.check().await;
    let case = for_user(
        &of_kind(&report, "unlicensed_mailbox"),
        &upn("migrated.user"),
    );
    let case = case.first().expect("a grace case");
    assert_eq!(case["grace_evidence"], "audit_failed_assignment", "{case}");
    assert_eq!(case["grace_started_at"], json!(failed_at));
    assert_eq!(case["days_left"], 5, "{case}");
    assert_eq!(case["severity"], "warning");
    // No source names the SKU that was tried: said, not guessed.
    assert_eq!(case["attempted_sku_source"], "unknown");
    assert_eq!(case["attempted_sku_ids"], json!([]));

    // The 7-day notice is due now (5 days left), the 3-day one two days later; each once.
    let notices = |r: &licensewatch_core::usecases::notify_grace_period::NotifyReport| {
        r.sent
            .iter()
            .filter(|s| s.user_principal_name == upn("migrated.user") && s.audience == "admin")
            .map(|s| s.threshold_days)
            .collect::<Vec<_>>()
    };
    let first = env
        .notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    assert_eq!(notices(&first), vec![Some(7)]);
    env.advance(Duration::days(1)).await;
    env.check().await;
    let quiet = env
        .notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    assert!(notices(&quiet).is_empty(), "4 days left: nothing new");
    env.advance(Duration::days(1)).await;
    let report = env.check().await;
    let case = &for_user(
        &of_kind(&report, "unlicensed_mailbox"),
        &upn("migrated.user"),
    )[0];
    assert_eq!(case["days_left"], 3);
    assert_eq!(case["severity"], "critical");
    let third = env
        .notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    assert_eq!(notices(&third), vec![Some(3)]);
    let mail = env.mail().await;
    assert!(
        mail.iter()
            .any(|m| m.to_string().contains(&upn("migrated.user"))),
        "the admins were mailed about the mailbox"
    );
}

#[tokio::test]
async fn a_failed_group_member_names_the_sku_from_its_assignment_states() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    // teacher12 is in the faculty group, whose licences fail (no faculty seats): the failed write for them names no
    // SKU, but their licenceAssignmentStates do.
    let id = licensewatch_sim::Scenario::default_story()
        .users
        .iter()
        .find(|u| u.upn == upn("teacher12"))
        .map(|u| u.id.clone())
        .expect("teacher12");
    inject(
        &env,
        vec![failed_write(
            "Update user",
            env.now() - Duration::days(3),
            &id,
            "teacher12",
            3,
        )],
        vec![],
    )
    .await;
    fetch(&env, &archive).await;
    let report = env.check().await;
    let case = &for_user(&of_kind(&report, "unlicensed_mailbox"), &upn("teacher12"))[0];
    assert_eq!(case["grace_evidence"], "audit_failed_assignment", "{case}");
    assert_eq!(case["attempted_sku_source"], "license_assignment_states");
    let mut tried: Vec<String> =
        serde_json::from_value(case["attempted_sku_ids"].clone()).expect("ids");
    tried.sort();
    let mut expected = vec![FACULTY.to_string(), STUDENT.to_string()];
    expected.sort();
    assert_eq!(tried, expected);
}

/// One "Change user license." / "Update user." pair as the Management Activity API writes it.
fn management_pair(at: DateTime<Utc>, user_id: &str, nick: &str) -> (Value, Value) {
    let base = |id: &str, op: &str, props: Value| {
        json!({"CreationTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(), "Id": id, "Operation": op,
            "OrganizationId": "x", "RecordType": 8, "ResultStatus": "Success", "UserKey": "10032000@x",
            "UserType": 0, "Version": 1, "Workload": "AzureActiveDirectory", "ObjectId": upn(nick),
            "UserId": upn("it.admin"), "AzureActiveDirectoryEventType": 1,
            "ExtendedProperties": [{"Name": "additionalDetails", "Value": "{}"},
                {"Name": "extendedAuditEventCategory", "Value": "User"}],
            "ModifiedProperties": props, "Actor": [{"ID": upn("it.admin"), "Type": 5}],
            "InterSystemsId": "7e57a11e-0000-4000-8000-00000000beef",
            "IntraSystemId": "7e57a11e-0000-4000-8000-00000000cafe",
            "Target": [{"ID": format!("User_{user_id}"), "Type": 2}, {"ID": user_id, "Type": 2},
                {"ID": upn(nick), "Type": 5}]})
    };
    let lic = format!(
        "[\r\n  \"[SkuName=ENTERPRISEPACK, AccountId=x, SkuId={E3}, DisabledPlans=[]]\"\r\n]"
    );
    (
        base(
            "11111111-c0de-4000-8000-000000000001",
            "Change user license.",
            json!([]),
        ),
        base(
            "11111111-c0de-4000-8000-000000000002",
            "Update user.",
            json!([{"Name": "AssignedLicense", "NewValue": lic, "OldValue": "[]"},
                {"Name": "Included Updated Properties", "NewValue": "AssignedLicense, AssignedPlan", "OldValue": ""}]),
        ),
    )
}

#[tokio::test]
async fn a_pair_split_over_two_runs_is_one_event() {
    let env = TestEnv::with_policy(management_api_only()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let user = "9a9a9a9a-0000-4000-8000-000000000001";
    let (change, update) = management_pair(env.now(), user, "paired.user");
    inject(&env, vec![], vec![change]).await;
    env.advance(Duration::hours(5)).await;
    fetch(&env, &archive).await;
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(user))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert!(
        events[0].added_sku_ids.is_empty(),
        "only the empty half so far"
    );

    // The "Update user." half arrives in a later blob.
    inject(&env, vec![], vec![update]).await;
    env.advance(Duration::hours(5)).await;
    let second = fetch(&env, &archive).await;
    assert_eq!(
        second.license_events, 0,
        "the event was completed, not added"
    );
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(user))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    let e = &events[0];
    assert_eq!(e.added_sku_ids, vec![E3.to_string()]);
    assert_eq!(e.record_ids.len(), 2);
    assert_eq!(e.actor.as_deref(), Some(upn("it.admin").as_str()));
    assert_eq!(e.result, "success");
}

/// A split change as Graph writes it since 2024: `c` events with one `correlationId`, each holding a fragment `b`
/// of a document whose `targetUpdatedProperties` hold the licence diff.
fn sequence(at: DateTime<Utc>, user_id: &str, nick: &str, parts: usize) -> Vec<Value> {
    let doc = json!({"targetUpdatedProperties": [
        {"Name": "AssignedLicense", "OldValue": "[]",
         "NewValue": format!("[\"[SkuName=ENTERPRISEPACK, AccountId=x, SkuId={E3}, DisabledPlans=[]]\"]")},
        {"Name": "LicenseAssignmentDetail", "OldValue": [], "NewValue": [{"SkuId": E3, "DisabledPlans": []}]}
    ]})
    .to_string();
    let chars: Vec<char> = doc.chars().collect();
    let size = chars.len().div_ceil(parts);
    chars
        .chunks(size)
        .enumerate()
        .map(|(k, c)| {
            json!({"id": format!("Directory_5e95e95e-0000-4000-8000-000000000001_SEQ_{k}"),
                "category": "UserManagement", "correlationId": "5e95e95e-0000-4000-8000-000000000001",
                "result": "success", "resultReason": "", "activityDisplayName": "Update user",
                "activityDateTime": stamp(at), "loggedByService": "Core Directory", "operationType": "Update",
                "initiatedBy": {"user": {"userPrincipalName": upn("it.admin")}, "app": null},
                "targetResources": [{"id": user_id, "type": "User", "userPrincipalName": upn(nick),
                    "modifiedProperties": []}],
                "additionalDetails": [{"key": "id", "value": "0badc0de"}, {"key": "seq", "value": (k + 1).to_string()},
                    {"key": "c", "value": parts.to_string()}, {"key": "b", "value": c.iter().collect::<String>()}]})
        })
        .collect()
}

#[tokio::test]
async fn sequence_chunks_out_of_order_over_two_runs_make_one_event_and_wait_until_complete() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    let user = "5e5e5e5e-0000-4000-8000-000000000001";
    let chunks = sequence(env.now() - Duration::minutes(30), user, "split.user", 3);
    // Chunks 3 and 1 first.
    inject(&env, vec![chunks[2].clone(), chunks[0].clone()], vec![]).await;
    let first = fetch(&env, &archive).await;
    assert_eq!(first.license_changes_pending, 1);
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(user))
        .await
        .expect("events");
    assert!(events.is_empty(), "never half-parsed: {events:#?}");

    env.advance(Duration::hours(2)).await;
    let mut late = chunks[1].clone();
    late["activityDateTime"] = json!(stamp(env.now() - Duration::minutes(5)));
    inject(&env, vec![late], vec![]).await;
    let second = fetch(&env, &archive).await;
    assert_eq!(second.license_changes_pending, 0);
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(user))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].added_sku_ids, vec![E3.to_string()]);
    assert_eq!(events[0].record_ids.len(), 3);
    assert_eq!(events[0].actor.as_deref(), Some(upn("it.admin").as_str()));
    // Every chunk is archived as it came.
    let mut ids = Vec::new();
    for key in archive.keys("directory_audit/").await.expect("keys") {
        for r in decode_batch(&archive.get(&key).await.expect("get")).expect("decode") {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(ids.iter().filter(|i| i.contains("_SEQ_")).count(), 3);
}

#[tokio::test]
async fn a_failed_group_licensing_run_raises_an_alert_naming_the_group_before_any_check() {
    let env = TestEnv::with_policy(notify_policy()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    // A new faculty member while the faculty SKU has no seats left: group licensing fails for them, and the log
    // only holds the Finish record's counts.
    migrated_mailbox(&env, "new.teacher", "7ea7ea7e-0000-4000-8000-000000000001").await;
    env.control(
        &format!("/_sim/groups/{FACULTY_GROUP}/members"),
        json!({"add": [upn("new.teacher")]}),
    )
    .await;
    fetch(&env, &archive).await;
    let alerts = env
        .rt
        .store
        .recent_alerts(&env.sim.tenant_id, env.now() - Duration::days(1))
        .await
        .expect("alerts");
    let alert = alerts
        .iter()
        .find(|a| a.kind == "group_license_failed")
        .unwrap_or_else(|| panic!("{alerts:#?}"));
    assert!(
        alert.summary.contains("Faculty A1 licensing") && alert.summary.contains("1 user"),
        "{}",
        alert.summary
    );
    // The same record read again (overlap, duplicates) is one alert.
    fetch(&env, &archive).await;
    let again = env
        .rt
        .store
        .recent_alerts(&env.sim.tenant_id, env.now() - Duration::days(1))
        .await
        .expect("alerts");
    assert_eq!(
        again
            .iter()
            .filter(|a| a.kind == "group_license_failed")
            .count(),
        1
    );
    // grace-period-notify sends it.
    let env_notify = env
        .notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    assert!(
        env_notify
            .sent
            .iter()
            .any(|s| s.case_id.starts_with("group_license_failed:"))
    );
}

#[tokio::test]
async fn a_user_created_with_a_licence_is_an_explained_grant() {
    let env = TestEnv::spawn().await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    env.check().await;
    env.advance(Duration::hours(1)).await;
    let status = env
        .control(
            "/_sim/users",
            json!({"id": "adda0000-0000-4000-8000-000000000001", "upn": upn("new.hire"),
                "display_name": "New Hire", "mail": upn("new.hire"), "usage_location": "US",
                "created": "2026-11-21T10:00:00Z", "licenses": [{"sku_id": E3, "disabled_plans": []}]}),
        )
        .await;
    assert_eq!(status, 201);
    env.advance(Duration::hours(2)).await;
    fetch(&env, &archive).await;
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some(&upn("new.hire")))
        .await
        .expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.added_sku_ids == vec![E3.to_string()] && e.result == "success"),
        "{events:#?}"
    );
    let report = env.check().await;
    let added = for_user(&of_kind(&report, "license_added"), &upn("new.hire"));
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0]["explained"], true);
    assert_eq!(added[0]["actor"], "admin@contoso.onmicrosoft.com");
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/real/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// Every record archived under `prefix`, as JSON.
async fn archived_records(archive: &FileArchive, prefix: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for key in archive.keys(prefix).await.expect("keys") {
        out.extend(decode_batch(&archive.get(&key).await.expect("get")).expect("decode"));
    }
    out
}

#[tokio::test]
async fn real_directory_records_are_archived_verbatim_and_only_licence_activity_is_parsed() {
    // The public failure sample (Azure Monitor envelope around a directoryAudit) and Microsoft's documentation
    // example (with its `targetResource` / `Type` mistakes): neither is licence activity.
    let line = fixture("elastic-integrations__azure_auditlogs_failure_add_member_to_role.ndjson");
    let failure: Value = serde_json::from_str(line.trim()).expect("ndjson");
    let failure = failure["properties"].clone();
    let docs: Value =
        serde_json::from_str(&fixture("msgraph-docs__directoryaudit_get_v1_example.json"))
            .expect("json");
    let example = docs["value"][0].clone();
    for record in [failure, example] {
        let at = DateTime::parse_from_rfc3339(record["activityDateTime"].as_str().expect("time"))
            .expect("time")
            .to_utc();
        let env = TestEnv::at(at + Duration::hours(2), Policy::default()).await;
        let dir = tempfile::tempdir().expect("tmp");
        let archive = FileArchive::new(dir.path());
        inject(&env, vec![record.clone()], vec![]).await;
        let report = fetch(&env, &archive).await;
        assert_eq!(report.license_events, 0);
        let archived = archived_records(&archive, "directory_audit/").await;
        assert!(archived.contains(&record), "archived as it came: {record}");
        assert!(
            env.rt
                .store
                .license_events(&env.sim.tenant_id, None)
                .await
                .expect("events")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn real_management_records_of_every_shape_are_archived_and_licence_ones_parsed() {
    let env = TestEnv::with_policy(management_api_only()).await;
    let dir = tempfile::tempdir().expect("tmp");
    let archive = FileArchive::new(dir.path());
    // A real "Update user." removing O365_BUSINESS_PREMIUM, as a SIEM forwarded it (its Id was trimmed away).
    let ual: Value = serde_json::from_str(&fixture(
        "unknown-repo-fluency__ual_update_user_license_removed_PARTIAL.json",
    ))
    .expect("json");
    let removal = ual["@fields"].clone();
    // Exchange records carry string lists in ModifiedProperties and string RecordType; new record types appear.
    let exchange = json!({"CreationTime": "2026-11-21T08:10:00", "Id": "e8c1a7b2-0000-4000-8000-000000000001",
        "Operation": "Update", "RecordType": "2", "UserType": "0", "Version": "1", "Workload": "Exchange",
        "ResultStatus": "Succeeded", "ObjectId": "msg-1", "UserId": upn("it.admin"),
        "ModifiedProperties": ["HtmlBody", "CreationTime"]});
    let copilot = json!({"CreationTime": "2026-11-21T08:11:00", "Id": "c0b1c0b1-0000-4000-8000-000000000001",
        "Operation": "CopilotInteraction", "RecordType": 261, "Workload": "Copilot",
        "CopilotEventData": {"AppHost": "Teams", "Messages": [{"Id": "1", "isPrompt": true}]}});
    inject(
        &env,
        vec![],
        vec![removal.clone(), exchange.clone(), copilot.clone()],
    )
    .await;
    env.advance(Duration::hours(5)).await;
    let report = fetch(&env, &archive).await;
    let archived = archived_records(&archive, "management_api/").await;
    for r in [&removal, &exchange, &copilot] {
        assert!(archived.contains(r), "archived as it came: {r}");
    }
    assert!(report.license_events >= 1);
    let events = env
        .rt
        .store
        .license_events(&env.sim.tenant_id, Some("emily@fluencysecurity.com"))
        .await
        .expect("events");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        events[0].removed_sku_ids,
        vec!["f245ecc8-75af-4f8e-b61f-27d8114de5f3".to_string()]
    );
    assert_eq!(
        events[0].actor.as_deref(),
        Some("howard@fluencysecurity.com")
    );
    // Read again: nothing new, nothing duplicated.
    env.advance(Duration::hours(1)).await;
    let again = fetch(&env, &archive).await;
    assert_eq!(again.records_archived, 0);
    let archived = archived_records(&archive, "management_api/").await;
    assert_eq!(archived.iter().filter(|r| **r == removal).count(), 1);
}

/// The policy without the Purview backfill: these tests count what the Management Activity API alone brings run
/// after run (the backfill would add the scenario's history once its query succeeds).
fn management_api_only() -> licensewatch_core::policy::Policy {
    let mut p = licensewatch_core::policy::Policy::default();
    p.audit.backfill_days = 0;
    p
}

//! The beta `cloudLicensing` waiting room (`[check] cloud_licensing`): who waits for a seat, how long, and the seats
//! that would let them in; never read when the key is off; without `CloudLicensing.Read.All` the run says so and
//! goes on; doctor names the permission.

use chrono::Duration;
use licensewatch_core::domain::doctor::{Job, Verdict};
use licensewatch_core::domain::findings::{Detail, Severity};
use licensewatch_core::policy::Policy;
use licensewatch_core::usecases::doctor::doctor;
use serde_json::json;

use crate::helpers::*;

fn with_waiting_room() -> Policy {
    let mut p = Policy::default();
    p.check.cloud_licensing = true;
    p
}

/// Two users waiting for E3: one since yesterday morning (30 hours), one for two hours.
async fn two_waiting(env: &TestEnv) {
    let status = env
        .control(
            &format!("/_sim/skus/{E3}/waiting"),
            json!({"members": [
                {"id": "49caea1b-ad15-64f1-70c5-5c5e3563d19c", "since": env.now() - Duration::hours(30)},
                {"id": "5d1b0c2e-0000-4000-8000-000000000002", "since": env.now() - Duration::hours(2)},
            ]}),
        )
        .await;
    assert_eq!(status, 204);
}

async fn beta_calls(env: &TestEnv) -> usize {
    env.requests()
        .await
        .iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/beta/")))
        .count()
}

#[tokio::test]
async fn users_waiting_for_a_seat_are_a_finding_with_how_long_and_what_to_buy() {
    let env = TestEnv::with_policy(with_waiting_room()).await;
    two_waiting(&env).await;
    let state = env.get("/_sim/state").await;
    let e3 = state["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|k| k["sku_id"] == E3)
        .cloned()
        .expect("E3");
    let free =
        e3["enabled"].as_i64().expect("enabled") - e3["consumed"].as_i64().expect("consumed");
    let report = env.check().await;
    assert_eq!(report.cloud_licensing_unavailable, None);
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| matches!(f.detail, Detail::SeatWaitingRoom { .. }))
        .collect();
    assert_eq!(found.len(), 1, "only E3 has a waiting room: {found:?}");
    assert_eq!(
        found[0].severity,
        Severity::Critical,
        "someone waited over a day"
    );
    match &found[0].detail {
        Detail::SeatWaitingRoom {
            sku_id,
            sku_part_number,
            waiting,
            waiting_since,
            longest_wait_hours,
            seats_to_buy,
        } => {
            assert_eq!(
                (sku_id.as_str(), sku_part_number.as_str()),
                (E3, "ENTERPRISEPACK")
            );
            assert_eq!((*waiting, *longest_wait_hours), (2, 30));
            assert_eq!(*waiting_since, env.now() - Duration::hours(30));
            assert_eq!(
                *seats_to_buy,
                (2 - free).max(0),
                "free seats first ({free} free)"
            );
        }
        other => panic!("{other:?}"),
    }
    let json = of_kind(&report, "seat_waiting_room");
    assert_eq!(json.len(), 1, "the public kind name");
}

#[tokio::test]
async fn the_waiting_room_is_never_read_unless_asked_and_a_missing_permission_is_said() {
    let env = TestEnv::spawn().await;
    two_waiting(&env).await;
    let report = env.check().await;
    assert_eq!(beta_calls(&env).await, 0, "off by default: no beta call");
    assert!(of_kind(&report, "seat_waiting_room").is_empty());

    let env = TestEnv::with_policy(with_waiting_room()).await;
    two_waiting(&env).await;
    let without: Vec<&str> = [
        "User.Read.All",
        "Organization.Read.All",
        "GroupMember.Read.All",
        "LicenseAssignment.Read.All",
        "AuditLog.Read.All",
        "Reports.Read.All",
        "MailboxSettings.Read",
        "Mail.Send",
    ]
    .to_vec();
    env.control("/_sim/permissions", json!({"granted": without}))
        .await;
    let report = env.check().await;
    let why = report
        .cloud_licensing_unavailable
        .clone()
        .unwrap_or_default();
    assert!(why.contains("CloudLicensing.Read.All"), "{why}");
    assert!(of_kind(&report, "seat_waiting_room").is_empty());
    assert!(report.users_scanned > 0, "the run goes on");

    let req = env.rt.doctor_request(&[Job::LicenseCheck], None);
    let doc = doctor(&env.rt.doctor_deps(), &req).await;
    let check = doc
        .checks
        .iter()
        .find(|c| c.name == "permission:CloudLicensing.Read.All")
        .unwrap_or_else(|| panic!("{doc:#?}"));
    assert_eq!(check.verdict, Verdict::Warning, "{check:?}");
    // Granted (a new token): ok.
    let env = TestEnv::with_policy(with_waiting_room()).await;
    let doc = doctor(&env.rt.doctor_deps(), &req).await;
    assert!(
        doc.checks
            .iter()
            .any(|c| c.name == "permission:CloudLicensing.Read.All" && c.verdict == Verdict::Ok),
        "{doc:#?}"
    );
}

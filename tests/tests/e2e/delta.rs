//! Incremental checks (`/users/delta`) against full reads: for random sequences of tenant changes, a runtime that
//! reads only what changed reports exactly the findings of one that reads every user, run by run.

use chrono::Duration;
use licensewatch_core::policy::Policy;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::check_licenses::{CheckReport, check_licenses};
use serde_json::json;

use crate::helpers::*;

const FACULTY_GROUP: &str = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f01";

fn lcg(x: u64) -> u64 {
    x.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

async fn check(rt: &Runtime) -> CheckReport {
    check_licenses(&rt.check_deps(), &rt.tenant_run(), &rt.policy, &|_| {})
        .await
        .expect("check runs")
}

/// One random change the Graph delta tracks (a change of `licenseAssignmentStates` alone is not; group-based
/// licence errors are followed through the groups in error, as every run does).
async fn change(env: &TestEnv, users: &[(String, String)], x: u64, step: u64) -> String {
    let (id, upn) = &users[(x >> 8) as usize % users.len()];
    match x % 7 {
        0 => {
            env.control(
                &format!("/_sim/users/{id}/licenses"),
                json!({"remove": [E3]}),
            )
            .await;
            format!("remove E3 from {upn}")
        }
        1 => {
            env.control(
                &format!("/_sim/users/{id}/licenses"),
                json!({"add": [{"sku_id": E3}]}),
            )
            .await;
            format!("add E3 to {upn}")
        }
        2 => {
            env.control(
                &format!("/_sim/groups/{FACULTY_GROUP}/members"),
                json!({"add": [id]}),
            )
            .await;
            format!("{upn} joins the faculty group")
        }
        3 => {
            env.control(
                &format!("/_sim/groups/{FACULTY_GROUP}/members"),
                json!({"remove": [id]}),
            )
            .await;
            format!("{upn} leaves the faculty group")
        }
        4 => {
            let permanent = (x >> 4).is_multiple_of(2);
            let url = format!("{}/_sim/users/{id}?permanent={permanent}", env.sim.base_url);
            reqwest::Client::new()
                .delete(url)
                .send()
                .await
                .expect("delete");
            format!("delete {upn} (permanent: {permanent})")
        }
        5 => {
            let seats = (x >> 12) % 4;
            env.control(
                &format!("/_sim/skus/{FACULTY}/seats"),
                json!({"enabled": 40 + seats}),
            )
            .await;
            format!("faculty seats set to {}", 40 + seats)
        }
        _ => {
            let n = format!("{:012x}", x >> 16);
            let user = json!({"id": format!("0de1da00-0000-4000-8000-{n}"), "upn": format!("hire{step}-{n}@contoso.onmicrosoft.com"),
                "mail": format!("hire{step}-{n}@contoso.com"), "created": "2026-11-01T00:00:00Z",
                "licenses": if x.is_multiple_of(2) { json!([{"sku_id": E3}]) } else { json!([]) }});
            env.control("/_sim/users", user).await;
            format!("new user hire{step}-{n}")
        }
    }
}

#[tokio::test]
async fn delta_runs_report_the_findings_of_full_reads_for_random_changes() {
    for seed in [7u64, 42, 1_000_003] {
        let env = TestEnv::spawn().await;
        let full = Policy {
            check: licensewatch_core::policy::CheckPolicy {
                full_scan_hours: 0,
                ..Default::default()
            },
            ..Policy::default()
        };
        let (full_rt, _dir) = env.beside(full);
        assert_eq!(check(&env.rt).await.scan, "full");
        check(&full_rt).await;
        let mut x = lcg(seed);
        let mut story = Vec::new();
        for step in 0..6 {
            env.advance(Duration::hours(1)).await;
            let snapshot = env
                .rt
                .store
                .latest_snapshot(&env.sim.tenant_id)
                .await
                .expect("read")
                .expect("snapshot");
            let users: Vec<(String, String)> = snapshot
                .users
                .iter()
                .map(|u| (u.id().to_string(), u.upn().to_string()))
                .collect();
            for _ in 0..1 + x % 3 {
                x = lcg(x);
                story.push(change(&env, &users, x, step).await);
            }
            let delta = check(&env.rt).await;
            let reference = check(&full_rt).await;
            assert_eq!(delta.scan, "delta", "seed {seed}: {story:?}");
            assert_eq!(reference.scan, "full");
            assert_eq!(
                delta.users_scanned, reference.users_scanned,
                "seed {seed}: {story:?}"
            );
            assert_eq!(
                serde_json::to_value(&delta.findings).expect("json"),
                serde_json::to_value(&reference.findings).expect("json"),
                "seed {seed}, after {story:?}"
            );
        }
    }
}

#[tokio::test]
async fn an_expired_delta_token_makes_the_next_run_read_every_user_and_the_full_cadence_holds() {
    let env = TestEnv::spawn().await;
    assert_eq!(check(&env.rt).await.scan, "full");
    env.advance(Duration::hours(1)).await;
    assert_eq!(check(&env.rt).await.scan, "delta");
    assert_eq!(env.control("/_sim/delta/expire", json!({})).await, 200);
    env.advance(Duration::hours(1)).await;
    let r = check(&env.rt).await;
    assert_eq!(
        r.scan, "full",
        "Graph's syncStateNotFound asks for a full read"
    );
    env.advance(Duration::hours(1)).await;
    assert_eq!(check(&env.rt).await.scan, "delta");
    // A day after the last full read, the next run reads every user again.
    env.advance(Duration::hours(24)).await;
    assert_eq!(check(&env.rt).await.scan, "full");
}

#[tokio::test]
async fn change_tracking_starts_with_a_full_read_and_never_when_incremental_runs_are_off() {
    let delta_requests = |log: serde_json::Value| {
        log.as_array().map_or(0, |l| {
            l.iter()
                .filter(|r| {
                    r["path"]
                        .as_str()
                        .is_some_and(|p| p.starts_with("/v1.0/users/delta"))
                })
                .count()
        })
    };
    let env = TestEnv::spawn().await;
    check(&env.rt).await;
    assert_eq!(
        delta_requests(env.get("/_sim/requests").await),
        1,
        "one $deltatoken=latest before the full read"
    );

    let off = Policy {
        check: licensewatch_core::policy::CheckPolicy {
            full_scan_hours: 0,
            ..Default::default()
        },
        ..Policy::default()
    };
    let env = TestEnv::with_policy(off).await;
    for _ in 0..2 {
        assert_eq!(check(&env.rt).await.scan, "full");
        env.advance(Duration::hours(1)).await;
    }
    assert_eq!(delta_requests(env.get("/_sim/requests").await), 0);
}

/// Some tenants refuse `hasMembersWithLicenseErrors eq true`. A member who falls into a group-licensing error
/// between two runs is still found by the incremental run (delta does not track `licenseAssignmentStates`, so only
/// the groups' `membersWithLicenseErrors` tell): every licensing group is asked instead.
#[tokio::test]
async fn a_refused_license_error_filter_still_finds_new_members_in_error_on_a_delta_run() {
    let mut scenario = licensewatch_sim::Scenario::default_story();
    scenario.behaviour.refuse_license_error_filter = true;
    let env = TestEnv::with_scenario(scenario, Policy::default()).await;
    let first = check(&env.rt).await;
    assert_eq!(first.scan, "full");
    let newcomer = upn("raul.razo");
    assert!(for_user(&of_kind(&first, "license_assignment_error"), &newcomer).is_empty());
    // The faculty SKU has no seat left: joining the group fails for the newcomer.
    env.control(
        &format!("/_sim/groups/{FACULTY_GROUP}/members"),
        json!({"add": [newcomer]}),
    )
    .await;
    env.advance(Duration::hours(1)).await;
    let second = check(&env.rt).await;
    assert_eq!(second.scan, "delta");
    let errors = for_user(&of_kind(&second, "license_assignment_error"), &newcomer);
    assert!(
        !errors.is_empty(),
        "{:?}",
        of_kind(&second, "license_assignment_error")
    );
    let refused = env
        .requests()
        .await
        .into_iter()
        .filter(|r| r["status"] == 400 && r["path"] == "/v1.0/groups")
        .count();
    assert!(refused >= 2, "the filter was refused on both runs");
}

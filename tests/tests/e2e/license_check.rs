//! license-check end to end against the simulated tenant.

use chrono::{DateTime, Duration, Utc};
use licensewatch_core::domain::license_event::LicenseEvent;
use licensewatch_core::policy::Policy;
use serde_json::json;

use crate::helpers::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("time").to_utc()
}

fn event(
    user: &str,
    at: &str,
    added: &[&str],
    removed: &[&str],
    result: &str,
    id: &str,
) -> LicenseEvent {
    LicenseEvent {
        at: t(at),
        actor: Some(upn("it.admin")),
        user_id: None,
        user_principal_name: Some(upn(user)),
        added_sku_ids: added.iter().map(|s| s.to_string()).collect(),
        removed_sku_ids: removed.iter().map(|s| s.to_string()).collect(),
        result: result.into(),
        reason: (result == "failure")
            .then(|| "Subscription does not have any available licenses.".into()),
        source: "directory_audit".into(),
        record_ids: vec![id.into()],
        correlation_id: None,
    }
}

#[tokio::test]
async fn first_run_reports_every_snapshot_finding_with_its_fields() {
    let env = TestEnv::spawn().await;
    let r = env.check().await;
    assert!(r.first_run);
    assert_eq!(r.users_scanned, 42);

    // Never-licensed migrated mailbox near its deadline: created evidence, 30 days from creation.
    let ul = of_kind(&r, "unlicensed_mailbox");
    let megan = &for_user(&ul, &upn("megan.bowen"))[0];
    assert_eq!(megan["severity"], "critical");
    assert_eq!(megan["grace_evidence"], "created");
    assert_eq!(megan["case_type"], "never_licensed");
    assert_eq!(megan["grace_started_at"], "2026-10-24T10:00:00Z");
    assert_eq!(megan["access_ends_at"], "2026-11-23T10:00:00Z");
    assert_eq!(megan["data_deleted_at"], "2026-12-23T10:00:00Z");
    assert_eq!(megan["days_left"], 2);
    assert!(
        megan["user_id"].is_string()
            && megan["case_id"]
                .as_str()
                .is_some_and(|c| c.starts_with("gc-"))
    );
    // Weak evidence says so.
    let pradeep = &for_user(&ul, &upn("pradeep.gupta"))[0];
    assert_eq!(pradeep["grace_evidence"], "first_seen");
    assert!(
        pradeep["note"]
            .as_str()
            .is_some_and(|n| n.contains("earlier"))
    );
    // Never grace cases: disabled shared/room mailboxes, guests, accounts without mail, licensed users.
    for excluded in [
        "shared.reception",
        "room.boardroom",
        "svc.scanner",
        "alex.wilber",
        "former.employee",
    ] {
        assert!(
            for_user(&ul, &upn(excluded)).is_empty(),
            "{excluded} is not a grace case"
        );
    }
    assert!(ul.iter().all(|f| {
        !f["user_principal_name"]
            .as_str()
            .unwrap_or("")
            .contains("#EXT#")
    }));
    assert_eq!(
        ul.len(),
        8,
        "5 migrated + 1 removed + 2 teachers blocked by the group: {ul:#?}"
    );
    let shared: Vec<&str> = r
        .disabled_mailboxes
        .iter()
        .map(|m| m.user_principal_name.as_str())
        .collect();
    assert!(shared.contains(&upn("shared.reception").as_str()));

    // Group licensing: CountViolation on faculty, the student SKU "Other" explained by it.
    let errors = of_kind(&r, "license_assignment_error");
    let t11 = for_user(&errors, &upn("teacher11"));
    let other = t11.iter().find(|f| f["error"] == "Other").expect("Other");
    assert_eq!(other["sku_id"], STUDENT);
    assert_eq!(other["cause"]["sku_id"], FACULTY);
    assert_eq!(other["cause"]["error"], "CountViolation");
    assert_eq!(
        other["cause"]["sku_part_number"],
        "STANDARDWOFFPACK_FACULTY"
    );
    assert_eq!(other["group_display_name"], "Faculty A1 licensing");
    assert!(other["assigned_by_group"].is_string());
    let cv = t11
        .iter()
        .find(|f| f["error"] == "CountViolation")
        .expect("cv");
    assert!(cv["cause"].is_null());
    let adele = &for_user(&errors, &upn("adele.vance"))[0];
    assert_eq!(adele["error"], "MutuallyExclusiveViolation");

    // SKU capacity: exhausted with users waiting is critical; lapsing and low SKUs are warnings.
    let caps = of_kind(&r, "sku_capacity");
    let fac = caps
        .iter()
        .find(|f| f["sku_id"] == FACULTY)
        .expect("faculty");
    assert_eq!(
        (
            fac["severity"].as_str(),
            fac["available"].as_i64(),
            fac["users_in_count_violation"].as_i64()
        ),
        (Some("critical"), Some(0), Some(2))
    );
    assert_eq!(fac["sku_part_number"], "STANDARDWOFFPACK_FACULTY");
    let ems = caps
        .iter()
        .find(|f| f["sku_part_number"] == "EMS")
        .expect("ems");
    assert_eq!(
        (ems["severity"].as_str(), ems["warning"].as_i64()),
        (Some("warning"), Some(15))
    );
    let e3 = caps.iter().find(|f| f["sku_id"] == E3).expect("e3 low");
    assert_eq!(e3["available"], 5);
    assert!(
        caps.iter()
            .all(|f| f["sku_part_number"] != "POWER_BI_STANDARD")
    );

    let disabled = of_kind(&r, "licensed_disabled_account");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["user_principal_name"], upn("former.employee"));
    assert_eq!(disabled[0]["sku_ids"], json!([E3]));
    // No diff findings on a first run.
    assert!(of_kind(&r, "license_removed").is_empty() && of_kind(&r, "license_added").is_empty());
}

#[tokio::test]
async fn second_run_reports_exactly_the_changes_the_tenant_made() {
    let env = TestEnv::spawn().await;
    env.check().await;
    env.advance(Duration::hours(1)).await;
    assert_eq!(
        env.control(
            &format!("/_sim/users/{}/licenses", upn("alex.wilber")),
            json!({"remove": [E3], "actor": upn("it.admin")})
        )
        .await,
        200
    );
    assert_eq!(
        env.control(
            &format!("/_sim/users/{}/licenses", upn("megan.bowen")),
            json!({"add": [{"sku_id": E3}]})
        )
        .await,
        200
    );
    env.advance(Duration::hours(1)).await;
    let r = env.check().await;
    assert!(!r.first_run);
    let removed = of_kind(&r, "license_removed");
    let added = of_kind(&r, "license_added");
    assert_eq!(removed.len(), 1, "{removed:#?}");
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(
        (
            removed[0]["user_principal_name"].as_str(),
            removed[0]["sku_id"].as_str()
        ),
        (Some(upn("alex.wilber").as_str()), Some(E3))
    );
    assert_eq!(removed[0]["explained"], false, "no audit event stored yet");
    assert_eq!(removed[0]["severity"], "warning");
    assert_eq!(added[0]["user_principal_name"], upn("megan.bowen"));
    assert_eq!(added[0]["sku_part_number"], "ENTERPRISEPACK");

    // Megan's case closed; Alex's mailbox lost Exchange: a removal case seen by the snapshot diff, access gone.
    assert_eq!(r.grace_cases.closed, 1);
    let ul = of_kind(&r, "unlicensed_mailbox");
    assert!(for_user(&ul, &upn("megan.bowen")).is_empty());
    let alex = &for_user(&ul, &upn("alex.wilber"))[0];
    assert_eq!(alex["grace_evidence"], "snapshot_diff");
    assert_eq!(alex["case_type"], "license_removed");
    assert_eq!(
        alex["access_ends_at"], alex["grace_started_at"],
        "without delayed delicensing access ends at once"
    );
    assert_eq!(alex["severity"], "critical");
    let closed = env
        .rt
        .store
        .grace_cases(&env.sim.tenant_id, false)
        .await
        .expect("cases");
    let megan = closed
        .iter()
        .find(|c| c.user_principal_name == upn("megan.bowen"))
        .expect("case kept");
    assert!(megan.closed_at.is_some());
    assert!(
        megan
            .close_reason
            .as_deref()
            .is_some_and(|r| r.contains("Exchange"))
    );

    // History says since when Megan really has E3 (not Graph's reset dates).
    let h = env
        .rt
        .store
        .history(&env.sim.tenant_id, &upn("megan.bowen"))
        .await
        .expect("history");
    assert_eq!(h.len(), 1);
    assert_eq!(
        (h[0].change.as_str(), h[0].baseline, h[0].at),
        ("added", false, env.now())
    );
    let h = env
        .rt
        .store
        .history(&env.sim.tenant_id, &upn("alex.wilber"))
        .await
        .expect("history");
    assert!(h.iter().any(|e| e.baseline) && h.iter().any(|e| e.change == "removed"));

    // A third run with no change reports no diff and keeps case ids stable.
    let r3 = env.check().await;
    assert!(of_kind(&r3, "license_removed").is_empty() && of_kind(&r3, "license_added").is_empty());
    let ids = |r: &licensewatch_core::usecases::check_licenses::CheckReport| {
        let mut v: Vec<String> = of_kind(r, "unlicensed_mailbox")
            .iter()
            .map(|f| f["case_id"].as_str().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids(&r), ids(&r3));
}

#[tokio::test]
async fn audit_events_are_the_strongest_evidence_and_explain_changes() {
    let env = TestEnv::spawn().await;
    let tenant = env.sim.tenant_id.clone();
    env.rt
        .store
        .put_license_events(
            &tenant,
            &[
                event(
                    "megan.bowen",
                    "2026-10-24T10:12:00Z",
                    &[E3],
                    &[],
                    "failure",
                    "f1",
                ),
                event(
                    "pradeep.gupta",
                    "2026-11-19T14:03:00Z",
                    &[],
                    &[E3],
                    "success",
                    "r1",
                ),
            ],
        )
        .await
        .expect("events");
    let r = env.check().await;
    let ul = of_kind(&r, "unlicensed_mailbox");
    let megan = &for_user(&ul, &upn("megan.bowen"))[0];
    assert_eq!(megan["grace_evidence"], "audit_failed_assignment");
    assert_eq!(megan["access_ends_at"], "2026-11-23T10:12:00Z");
    let pradeep = &for_user(&ul, &upn("pradeep.gupta"))[0];
    assert_eq!(pradeep["grace_evidence"], "audit_removal");
    assert_eq!(pradeep["case_type"], "license_removed");
    assert_eq!(pradeep["access_ends_at"], "2026-11-19T14:03:00Z");
    assert_eq!(pradeep["data_deleted_at"], "2026-12-19T14:03:00Z");
    assert_eq!(pradeep["days_left"], 28);
    assert_eq!(pradeep["severity"], "critical");

    // A change between runs with a matching audit event is explained, with its actor.
    env.advance(Duration::hours(1)).await;
    env.control(
        &format!("/_sim/users/{}/licenses", upn("joni.sherman")),
        json!({"remove": [E3]}),
    )
    .await;
    env.rt
        .store
        .put_license_events(
            &tenant,
            &[event(
                "joni.sherman",
                "2026-11-21T10:00:00Z",
                &[],
                &[E3],
                "success",
                "r2",
            )],
        )
        .await
        .expect("events");
    env.advance(Duration::hours(1)).await;
    let r = env.check().await;
    let removed = of_kind(&r, "license_removed");
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["explained"], true);
    assert_eq!(removed[0]["actor"], upn("it.admin"));
    assert_eq!(removed[0]["severity"], "info");
}

#[tokio::test]
async fn delayed_delicensing_keeps_access_for_thirty_days() {
    let mut policy = Policy::default();
    policy.tenant.delayed_delicensing = true;
    let env = TestEnv::with_policy(policy).await;
    env.rt
        .store
        .put_license_events(
            &env.sim.tenant_id,
            &[event(
                "pradeep.gupta",
                "2026-11-19T14:03:00Z",
                &[],
                &[E3],
                "success",
                "r1",
            )],
        )
        .await
        .expect("events");
    let r = env.check().await;
    let p = &for_user(&of_kind(&r, "unlicensed_mailbox"), &upn("pradeep.gupta"))[0];
    assert_eq!(p["access_ends_at"], "2026-12-19T14:03:00Z");
    assert_eq!(p["data_deleted_at"], "2027-01-18T14:03:00Z");
    assert_eq!(p["days_left"], 28);
    assert_eq!(p["severity"], "warning");
    assert_eq!(p["case_type"], "license_removed");
    // The admins' 21-day notice shows both clocks: access to the mailbox, then its data.
    let mut env = env;
    env.rt.policy.notify = notify_policy().notify;
    env.advance(Duration::days(7)).await;
    env.check().await;
    env.notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    let mail: Vec<String> = env.mail().await.iter().map(|m| m.to_string()).collect();
    let pradeep = mail
        .iter()
        .find(|m| m.contains(&upn("pradeep.gupta")))
        .expect("a notice about pradeep");
    assert!(
        pradeep.contains("access ends 2026-12-19 14:03 UTC")
            && pradeep.contains("data deleted 2027-01-18 14:03 UTC"),
        "{pradeep}"
    );
}

async fn mass_removal(n: usize) -> Vec<serde_json::Value> {
    let mut policy = Policy::default();
    policy.check.mass_delicensing_min_users = 3;
    policy.check.mass_delicensing_percent = 100.0;
    let env = TestEnv::with_policy(policy).await;
    env.check().await;
    for nick in [
        "brian.johnson",
        "cameron.white",
        "raul.razo",
        "patti.fernandez",
    ]
    .iter()
    .take(n)
    {
        env.control(
            &format!("/_sim/users/{}/licenses", upn(nick)),
            json!({"remove": [E3]}),
        )
        .await;
    }
    env.advance(Duration::hours(1)).await;
    of_kind(&env.check().await, "mass_delicensing")
}

#[tokio::test]
async fn mass_delicensing_fires_at_the_threshold_and_not_below() {
    assert!(mass_removal(2).await.is_empty());
    let m = mass_removal(3).await;
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0]["removed_count"].as_u64(), m[0]["threshold"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(m[0]["severity"], "critical");
    assert_eq!(m[0]["sample_users"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn throttling_during_paging_is_waited_out() {
    let env = TestEnv::spawn().await;
    env.control(
        "/_sim/faults",
        json!({"route": "/v1.0/users", "kind": "throttle", "retry_after": "1", "count": 2}),
    )
    .await;
    let started = std::time::Instant::now();
    let r = env.check().await;
    assert_eq!(r.users_scanned, 42);
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let throttled = env
        .requests()
        .await
        .iter()
        .filter(|q| q["status"] == 429)
        .count();
    assert_eq!(throttled, 2);
}

#[tokio::test]
async fn auto_reprocess_queues_users_once_seats_are_free() {
    let mut policy = Policy::default();
    policy.remediation.auto_reprocess = true;
    let env = TestEnv::with_policy(policy).await;
    let r = env.check().await;
    assert_eq!(r.remediations_queued, 0, "no free faculty seats yet");
    env.control(
        &format!("/_sim/skus/{FACULTY}/seats"),
        json!({"enabled": 11}),
    )
    .await;
    let r = env.check().await;
    assert_eq!(r.remediations_queued, 1, "one free seat, one request");
    let pending = env
        .rt
        .store
        .pending(&env.sim.tenant_id)
        .await
        .expect("queue");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].action, "reprocess");
    // The same hour does not queue the same user twice.
    env.check().await;
    assert_eq!(
        env.rt
            .store
            .pending(&env.sim.tenant_id)
            .await
            .expect("queue")
            .len(),
        1
    );
}

#[tokio::test]
async fn a_lapsing_annual_subscription_is_raised_and_a_renewing_monthly_one_is_not() {
    let env = TestEnv::spawn().await;
    let now = env.now();
    let state = env.get("/_sim/state").await;
    let e3 = state["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|k| k["sku_id"] == E3)
        .expect("E3")
        .clone();
    let consumed = e3["consumed"].as_i64().expect("consumed");
    // E3 is bought twice: monthly (renews itself in 9 days) for all users but 5, and annually for 10 more seats,
    // expired and in its grace period: suspended in 5 days unless renewed.
    assert_eq!(
        env.control(
            &format!("/_sim/skus/{E3}/seats"),
            json!({"enabled": consumed - 5, "warning": 10})
        )
        .await,
        204
    );
    let monthly = "6fd2c87f-0000-4000-8000-000000000000";
    let annual = "6fd2c87f-0000-4000-8000-0000000000a1";
    for (id, status, total, days) in [
        (monthly, "Enabled", consumed - 5, 9),
        (annual, "Warning", 10, 5),
    ] {
        let spec = json!({"id": id, "sku_id": E3, "status": status, "total_licenses": total,
            "next_lifecycle": (now + Duration::days(days)).to_rfc3339()});
        assert_eq!(
            env.control("/_sim/directory/subscriptions", spec).await,
            204
        );
    }
    let report = env.check().await;
    let lapsing: Vec<_> = of_kind(&report, "subscription_lapsing")
        .into_iter()
        .filter(|f| f["sku_id"] == E3)
        .collect();
    assert_eq!(lapsing.len(), 1, "{lapsing:?}");
    assert_eq!(lapsing[0]["subscription_id"], annual);
    assert_eq!(lapsing[0]["users_affected"], 5, "{}", lapsing[0]);
    assert_eq!(lapsing[0]["severity"], "critical", "{}", lapsing[0]);
    assert!(
        of_kind(&report, "unused_seats_before_renewal")
            .iter()
            .all(|f| f["subscription_id"] != monthly),
        "every monthly seat is used"
    );
    let open = env
        .rt
        .store
        .open_alerts(&env.sim.tenant_id)
        .await
        .expect("alerts");
    assert!(
        open.iter()
            .any(|a| a.condition == format!("subscription_lapsing:{annual}")),
        "{open:?}"
    );
}

#[tokio::test]
async fn users_paying_twice_for_a_service_are_found_with_the_licence_to_remove() {
    let mut policy = Policy::default();
    policy.prices.currency = "EUR".into();
    policy
        .prices
        .monthly
        .insert("STANDARDWOFFPACK_FACULTY".into(), 2.5);
    let env = TestEnv::with_policy(policy).await;
    // Who holds both A1 SKUs, as Graph lists them.
    let mut both = std::collections::BTreeSet::new();
    let deps = env.rt.check_deps();
    let mut pages = deps.graph.users();
    while let Some(page) = pages.next_page().await.expect("users") {
        for u in page {
            let held = |sku: &str| u.assigned_licenses.iter().any(|l| l.sku_id == sku);
            if held(FACULTY) && held(STUDENT) {
                both.insert(u.user_principal_name.to_ascii_lowercase());
            }
        }
    }
    assert!(!both.is_empty(), "the story has users holding both A1 SKUs");
    let report = env.check().await;
    let found = of_kind(&report, "overlapping_licenses");
    let users: std::collections::BTreeSet<String> = found
        .iter()
        .map(|f| {
            f["user_principal_name"]
                .as_str()
                .expect("upn")
                .to_ascii_lowercase()
        })
        .collect();
    assert_eq!(users, both);
    for f in &found {
        // The same services twice (only one priced): the later by id goes, nothing is lost.
        assert_eq!(f["remove_sku_id"], FACULTY, "{f}");
        assert_eq!(f["keep_sku_id"], STUDENT, "{f}");
        assert_eq!(f["covered"], true, "{f}");
        assert_eq!(f["monthly_saving"], 2.5, "{f}");
        assert!(
            f["shared_services"]
                .to_string()
                .contains("Exchange Online mailbox"),
            "{f}"
        );
        assert_eq!(f["severity"], "info");
    }
}

/// Access tokens live 60-90 minutes: a run after the tenant's clock has moved past the cached token's lifetime
/// meets 401, takes a new token once and goes on.
#[tokio::test]
async fn a_token_that_expired_since_the_last_run_is_renewed_and_the_run_goes_on() {
    let env = TestEnv::spawn().await;
    env.check().await;
    env.advance(chrono::Duration::hours(2)).await;
    let report = env.check().await;
    assert!(report.users_scanned > 0);
    let log = env.requests().await;
    let expired = log
        .iter()
        .position(|r| r["status"] == 401)
        .expect("the old token was refused");
    assert!(
        log[expired..].iter().any(|r| r["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/oauth2/v2.0/token"))),
        "a new token was taken"
    );
}

/// Certificate sign-in as Entra checks it: the assertion licensewatch signs with the certificate registered on the
/// app gets a token; with another certificate registered, Entra's AADSTS700027 comes back, named in the error.
#[tokio::test]
async fn certificate_sign_in_is_checked_as_entra_checks_it() {
    use licensewatch_core::adapters::auth::Audience;
    use licensewatch_core::adapters::credentials::Microsoft;
    use licensewatch_core::config::Settings;
    use licensewatch_core::domain::retry::RetryPolicy;
    const APP: &str = "5e1f5e1f-0000-4000-8000-00000000ce27";
    let key_and_cert = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/tests/fixtures/test-client-cert.pem"
    );
    let pem = std::fs::read_to_string(key_and_cert).expect("fixture");
    let cert = &pem[pem.find("-----BEGIN CERTIFICATE-----").expect("cert")..];
    let signed_in = |registered: String| async move {
        let mut scenario = licensewatch_sim::Scenario::default_story();
        scenario.app = Some(licensewatch_sim::scenario::AppRegistration {
            client_id: APP.into(),
            client_secret: "not-used-here".into(),
            display_name: "licensewatch".into(),
            certificates: vec![registered],
        });
        let sim = licensewatch_sim::start(scenario, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sim");
        let (base, tenant) = (sim.base_url.clone(), sim.tenant_id.clone());
        let settings = Settings::from_lookup(move |k| match k {
            "LICENSEWATCH_TENANT_ID" => Some(tenant.clone()),
            "LICENSEWATCH_CLIENT_ID" => Some(APP.into()),
            "LICENSEWATCH_CLIENT_CERT" => Some(key_and_cert.into()),
            "LICENSEWATCH_LOGIN_URL" | "LICENSEWATCH_GRAPH_URL" | "LICENSEWATCH_MANAGE_URL" => {
                Some(base.clone())
            }
            _ => None,
        })
        .expect("settings");
        let ms = Microsoft::connect(&settings, RetryPolicy::quick(), "")
            .await
            .expect("the certificate reads");
        ms.tokens.token(Audience::Graph).await.map(|_| ())
    };
    signed_in(cert.to_string())
        .await
        .expect("the registered certificate signs in");
    let other = licensewatch_sim::TlsIdentity::generate().expect("another certificate");
    let err = signed_in(other.ca_pem.clone())
        .await
        .expect_err("a certificate that is not registered");
    assert!(err.to_string().contains("AADSTS700027"), "{err}");
}

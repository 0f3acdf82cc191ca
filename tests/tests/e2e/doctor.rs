//! `licensewatch doctor` against the simulated tenant: a ready tenant, then each fault an admin meets on day one
//! (a permission not granted, consent missing, a wrong secret, a disabled feed, no Entra ID P1, a sender outside the
//! application access policy), each with its own verdict; and the same check as a Lambda event.

use licensewatch_core::domain::doctor::{DoctorReport, Job, Verdict};
use licensewatch_core::usecases::doctor::doctor;
use licensewatch_sim::Scenario;
use licensewatch_sim::scenario::AppRegistration;
use serde_json::json;

use crate::helpers::*;

async fn run(env: &TestEnv, send_test_mail: Option<&str>) -> DoctorReport {
    let req = env
        .rt
        .doctor_request(&Job::ALL, send_test_mail.map(str::to_string));
    doctor(&env.rt.doctor_deps(), &req).await
}

/// The verdict of the check named `name` (panics with the report when there is none).
fn verdict(r: &DoctorReport, name: &str) -> Verdict {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {r:#?}"))
        .verdict
}

fn missing(r: &DoctorReport) -> Vec<&str> {
    r.checks
        .iter()
        .filter(|c| c.verdict == Verdict::Missing)
        .map(|c| c.name.as_str())
        .collect()
}

#[tokio::test]
async fn a_ready_tenant_passes_every_check_a_function_needs() {
    let env = TestEnv::with_policy(notify_policy()).await;
    // A tenant at work: a licence change, published to the Management Activity API within two hours.
    let who = upn("teacher01");
    env.control(
        &format!("/_sim/users/{who}/licenses"),
        json!({"add": [{"sku_id": E3}]}),
    )
    .await;
    env.advance(chrono::Duration::hours(2)).await;
    let writes_before = env.get("/_sim/writes").await;
    let r = run(&env, None).await;
    assert!(r.healthy(), "{r:#?}");
    for name in [
        "token",
        "permission:User.Read.All",
        "permission:Organization.Read.All",
        "permission:GroupMember.Read.All",
        "permission:LicenseAssignment.Read.All",
        "permission:LicenseAssignment.ReadWrite.All",
        "permission:AuditLog.Read.All",
        "permission:Reports.Read.All",
        "permission:Mail.Send",
        "mail_sender",
        "premium",
        "delta",
        "management:Audit.AzureActiveDirectory",
        "state_store",
        "archive",
    ] {
        assert_eq!(verdict(&r, name), Verdict::Ok, "{name}: {r:#?}");
    }
    // Sending is the only proof of the application access policy: not done unless asked.
    assert_eq!(verdict(&r, "mail_policy"), Verdict::Warning);
    assert_eq!(
        env.get("/_sim/writes").await,
        writes_before,
        "doctor writes nothing"
    );
    assert!(
        env.get("/_sim/mail")
            .await
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

#[tokio::test]
async fn a_permission_not_granted_is_named_and_the_others_pass() {
    let env = TestEnv::with_policy(notify_policy()).await;
    let granted: Vec<&str> = [
        "User.Read.All",
        "Organization.Read.All",
        "GroupMember.Read.All",
        "LicenseAssignment.Read.All",
        "Reports.Read.All",
        "Mail.Send",
    ]
    .to_vec();
    assert_eq!(
        env.control("/_sim/permissions", json!({"granted": granted}))
            .await,
        204
    );
    let r = run(&env, None).await;
    assert!(!r.healthy());
    assert_eq!(
        missing(&r),
        [
            "permission:AuditLog.Read.All",
            "permission:LicenseAssignment.ReadWrite.All"
        ],
        "{r:#?}"
    );
    let fix = r
        .checks
        .iter()
        .find(|c| c.name == "permission:AuditLog.Read.All")
        .and_then(|c| c.fix.clone())
        .expect("fix");
    assert!(fix.contains("Grant admin consent"), "{fix}");
    assert_eq!(verdict(&r, "permission:User.Read.All"), Verdict::Ok);
}

#[tokio::test]
async fn consent_missing_in_the_tenant_says_who_must_consent() {
    let env = TestEnv::with_policy(notify_policy()).await;
    assert_eq!(
        env.control("/_sim/consent", json!({"revoked": true})).await,
        204
    );
    let r = run(&env, None).await;
    assert_eq!(missing(&r), ["token"], "{r:#?}");
    let token = &r.checks[0];
    assert!(token.detail.contains("no consent"), "{token:?}");
    assert!(
        token
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("adminconsent"))
    );
}

#[tokio::test]
async fn a_wrong_client_secret_is_told_in_words() {
    let mut scenario = Scenario::default_story();
    scenario.app = Some(AppRegistration {
        client_id: "0f0f0f0f-1111-2222-3333-444455556666".into(),
        client_secret: "the-real-secret".into(),
        display_name: "licensewatch".into(),
        certificates: vec![],
    });
    let env = TestEnv::with_scenario(scenario, notify_policy()).await;
    let r = run(&env, None).await;
    assert_eq!(missing(&r), ["token"], "{r:#?}");
    assert!(r.checks[0].detail.contains("wrong client secret"), "{r:#?}");
}

#[tokio::test]
async fn a_disabled_feed_is_missing_and_a_tenant_without_p1_is_a_warning() {
    let mut scenario = Scenario::default_story();
    scenario.premium = Some(false);
    let env = TestEnv::with_scenario(scenario, notify_policy()).await;
    assert_eq!(
        env.control(
            "/_sim/feed/disabled",
            json!({"content_type": "Audit.AzureActiveDirectory", "by": "Microsoft"})
        )
        .await,
        204
    );
    let r = run(&env, None).await;
    assert_eq!(
        missing(&r),
        ["management:Audit.AzureActiveDirectory"],
        "{r:#?}"
    );
    assert_eq!(verdict(&r, "premium"), Verdict::Warning);
    let premium = r
        .checks
        .iter()
        .find(|c| c.name == "premium")
        .expect("premium");
    assert!(premium.detail.contains("7 days"), "{premium:?}");
}

#[tokio::test]
async fn a_sender_outside_the_application_access_policy_fails_the_test_mail() {
    let env = TestEnv::with_policy(notify_policy()).await;
    assert_eq!(
        env.control(
            "/_sim/permissions",
            json!({"mail_senders": [upn("somebody.else")]})
        )
        .await,
        204
    );
    let r = run(&env, Some("it-team@contoso.com")).await;
    assert_eq!(missing(&r), ["mail_policy"], "{r:#?}");
    // Inside the policy, the test mail goes out.
    assert_eq!(
        env.control(
            "/_sim/permissions",
            json!({"mail_senders": [upn("it.admin")]})
        )
        .await,
        204
    );
    let r = run(&env, Some("it-team@contoso.com")).await;
    assert_eq!(verdict(&r, "mail_policy"), Verdict::Ok, "{r:#?}");
    let mail = env.get("/_sim/mail").await;
    assert_eq!(mail.as_array().map(Vec::len), Some(1), "{mail}");
}

#[tokio::test]
async fn any_function_answers_a_doctor_event_with_what_it_needs() {
    let env = TestEnv::with_policy(notify_policy()).await;
    let deps = licensewatch_core::runtime::tenants::TenantRuntimes::new(env.into_runtime());
    let out = audit_fetch::handle_event(&deps, json!({"doctor": true}))
        .await
        .expect("doctor");
    assert_eq!(out["healthy"], true, "{out}");
    assert_eq!(out["report"]["jobs"], json!(["audit-fetch"]));
    let names: Vec<&str> = out["report"]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"permission:AuditLog.Read.All"), "{names:?}");
    assert!(
        !names.contains(&"permission:Mail.Send"),
        "audit-fetch does not send: {names:?}"
    );
}

#[tokio::test]
async fn real_time_detection_is_checked_when_it_is_configured() {
    use licensewatch_core::domain::change_notifications::SubscriptionRecord;
    let env = TestEnv::with_vars(
        Scenario::default_story(),
        notify_policy(),
        None,
        &[
            (
                "LICENSEWATCH_NOTIFICATION_CLIENT_STATE",
                "doctor-client-state-0123456789abcdef0123".into(),
            ),
            (
                "LICENSEWATCH_NOTIFICATION_URL",
                "https://licensewatch.example/graph/notifications".into(),
            ),
        ],
    )
    .await;
    let r = run(&env, None).await;
    assert_eq!(
        verdict(&r, "change_notifications"),
        Verdict::Warning,
        "not subscribed yet"
    );
    let now = env.now();
    let mut record = SubscriptionRecord {
        tenant_id: env.sim.tenant_id.clone(),
        subscription_id: "5d6c0f4e-0000-4000-8000-000000000001".into(),
        notification_url: "https://licensewatch.example/graph/notifications".into(),
        expires_at: now + chrono::Duration::days(20),
        created_at: now - chrono::Duration::days(9),
        renewed_at: None,
        last_notification_at: None,
    };
    env.rt.store.save_subscription(&record).await.expect("save");
    assert_eq!(
        verdict(&run(&env, None).await, "change_notifications"),
        Verdict::Ok
    );
    record.expires_at = now - chrono::Duration::hours(1);
    env.rt.store.save_subscription(&record).await.expect("save");
    let r = run(&env, None).await;
    assert_eq!(missing(&r), ["change_notifications"], "{r:#?}");
}

#[tokio::test]
async fn on_aws_the_table_bucket_and_queues_are_reached() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(notify_policy(), &aws).await;
    let r = run(&env, None).await;
    for name in [
        "state_store",
        "archive",
        "queue:remediations",
        "queue:tenants",
    ] {
        assert_eq!(verdict(&r, name), Verdict::Ok, "{name}: {r:#?}");
    }
    // A queue that is not there (deleted, or a wrong URL) is named.
    let gone = format!("{}-gone", aws.queue_url);
    let broken = TestEnv::with_vars(
        Scenario::default_story(),
        notify_policy(),
        Some(&aws),
        &[("LICENSEWATCH_TENANT_QUEUE_URL", gone)],
    )
    .await;
    let r = run(&broken, None).await;
    assert_eq!(missing(&r), ["queue:tenants"], "{r:#?}");
}

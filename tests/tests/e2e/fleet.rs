//! A managed-service provider's fleet on AWS (moto): three customer tenants served by one deployment, where one has
//! revoked the app's consent and one is throttled. Every scheduled function fans out one message per tenant; each
//! tenant runs from its own message, into its own partition of the archive and state; the throttled tenant is
//! retried alone; the one without consent is reported (one alert to the deployment's admins) and not retried.

use licensewatch_core::adapters::aws::sqs::SqsQueue;
use licensewatch_core::domain::kinds::AlertKind;
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::policy::TenantEntry;
use licensewatch_core::ports::archive::{AuditArchive, decode_batch};
use licensewatch_sim::Scenario;
use serde_json::{Value, json};

use crate::helpers::*;

const OWN_APP: &str = "22222222-3333-4444-5555-666666666666";

/// Three copies of the default story under their own tenant ids and domains: the same audit record ids in each, as
/// nothing stops two customers' logs from sharing one.
fn customers() -> Vec<Scenario> {
    (1..=3u32)
        .map(|i| {
            let mut s = Scenario::default_story();
            s.tenant_id = format!("{i:08x}-5eed-4000-8000-{i:012x}");
            s.domain = format!("customer{i:03}.onmicrosoft.com");
            s
        })
        .collect()
}

/// Queued tenant messages with SQS-like ids: (message id, body); the tenant of each.
fn with_ids(messages: &[(String, String)]) -> Vec<(String, String, String)> {
    messages
        .iter()
        .enumerate()
        .map(|(i, (_, body))| {
            let tenant: Value = serde_json::from_str(body).expect("json");
            (
                format!("m{i}"),
                body.clone(),
                tenant["tenant_id"].as_str().expect("tenant").to_string(),
            )
        })
        .collect()
}

fn event(messages: &[(String, String, String)]) -> Value {
    let mut ev = sqs_event(
        &messages
            .iter()
            .map(|(_, b, _)| (String::new(), b.clone()))
            .collect::<Vec<_>>(),
    );
    for (i, (id, _, _)) in messages.iter().enumerate() {
        ev["Records"][i]["messageId"] = json!(id);
    }
    ev
}

fn failures(out: &Value) -> Vec<String> {
    out["batchItemFailures"]
        .as_array()
        .expect("failures")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().expect("id").to_string())
        .collect()
}

async fn archived(rt: &licensewatch_core::runtime::Runtime) -> (usize, usize) {
    let keys = rt.archive.keys("directory_audit/").await.expect("keys");
    let mut records = 0;
    for k in &keys {
        records += decode_batch(&rt.archive.get(k).await.expect("get"))
            .expect("decode")
            .len();
    }
    (keys.len(), records)
}

#[tokio::test]
async fn every_function_serves_each_customer_alone_the_throttled_one_is_retried_and_the_revoked_one_reported()
 {
    let aws = AwsResources::create().await;
    let mut scenarios = customers();
    // The second customer only lets in an app registration of its own, whose secret the MSP keeps in Secrets
    // Manager for that tenant alone.
    scenarios[1].app = Some(licensewatch_sim::scenario::AppRegistration {
        client_id: OWN_APP.into(),
        client_secret: "customer-two-only".into(),
        display_name: "licensewatch (customer 2)".into(),
        certificates: vec![],
    });
    let ids: Vec<String> = scenarios.iter().map(|s| s.tenant_id.clone()).collect();
    let own_secret = aws_sdk_secretsmanager::Client::new(&aws.conf)
        .create_secret()
        .name(format!("licensewatch/tenants/{}-{}", ids[1], uuid::Uuid::new_v4().simple()))
        .secret_string(
            json!({"LICENSEWATCH_CLIENT_ID": OWN_APP, "LICENSEWATCH_CLIENT_SECRET": "customer-two-only"})
                .to_string(),
        )
        .send()
        .await
        .expect("secret");
    let mut policy = notify_policy();
    policy.tenants = ids
        .iter()
        .map(|id| TenantEntry {
            id: id.clone(),
            ..Default::default()
        })
        .collect();
    policy.tenants[1].secret_arn = own_secret.arn().expect("arn").to_string();
    let env = TestEnv::fleet(scenarios, policy, Some(&aws)).await;
    let (home, throttled, revoked) = (&ids[0], &ids[1], &ids[2]);
    assert_eq!(
        env.control_for(revoked, "/_sim/consent", json!({"revoked": true}))
            .await,
        204
    );
    // The second customer's every request is throttled (Microsoft limits each tenant and app on its own).
    let throttle =
        json!({"route": "/", "kind": "throttle", "retry_after": "0", "tenant": throttled});
    assert_eq!(env.control_for(home, "/_sim/faults", throttle).await, 204);
    let queue = SqsQueue::new(&aws.conf, &aws.tenant_queue_url);
    let base = env.sim.base_url.clone();
    // The three functions keep the same thing between invocations: the home runtime and the tenants met.
    let deps = license_check::Deps::new(env.into_runtime());
    let check = &deps;
    let schedule = serde_json::to_value(schedule()).expect("json");

    // license-check: one message per tenant.
    let out = license_check::handle_event(check, schedule.clone())
        .await
        .expect("fan-out");
    assert_eq!(out["fanned_out"], 3, "{out}");
    let messages = with_ids(&drain(&queue).await);
    let mut tenants: Vec<&str> = messages.iter().map(|(_, _, t)| t.as_str()).collect();
    tenants.sort();
    assert_eq!(tenants, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let out = license_check::handle_event(check, event(&messages))
        .await
        .expect("batch");
    let retried: Vec<&str> = messages
        .iter()
        .filter(|(id, _, _)| failures(&out).contains(id))
        .map(|(_, _, t)| t.as_str())
        .collect();
    assert_eq!(
        retried,
        vec![throttled.as_str()],
        "only the throttled tenant is redelivered; the revoked one is not retried: {out}"
    );
    let store = check.home.store.clone();
    assert_eq!(store.runs(home, 10).await.expect("runs").len(), 1);
    assert!(store.runs(revoked, 10).await.expect("runs").is_empty());
    let status = |t: &str, job: Job| {
        let store = store.clone();
        let t = t.to_string();
        async move {
            store
                .job_statuses(&t)
                .await
                .expect("statuses")
                .into_iter()
                .find(|s| s.job == job)
        }
    };
    let s = status(revoked, Job::LicenseCheck).await.expect("recorded");
    assert!(s.consent_missing(), "{s:?}");
    let s = status(throttled, Job::LicenseCheck)
        .await
        .expect("recorded");
    assert!(s.failure.is_some() && !s.consent_missing(), "{s:?}");
    assert!(
        status(home, Job::LicenseCheck)
            .await
            .expect("recorded")
            .failure
            .is_none()
    );

    // The throttling ends; SQS delivers the throttled tenant's message again.
    assert_eq!(
        reqwest::Client::new()
            .delete(format!("{base}/_sim/faults"))
            .send()
            .await
            .expect("clear")
            .status()
            .as_u16()
            / 100,
        2
    );
    let again: Vec<_> = messages
        .iter()
        .filter(|(_, _, t)| t == throttled)
        .cloned()
        .collect();
    let out = license_check::handle_event(check, event(&again))
        .await
        .expect("redelivery");
    assert!(failures(&out).is_empty(), "{out}");
    assert_eq!(store.runs(throttled, 10).await.expect("runs").len(), 1);
    assert!(
        status(throttled, Job::LicenseCheck)
            .await
            .expect("recorded")
            .failure
            .is_none()
    );

    // audit-fetch fans out the same way; each customer's records land in its own partition.
    let audit = &deps;
    let out = audit_fetch::handle_event(audit, schedule.clone())
        .await
        .expect("fan-out");
    assert_eq!(out["fanned_out"], 3, "{out}");
    let messages = with_ids(&drain(&queue).await);
    assert_eq!(messages.len(), 3);
    let out = audit_fetch::handle_event(audit, event(&messages))
        .await
        .expect("batch");
    assert!(failures(&out).is_empty(), "{out}");
    let own = archived(&audit.home).await;
    let other_rt = audit.get(throttled).await.expect("runtime");
    let other = archived(&other_rt).await;
    assert!(own.1 > 0, "the home tenant's records are archived");
    assert_eq!(
        own, other,
        "the second customer's log holds the same record ids and is archived whole, apart"
    );
    // In the bucket: the deployment's own tenant where it always was, each other customer under tenants/{id}/.
    let at = |prefix: String| {
        licensewatch_core::adapters::aws::s3::S3Archive::new(
            licensewatch_core::adapters::aws::s3::S3Objects::new(&aws.conf, &aws.bucket, &prefix),
        )
    };
    let in_bucket = |prefix: String| {
        let archive = at(prefix);
        async move { archive.keys("directory_audit/").await.expect("keys").len() }
    };
    assert_eq!(in_bucket("audit".into()).await, own.0);
    assert_eq!(
        in_bucket(format!("audit/tenants/{throttled}")).await,
        other.0
    );
    let revoked_rt = audit.get(revoked).await.expect("runtime");
    assert_eq!(archived(&revoked_rt).await, (0, 0));
    assert!(
        status(revoked, Job::AuditFetch)
            .await
            .expect("recorded")
            .consent_missing()
    );
    // Delivered again: nothing archived twice.
    let out = audit_fetch::handle_event(audit, event(&messages))
        .await
        .expect("redelivery");
    assert!(failures(&out).is_empty(), "{out}");
    assert_eq!(archived(&audit.home).await, own);
    assert_eq!(archived(&other_rt).await, other);

    // grace-period-notify: each tenant's notices from its own message; the missing consent reaches the
    // deployment's admins once, although two functions found it.
    let notify = &deps;
    let out = grace_period_notify::handle_event(notify, schedule)
        .await
        .expect("fan-out");
    assert_eq!(out["fanned_out"], 3, "{out}");
    let messages = with_ids(&drain(&queue).await);
    let out = grace_period_notify::handle_event(notify, event(&messages))
        .await
        .expect("batch");
    assert!(failures(&out).is_empty(), "{out}");
    let alerts: Vec<_> = store
        .recent_alerts(home, chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .await
        .expect("alerts")
        .into_iter()
        .filter(|a| a.kind == AlertKind::ConsentMissing)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].summary.contains(revoked.as_str()));
    assert!(!store.notified_cases(home).await.expect("ledger").is_empty());
    assert!(
        !store
            .notified_cases(throttled)
            .await
            .expect("ledger")
            .is_empty(),
        "the throttled customer's users are notified too"
    );
    let sim = reqwest::Client::new();
    let mail_of = |tenant: &str| {
        let req = sim
            .get(format!("{base}/_sim/mail"))
            .header("x-sim-tenant", tenant);
        async move {
            req.send()
                .await
                .expect("mail")
                .json::<Vec<Value>>()
                .await
                .expect("json")
        }
    };
    let home_mail = serde_json::to_string(&mail_of(home).await).expect("json");
    assert!(
        home_mail.contains(revoked.as_str()),
        "the deployment's admins hear of the revoked consent"
    );
    let theirs = serde_json::to_string(&mail_of(throttled).await).expect("json");
    assert!(
        !theirs.contains(revoked.as_str()),
        "another customer never hears of it"
    );
    for job in [Job::LicenseCheck, Job::AuditFetch, Job::GracePeriodNotify] {
        for t in [home, throttled] {
            let s = status(t, job).await.expect("recorded");
            assert!(
                s.failure.is_none() && s.last_ok_at.is_some(),
                "{t} {job}: {s:?}"
            );
        }
    }
}

//! The four Lambda handlers sharing moto's DynamoDB, S3 and SQS and the simulated tenant, fed real event JSON.

use licensewatch_core::adapters::aws::sqs::SqsQueue;
use serde_json::{Value, json};

use crate::helpers::*;

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

#[tokio::test]
async fn the_four_functions_share_dynamodb_s3_and_sqs() {
    let aws = AwsResources::create().await;
    let mut policy = notify_policy();
    policy.webhook.secrets_env = vec!["LW_NEW".into()];
    let env = TestEnv::on_aws(policy, &aws).await;
    let tenant = env.sim.tenant_id.clone();

    // audit-fetch archives into S3, once.
    let first = audit_fetch::handle(&env.rt, schedule())
        .await
        .expect("audit-fetch");
    assert!(first.records_archived > 0, "{first:?}");
    let objects = env.rt.archive.keys("").await.expect("keys");
    assert!(!objects.is_empty(), "objects were written to the bucket");
    let again = audit_fetch::handle(&env.rt, schedule())
        .await
        .expect("again");
    assert_eq!(again.records_archived, 0, "nothing is archived twice");
    assert_eq!(env.rt.archive.keys("").await.expect("keys"), objects);

    // license-check keeps its cases in DynamoDB and its snapshot in S3.
    let summary = license_check::handle(&env.rt, schedule())
        .await
        .expect("license-check");
    assert_eq!(summary.status, "ok");
    assert_eq!(summary.findings_by_kind.get("unlicensed_mailbox"), Some(&8));
    let cases = env
        .rt
        .store
        .grace_cases(&tenant, true)
        .await
        .expect("cases");
    assert_eq!(cases.len(), 8);
    assert!(
        env.rt
            .store
            .previous_run(&tenant)
            .await
            .expect("snapshot")
            .is_some()
    );
    let second = license_check::handle(&env.rt, schedule())
        .await
        .expect("again");
    assert_eq!(
        second.grace_cases.opened, 0,
        "the cases are found again in DynamoDB"
    );

    // grace-period-notify: the ledger in DynamoDB stops a repeated schedule from sending twice.
    let channels = env.mail_channels();
    let sent = grace_period_notify::handle(&env.rt, &channels, schedule())
        .await
        .expect("notify");
    assert!(sent.sent > 0);
    let resent = grace_period_notify::handle(&env.rt, &channels, schedule())
        .await
        .expect("notify again");
    assert_eq!((resent.sent, resent.skipped_already_sent), (0, sent.sent));

    // reprocess-user: a signed ticket webhook is admitted in DynamoDB and queued on SQS; the SQS trigger then does
    // the work, and the status is read back over the same function URL.
    env.control(
        &format!("/_sim/skus/{FACULTY}/seats"),
        json!({"enabled": 12}),
    )
    .await;
    let now = env.now().timestamp();
    let queue = SqsQueue::new(&aws.conf, &aws.queue_url);
    let auth =
        licensewatch_core::usecases::webhook::WebhookAuth::from_policy(&env.rt.policy, &|_| {
            Some(SECRET.into())
        })
        .expect("auth");
    let sim_url = env.sim.base_url.clone();
    let deps = reprocess_user::Deps {
        rt: env.into_runtime(),
        auth,
        http: reqwest::Client::new(),
        desks: Vec::new(),
    };
    let body = br#"{"user":"teacher11@contoso.onmicrosoft.com","action":"reprocess","ticket":{"system":"servicenow","id":"INC77"}}"#;
    let secret = licensewatch_core::domain::signing::WebhookSecret::parse(SECRET).expect("secret");
    let signed = |id: &str| {
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", now.to_string()),
            ("webhook-signature", secret.sign(id, now, body)),
        ]
    };
    let out = reprocess_user::handle_event(
        &deps,
        function_url("POST", "/remediations", body, &signed("msg_aws_1")),
    )
    .await
    .expect("http");
    assert_eq!(out["statusCode"], 202, "{out}");
    let answer: Value = serde_json::from_str(out["body"].as_str().expect("body")).expect("json");
    let id = answer["remediation_id"].as_str().expect("id").to_string();
    // The ticketing system retries the same delivery: same answer, no second message.
    let retry = reprocess_user::handle_event(
        &deps,
        function_url("POST", "/remediations", body, &signed("msg_aws_1")),
    )
    .await
    .expect("http");
    let retry_answer: Value =
        serde_json::from_str(retry["body"].as_str().expect("body")).expect("json");
    assert_eq!(retry_answer["remediation_id"], id.as_str());

    let messages = drain(&queue).await;
    assert_eq!(messages.len(), 1, "one message on the remediation queue");
    let batch = reprocess_user::handle_event(&deps, sqs_event(&messages))
        .await
        .expect("sqs");
    assert_eq!(batch["batchItemFailures"], json!([]), "{batch}");

    let status = reprocess_user::handle_event(
        &deps,
        function_url("GET", &format!("/remediations/{id}"), b"", &[]),
    )
    .await
    .expect("http");
    assert_eq!(status["statusCode"], 200);
    let status: Value = serde_json::from_str(status["body"].as_str().expect("body")).expect("json");
    assert_eq!(
        status["status"], "pending",
        "group licensing is still processing: {status}"
    );
    // Processing finishes; license-check finds the pending remediation in DynamoDB and confirms it.
    let advanced = reqwest::Client::new()
        .post(format!("{sim_url}/_sim/clock"))
        .json(&json!({"advance_minutes": 3}))
        .send()
        .await
        .expect("clock");
    assert_eq!(advanced.status().as_u16(), 200);
    let report = licensewatch_core::usecases::check_licenses::check_licenses(
        &deps.rt.check_deps(),
        &deps.rt.tenant_run(),
        &deps.rt.policy,
        &|_| {},
    )
    .await
    .expect("check");
    assert_eq!(report.remediations_confirmed, 1);
    let status = reprocess_user::handle_event(
        &deps,
        function_url("GET", &format!("/remediations/{id}"), b"", &[]),
    )
    .await
    .expect("http");
    let status: Value = serde_json::from_str(status["body"].as_str().expect("body")).expect("json");
    assert_eq!(status["status"], "succeeded", "{status}");
    assert_eq!(tenant, deps.rt.microsoft.tenant_id);
}

#[tokio::test]
async fn a_schedule_fans_out_one_message_per_tenant_and_each_runs_in_its_own_invocation() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(licensewatch_core::policy::Policy::default(), &aws).await;
    let tenant = env.sim.tenant_id.clone();
    let mut rt = env.into_runtime();
    // A managed-service provider lists its tenants; the simulated one is listed.
    rt.policy.tenants = vec![licensewatch_core::policy::TenantEntry {
        id: tenant.clone(),
        ..Default::default()
    }];
    let deps = license_check::Deps::new(rt);

    let out = license_check::handle_event(&deps, serde_json::to_value(schedule()).expect("json"))
        .await
        .expect("fan-out");
    assert_eq!(out["status"], "fanned_out");
    assert_eq!(out["fanned_out"], 1);
    assert_eq!(
        deps.home.store.runs(&tenant, 10).await.expect("runs").len(),
        0,
        "the scheduled invocation itself checks nobody"
    );

    let tenant_queue = SqsQueue::new(&aws.conf, &aws.tenant_queue_url);
    let messages = drain(&tenant_queue).await;
    assert_eq!(messages.len(), 1);
    let message: Value = serde_json::from_str(&messages[0].1).expect("json");
    assert_eq!(message["tenant_id"], tenant.as_str());

    let mut unknown = messages.clone();
    unknown.push((
        String::new(),
        json!({"tenant_id": "11111111-2222-3333-4444-555555555555"}).to_string(),
    ));
    let batch = license_check::handle_event(&deps, sqs_event(&unknown))
        .await
        .expect("tenant batch");
    assert_eq!(
        batch["batchItemFailures"],
        json!([]),
        "an unlisted tenant is refused for good, not retried"
    );
    let runs = deps.home.store.runs(&tenant, 10).await.expect("runs");
    assert_eq!(runs.len(), 1, "the tenant ran once, from its message");
    assert_eq!(runs[0].users_scanned, 42);
}

#[tokio::test]
async fn grace_period_notify_fans_out_too_and_notifies_each_tenant_from_its_message() {
    let aws = AwsResources::create().await;
    let env = TestEnv::on_aws(notify_policy(), &aws).await;
    env.check().await;
    let tenant = env.sim.tenant_id.clone();
    let mut rt = env.into_runtime();
    rt.policy.tenants = vec![licensewatch_core::policy::TenantEntry {
        id: tenant.clone(),
        ..Default::default()
    }];
    let deps = grace_period_notify::Deps::new(rt);
    let out =
        grace_period_notify::handle_event(&deps, serde_json::to_value(schedule()).expect("json"))
            .await
            .expect("fan-out");
    assert_eq!(out["status"], "fanned_out", "{out}");
    assert_eq!(out["fanned_out"], 1);
    let queue = SqsQueue::new(&aws.conf, &aws.tenant_queue_url);
    let messages = drain(&queue).await;
    assert_eq!(messages.len(), 1);
    let batch = grace_period_notify::handle_event(&deps, sqs_event(&messages))
        .await
        .expect("tenant batch");
    assert_eq!(batch["batchItemFailures"], json!([]));
    let notified = deps
        .home
        .store
        .notified_cases(&tenant)
        .await
        .expect("ledger");
    assert!(
        !notified.is_empty(),
        "the tenant's notices went out from its message"
    );
    // SQS delivers the message again: nothing is sent twice.
    let again = grace_period_notify::handle_event(&deps, sqs_event(&messages))
        .await
        .expect("redelivery");
    assert_eq!(again["batchItemFailures"], json!([]));
    assert_eq!(
        deps.home
            .store
            .notified_cases(&tenant)
            .await
            .expect("ledger"),
        notified
    );
}

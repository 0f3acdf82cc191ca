//! Lambda handlers fed real event JSON kept in `tests/fixtures/events/`.

use aws_lambda_events::eventbridge::EventBridgeEvent;

use crate::helpers::*;

fn event(json: &str) -> EventBridgeEvent<serde_json::Value> {
    serde_json::from_str(json).expect("fixture parses as an EventBridge event")
}

#[tokio::test]
async fn license_check_handles_a_scheduled_event() {
    let env = TestEnv::spawn().await;
    let s = license_check::handle(
        &env.rt,
        event(include_str!(
            "../../fixtures/events/eventbridge-schedule.json"
        )),
    )
    .await
    .expect("ok");
    assert_eq!(s.status, "ok");
    assert_eq!(s.users_scanned, 42);
    assert_eq!(s.findings_by_kind.get("unlicensed_mailbox"), Some(&8));
    assert_eq!(s.grace_cases.opened, 8);
    // The fan-out event names the tenant this function serves.
    let s = license_check::handle(
        &env.rt,
        event(include_str!(
            "../../fixtures/events/eventbridge-tenant.json"
        )),
    )
    .await
    .expect("ok");
    assert_eq!(s.tenant_id, env.sim.tenant_id);
    assert_eq!(
        s.grace_cases.opened, 0,
        "the second run updates the same cases"
    );
}

#[tokio::test]
async fn a_tenant_this_function_does_not_serve_is_a_permanent_error() {
    let env = TestEnv::spawn().await;
    let mut ev = event(include_str!(
        "../../fixtures/events/eventbridge-tenant.json"
    ));
    ev.detail = serde_json::json!({"tenant_id": "99999999-9999-9999-9999-999999999999"});
    let err = license_check::handle(&env.rt, ev)
        .await
        .expect_err("refused");
    assert!(!err.is_retryable());
    let d: lambda_runtime::Diagnostic = license_check::Failure(err).into();
    assert_eq!(d.error_type, "Permanent");
    assert!(d.error_message.contains("detail.tenant_id"));
}

#[tokio::test]
async fn an_unreachable_tenant_is_a_retryable_error() {
    let env = TestEnv::spawn().await;
    env.control(
        "/_sim/faults",
        serde_json::json!({"route": "/v1.0/subscribedSkus", "kind": "unavailable"}),
    )
    .await;
    let err = license_check::handle(
        &env.rt,
        event(include_str!(
            "../../fixtures/events/eventbridge-schedule.json"
        )),
    )
    .await
    .expect_err("503 persists");
    assert!(err.is_retryable());
    let d: lambda_runtime::Diagnostic = license_check::Failure(err).into();
    assert_eq!(d.error_type, "Retryable");
}

#[tokio::test]
async fn grace_period_notify_handles_a_scheduled_event_once_per_day() {
    let env = TestEnv::with_policy(notify_policy()).await;
    env.check().await;
    let channels = env.mail_channels();
    let ev = || {
        event(include_str!(
            "../../fixtures/events/eventbridge-schedule.json"
        ))
    };
    let s = grace_period_notify::handle(&env.rt, &channels, ev())
        .await
        .expect("ok");
    assert!(s.sent > 0);
    assert!(s.failed_channels.is_empty());
    // EventBridge may deliver the same schedule twice: the second invocation sends nothing.
    let again = grace_period_notify::handle(&env.rt, &channels, ev())
        .await
        .expect("ok");
    assert_eq!(again.sent, 0);
    assert_eq!(again.skipped_already_sent, s.sent);
}

fn reprocess_deps(env: TestEnv) -> (reprocess_user::Deps, licensewatch_sim::SimHandle) {
    let mut policy = env.rt.policy.clone();
    policy.webhook.secrets_env = vec!["LW_NEW".into()];
    let auth = licensewatch_core::usecases::webhook::WebhookAuth::from_policy(&policy, &|_| {
        Some("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".into())
    })
    .expect("auth");
    let sim = env.sim.clone();
    (
        reprocess_user::Deps {
            rt: env.into_runtime(),
            auth,
            http: reqwest::Client::new(),
            desks: Vec::new(),
        },
        sim,
    )
}

#[tokio::test]
async fn reprocess_user_takes_a_function_url_request_signed_over_the_decoded_body() {
    use base64::Engine;
    let env = TestEnv::spawn().await;
    let now = env.now().timestamp();
    let (deps, _sim) = reprocess_deps(env);
    let body = br#"{"user":"teacher11@contoso.onmicrosoft.com","action":"reprocess","ticket":{"system":"servicenow","id":"INC42"}}"#;
    let secret = licensewatch_core::domain::signing::WebhookSecret::parse(
        "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    )
    .expect("s");
    let mut ev: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/events/function-url-post.json"))
            .expect("fixture");
    ev["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    ev["headers"]["webhook-id"] = "msg_fn_url".into();
    ev["headers"]["webhook-timestamp"] = now.to_string().into();
    ev["headers"]["webhook-signature"] = secret.sign("msg_fn_url", now, body).into();
    let out = reprocess_user::handle_event(&deps, ev.clone())
        .await
        .expect("response");
    assert_eq!(out["statusCode"], 202, "{out}");
    let answer: serde_json::Value =
        serde_json::from_str(out["body"].as_str().expect("body")).expect("json");
    assert_eq!(answer["status"], "queued");
    // The same event with the body not base64-decoded fails the signature: verification is on the raw bytes.
    ev["isBase64Encoded"] = false.into();
    ev["headers"]["webhook-id"] = "msg_fn_url2".into();
    let out = reprocess_user::handle_event(&deps, ev)
        .await
        .expect("response");
    assert_eq!(out["statusCode"], 401);
}

#[tokio::test]
async fn reprocess_user_sqs_batches_report_only_retryable_failures() {
    let env = TestEnv::spawn().await;
    let now = env.now();
    env.control(
        &format!("/_sim/skus/{FACULTY}/seats"),
        serde_json::json!({"enabled": 12}),
    )
    .await;
    let (deps, sim) = reprocess_deps(env);
    let request = |id: &str, user: &str| {
        serde_json::to_string(&licensewatch_core::ports::store::RemediationRequest {
            remediation_id: id.into(),
            tenant_id: sim.tenant_id.clone(),
            user: upn(user),
            action: "reprocess".parse().expect("action"),
            sku_ids: vec![],
            reason: "test".into(),
            requested_at: now,
            disabled_plans: Default::default(),
            template_user: None,
            ticket: None,
        })
        .expect("json")
    };
    let mut ev: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/events/sqs-batch.json"))
            .expect("fixture");
    ev["Records"][0]["body"] = request("rem_ok", "teacher11").into();
    ev["Records"][2]["body"] = request("rem_throttled", "teacher12").into();
    // The third message meets a Graph outage: it must come back; the unreadable second one must not.
    let http = reqwest::Client::new();
    http.post(format!("{}/_sim/faults", sim.base_url))
        .json(&serde_json::json!({"route": "/v1.0/users/teacher12", "kind": "unavailable"}))
        .send()
        .await
        .expect("fault");
    let out = reprocess_user::handle_event(&deps, ev)
        .await
        .expect("batch response");
    assert_eq!(
        out,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "d9144555-9a4f-4ec3-99a0-fc4e625a8db2"}]})
    );
}

#[tokio::test]
async fn audit_fetch_handles_a_scheduled_event() {
    let env = TestEnv::spawn().await;
    let r = audit_fetch::handle(
        &env.rt,
        event(include_str!(
            "../../fixtures/events/eventbridge-schedule.json"
        )),
    )
    .await
    .expect("ok");
    assert_eq!(r.records_archived, 10);
    let again = audit_fetch::handle(
        &env.rt,
        event(include_str!(
            "../../fixtures/events/eventbridge-schedule.json"
        )),
    )
    .await
    .expect("ok");
    assert_eq!(
        again.records_archived, 0,
        "a repeated schedule archives nothing twice"
    );
}

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

//! reprocess-user's endpoint and worker: the bad-input catalogue (RELIABILITY_CASES.md 1a), published vectors,
//! rotation, replay, idempotency, budget, and an end-to-end fix of a CountViolation user after seats are freed.

use chrono::Duration;
use licensewatch_core::domain::signing::{WebhookSecret, sign_hub};
use licensewatch_core::policy::Policy;
use licensewatch_core::usecases::reprocess_user::process;
use licensewatch_core::usecases::webhook::{HttpRequest, HttpResponse, WebhookAuth, handle};
use serde_json::{Value, json};

use crate::helpers::*;

const NEW: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HUB: &str = "It's a Secret to Everybody";

fn policy() -> Policy {
    let mut p = notify_policy();
    p.webhook.secrets_env = vec!["LW_NEW".into(), "LW_OLD".into()];
    p.webhook.github_style_secret_env = "LW_HUB".into();
    p.remediation.max_actions_per_hour = 5;
    p
}

fn auth(p: &Policy) -> WebhookAuth {
    WebhookAuth::from_policy(p, &|k| match k {
        "LW_NEW" => Some(NEW.into()),
        "LW_OLD" => Some(OLD.into()),
        "LW_HUB" => Some(HUB.into()),
        _ => None,
    })
    .expect("auth")
}

struct Hook {
    env: TestEnv,
    auth: WebhookAuth,
}

impl Hook {
    async fn new() -> Self {
        let p = policy();
        let auth = auth(&p);
        Self {
            env: TestEnv::with_policy(p).await,
            auth,
        }
    }

    async fn send(&self, headers: Vec<(&str, String)>, body: &[u8]) -> HttpResponse {
        let req = HttpRequest {
            method: "POST",
            path: "/remediations",
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            body,
        };
        handle(&self.env.rt.webhook_deps(&self.auth), &req).await
    }

    fn signed(&self, secret: &str, id: &str, ts: i64, body: &[u8]) -> Vec<(&'static str, String)> {
        let s = WebhookSecret::parse(secret).expect("secret");
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", s.sign(id, ts, body)),
            ("content-type", "application/json".to_string()),
        ]
    }

    fn now(&self) -> i64 {
        self.env.now().timestamp()
    }

    async fn queued(&self) -> usize {
        self.env
            .rt
            .store
            .pending(&self.env.sim.tenant_id)
            .await
            .expect("queue")
            .len()
    }

    async fn graph_writes(&self) -> usize {
        self.env
            .get("/_sim/writes")
            .await
            .as_array()
            .map(Vec::len)
            .unwrap_or(0)
    }
}

/// (name, headers, body, expected status)
type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);

fn body(user: &str, action: &str, ticket: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"user": upn(user), "action": action, "ticket": {"system": "servicenow", "id": ticket}})).expect("json")
}

#[tokio::test]
async fn every_bad_request_is_rejected_with_the_right_status_and_no_side_effect() {
    let h = Hook::new().await;
    let now = h.now();
    let b = body("teacher11", "reprocess", "INC001");
    let ok = h.signed(NEW, "msg_1", now, &b);
    let with = |k: &str, v: &str| {
        let mut x: Vec<(&str, String)> = ok.iter().filter(|(n, _)| *n != k).cloned().collect();
        x.push((Box::leak(k.to_string().into_boxed_str()), v.to_string()));
        x
    };
    let without = |k: &str| {
        ok.iter()
            .filter(|(n, _)| *n != k)
            .cloned()
            .collect::<Vec<_>>()
    };
    let cases: Vec<Case> = vec![
        (
            "WH-02 wrong secret",
            h.signed(
                "whsec_dGhpcyBpcyBhIGRpZmZlcmVudCBzZWNyZXQgISE=",
                "msg_1",
                now,
                &b,
            ),
            b.clone(),
            401,
        ),
        (
            "WH-03 flipped signature",
            with(
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
            ),
            b.clone(),
            401,
        ),
        (
            "WH-04 stale",
            h.signed(NEW, "msg_1", now - 301, &b),
            b.clone(),
            401,
        ),
        (
            "WH-05 future",
            h.signed(NEW, "msg_1", now + 301, &b),
            b.clone(),
            401,
        ),
        (
            "WH-06 bad timestamp",
            with("webhook-timestamp", "1614265330.5"),
            b.clone(),
            401,
        ),
        (
            "WH-06 overflow",
            with("webhook-timestamp", "99999999999999999999"),
            b.clone(),
            401,
        ),
        ("WH-07 no id", without("webhook-id"), b.clone(), 401),
        (
            "WH-07 no timestamp",
            without("webhook-timestamp"),
            b.clone(),
            401,
        ),
        (
            "WH-07 no signature",
            without("webhook-signature"),
            b.clone(),
            401,
        ),
        (
            "WH-08 body changed",
            ok.clone(),
            body("teacher11", "reprocess", "INC002"),
            401,
        ),
        (
            "WH-08 trailing newline",
            ok.clone(),
            [b.clone(), b"\n".to_vec()].concat(),
            401,
        ),
        (
            "WH-13 empty v1",
            with("webhook-signature", "v1,"),
            b.clone(),
            401,
        ),
        (
            "WH-13 v2 only",
            with("webhook-signature", &ok[2].1.replace("v1,", "v2,")),
            b.clone(),
            401,
        ),
        (
            "WH-15 dot in id",
            h.signed(NEW, "msg.1", now, &b),
            b.clone(),
            400,
        ),
        (
            "no signature at all",
            vec![("content-type", "application/json".to_string())],
            b.clone(),
            401,
        ),
        (
            "WH-16 too large",
            h.signed(NEW, "msg_big", now, &vec![b' '; 70 * 1024]),
            vec![b' '; 70 * 1024],
            413,
        ),
        (
            "415 not JSON",
            with("content-type", "text/plain"),
            b.clone(),
            415,
        ),
        (
            "400 malformed",
            h.signed(NEW, "msg_m", now, b"{\"user\":"),
            b"{\"user\":".to_vec(),
            400,
        ),
        (
            "400 unknown action",
            h.signed(
                NEW,
                "msg_a",
                now,
                br#"{"user":"x@y","action":"delete_everything"}"#,
            ),
            br#"{"user":"x@y","action":"delete_everything"}"#.to_vec(),
            400,
        ),
        (
            "400 missing user",
            h.signed(NEW, "msg_u", now, br#"{"action":"reprocess"}"#),
            br#"{"action":"reprocess"}"#.to_vec(),
            400,
        ),
        (
            "400 assign without skus",
            h.signed(NEW, "msg_s", now, br#"{"user":"x@y","action":"assign"}"#),
            br#"{"user":"x@y","action":"assign"}"#.to_vec(),
            400,
        ),
        (
            "403 remove disabled",
            h.signed(
                NEW,
                "msg_r",
                now,
                br#"{"user":"x@y","action":"remove","sku_ids":["a"]}"#,
            ),
            br#"{"user":"x@y","action":"remove","sku_ids":["a"]}"#.to_vec(),
            403,
        ),
        (
            "415 a media type that only starts like JSON",
            with("content-type", "application/jsonfoo"),
            b.clone(),
            415,
        ),
        (
            "WH-06 zero-padded timestamp",
            with("webhook-timestamp", &format!("0{now}")),
            b.clone(),
            401,
        ),
        (
            "400 duplicate key",
            h.signed(
                NEW,
                "msg_d",
                now,
                br#"{"user":"x@y","action":"reprocess","action":"remove"}"#,
            ),
            br#"{"user":"x@y","action":"reprocess","action":"remove"}"#.to_vec(),
            400,
        ),
        (
            "400 duplicate key in the ticket",
            h.signed(
                NEW,
                "msg_d2",
                now,
                br#"{"user":"x@y","ticket":{"system":"a","id":"1","id":"2"}}"#,
            ),
            br#"{"user":"x@y","ticket":{"system":"a","id":"1","id":"2"}}"#.to_vec(),
            400,
        ),
    ];
    // Duplicate header with different values.
    let mut dup = ok.clone();
    dup.push(("webhook-id", "msg_other".into()));
    let mut all = cases;
    all.push(("WH-07 duplicated header", dup, b.clone(), 401));
    for (name, headers, body, status) in all {
        let r = h.send(headers, &body).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert!(r.body["error"].is_string(), "{name}: a JSON error");
        if status == 401 {
            assert_eq!(
                r.body["error"], "unauthorized",
                "{name}: no hint which part failed"
            );
        }
    }
    let r = h
        .send(
            h.signed(NEW, "msg_f", now, br#"{"action":"reprocess"}"#),
            br#"{"action":"reprocess"}"#,
        )
        .await;
    assert!(
        r.body["error"]
            .as_str()
            .is_some_and(|e| e.contains("'user'")),
        "names the field: {:?}",
        r.body
    );
    assert_eq!(h.queued().await, 0, "nothing was queued");
    assert_eq!(
        h.graph_writes().await,
        0,
        "nothing was written to the tenant"
    );
}

#[tokio::test]
async fn published_vectors_rotation_replay_and_idempotency() {
    let h = Hook::new().await;
    let now = h.now();
    // Both rotation secrets work; boundary timestamps pass.
    let b1 = body("teacher11", "reprocess", "INC100");
    let r = h.send(h.signed(OLD, "msg_old", now - 300, &b1), &b1).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let id = r.body["remediation_id"].as_str().expect("id").to_string();
    assert_eq!(r.body["status"], "queued");
    let b2 = body("teacher12", "reprocess", "INC101");
    assert_eq!(
        h.send(h.signed(NEW, "msg_new", now + 300, &b2), &b2)
            .await
            .status,
        202
    );
    assert_eq!(h.queued().await, 2);
    // WH-09: a replayed webhook-id is not acted on again.
    let again = h.send(h.signed(OLD, "msg_old", now, &b1), &b1).await;
    assert_eq!(
        (
            again.status,
            again.body["remediation_id"].as_str(),
            again.body["duplicate"].as_bool()
        ),
        (200, Some(id.as_str()), Some(true))
    );
    // Same ticket and action, new webhook id, same body: the first remediation; different body: 409.
    let same = h.send(h.signed(NEW, "msg_other", now, &b1), &b1).await;
    assert_eq!(same.body["remediation_id"], id.as_str());
    let changed = serde_json::to_vec(&json!({"user": upn("teacher12"), "action": "reprocess", "ticket": {"system": "servicenow", "id": "INC100"}})).expect("json");
    assert_eq!(
        h.send(h.signed(NEW, "msg_conflict", now, &changed), &changed)
            .await
            .status,
        409
    );
    assert_eq!(h.queued().await, 2, "no second enqueue");
    // GitHub/Jira scheme with the published vector's secret.
    let b3 = body("teacher11", "reprocess", "JIRA-1");
    let r = h
        .send(
            vec![
                ("x-hub-signature-256", sign_hub(HUB.as_bytes(), &b3)),
                ("content-type", "application/json".into()),
            ],
            &b3,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let r = h
        .send(
            vec![
                (
                    "x-hub-signature-256",
                    sign_hub(HUB.as_bytes(), &b3).to_uppercase(),
                ),
                ("content-type", "application/json".into()),
            ],
            &b3,
        )
        .await;
    assert_eq!(r.status, 401);
    // Status is readable.
    let st = handle(
        &h.env.rt.webhook_deps(&h.auth),
        &HttpRequest {
            method: "GET",
            path: &format!("/remediations/{id}"),
            headers: vec![],
            body: b"",
        },
    )
    .await;
    assert_eq!(
        (st.status, st.body["status"].as_str()),
        (200, Some("queued"))
    );
    let health = handle(
        &h.env.rt.webhook_deps(&h.auth),
        &HttpRequest {
            method: "GET",
            path: "/healthz",
            headers: vec![],
            body: b"",
        },
    )
    .await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn the_blast_radius_budget_answers_429() {
    let h = Hook::new().await;
    let now = h.now();
    for i in 0..5 {
        let b = body("teacher11", "reprocess", &format!("INC2{i}"));
        assert_eq!(
            h.send(h.signed(NEW, &format!("msg_b{i}"), now, &b), &b)
                .await
                .status,
            202
        );
    }
    let b = body("teacher11", "reprocess", "INC299");
    assert_eq!(
        h.send(h.signed(NEW, "msg_b9", now, &b), &b).await.status,
        429
    );
    assert_eq!(h.queued().await, 5);
    h.env.advance(Duration::minutes(61)).await;
    let now = h.now();
    assert_eq!(
        h.send(h.signed(NEW, "msg_b10", now, &b), &b).await.status,
        202,
        "a new hour, a new budget"
    );
}

#[tokio::test]
async fn a_signed_webhook_fixes_a_count_violation_after_seats_are_freed() {
    let h = Hook::new().await;
    let now = h.now();
    // Dry run first: the exact Graph request, nothing written.
    let dry = serde_json::to_vec(
        &json!({"user": upn("teacher11"), "action": "reprocess", "dry_run": true}),
    )
    .expect("json");
    let r = h.send(h.signed(NEW, "msg_dry", now, &dry), &dry).await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (202, Some("dry_run")),
        "{:?}",
        r.body
    );
    assert!(
        r.body["detail"]["graph_request"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/reprocessLicenseAssignment"))
    );
    assert_eq!(h.graph_writes().await, 0);
    // The id a dry run handed out answers, with what the dry run found.
    let dry_id = r.body["remediation_id"].as_str().expect("id").to_string();
    let st = handle(
        &h.env.rt.webhook_deps(&h.auth),
        &HttpRequest {
            method: "GET",
            path: &format!("/remediations/{dry_id}"),
            headers: vec![],
            body: b"",
        },
    )
    .await;
    assert_eq!(
        (st.status, st.body["status"].as_str()),
        (200, Some("dry_run")),
        "{:?}",
        st.body
    );
    assert!(
        st.body["detail"]["graph_request"]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/reprocessLicenseAssignment"))
    );
    assert_eq!(h.queued().await, 0, "a dry run queues nothing");

    h.env
        .control(
            &format!("/_sim/skus/{FACULTY}/seats"),
            json!({"enabled": 12}),
        )
        .await;
    let cb = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&cb)
        .await;
    let b = serde_json::to_vec(&json!({"user": upn("teacher11"), "action": "reprocess",
        "ticket": {"system": "servicenow", "id": "INC777", "callback_url": format!("{}/callback", cb.uri())}})).expect("json");
    let r = h.send(h.signed(NEW, "msg_fix", now, &b), &b).await;
    assert_eq!(r.status, 202);
    let id = r.body["remediation_id"].as_str().expect("id").to_string();
    // The worker (SQS on AWS; here the local queue) takes it.
    let http = reqwest::Client::new();
    let mut deps = h.env.rt.worker_deps(&http, h.auth.callback_secret());
    deps.verify_delay = std::time::Duration::from_millis(20);
    let queued = h
        .env
        .rt
        .store
        .pending(&h.env.sim.tenant_id)
        .await
        .expect("pending");
    for req in &queued {
        let outcome = process(&deps, req, &h.env.rt.policy, false)
            .await
            .expect("processed");
        // Microsoft queues group processing: accepted, not failed, while the states have not changed yet.
        assert_eq!(outcome.status, "pending", "{:?}", outcome.detail);
        assert!(
            outcome.detail["verify_by"].is_string(),
            "{:?}",
            outcome.detail
        );
        h.env.rt.store.ack(&req.remediation_id).await.expect("ack");
    }
    // SQS delivers the message again after it was done: nothing is called or called back twice.
    for req in &queued {
        let again = process(&deps, req, &h.env.rt.policy, false)
            .await
            .expect("redelivery");
        assert_eq!(again.status, "pending");
    }
    assert_eq!(
        remediation_status(&h, &id).await["status"],
        "pending",
        "the ticket's GET shows it"
    );
    // Group licensing finishes; the next license-check run reads the user again and confirms it.
    h.env.advance(Duration::minutes(3)).await;
    let report = h.env.check().await;
    assert_eq!(report.remediations_confirmed, 1);
    let settled = remediation_status(&h, &id).await;
    assert_eq!(settled["status"], "succeeded", "{settled}");
    assert_eq!(
        settled["detail"]["verified_by"], "license-check",
        "{settled}"
    );
    // The simulator's write log is the independent witness of what reached the tenant.
    let writes = h.env.get("/_sim/writes").await;
    assert_eq!(writes.as_array().map(Vec::len), Some(1));
    assert_eq!(writes[0]["operation"], "reprocessLicenseAssignment");
    // The ticket was told, with a verifiable signature.
    let calls = cb.received_requests().await.unwrap_or_default();
    assert_eq!(calls.len(), 1);
    let hv = |n: &str| {
        calls[0]
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (wid, wts, wsig) = (
        hv("webhook-id"),
        hv("webhook-timestamp"),
        hv("webhook-signature"),
    );
    let headers = licensewatch_core::domain::signing::StandardHeaders {
        id: Some(&wid),
        timestamp: Some(&wts),
        signature: Some(&wsig),
    };
    assert!(
        licensewatch_core::domain::signing::verify_standard(
            &[WebhookSecret::parse(NEW).expect("s")],
            &headers,
            &calls[0].body,
            h.now(),
            300
        )
        .is_ok()
    );
    let cb_body: Value = serde_json::from_slice(&calls[0].body).expect("json");
    assert_eq!(
        (cb_body["status"].as_str(), cb_body["ticket"]["id"].as_str()),
        (Some("pending"), Some("INC777"))
    );
    // The settled outcome goes back to the ticket too: license-check queued the request again, and the worker,
    // finding it final, tells the ticket (once, under an id of its own) and changes nothing in the tenant.
    let again = h
        .env
        .rt
        .store
        .pending(&h.env.sim.tenant_id)
        .await
        .expect("pending");
    assert_eq!(again.len(), 1, "{again:?}");
    for _ in 0..2 {
        let told = process(&deps, &again[0], &h.env.rt.policy, false)
            .await
            .expect("told");
        assert_eq!(told.status, "succeeded");
    }
    h.env
        .rt
        .store
        .ack(&again[0].remediation_id)
        .await
        .expect("ack");
    let calls = cb.received_requests().await.unwrap_or_default();
    assert_eq!(calls.len(), 2, "told once more, not twice");
    let settled: Value = serde_json::from_slice(&calls[1].body).expect("json");
    assert_eq!(settled["status"], "succeeded", "{settled}");
    assert_eq!(
        calls[1]
            .headers
            .get("webhook-id")
            .and_then(|v| v.to_str().ok()),
        Some(format!("cb_{id}_succeeded").as_str())
    );
    assert_eq!(
        h.env.get("/_sim/writes").await.as_array().map(Vec::len),
        Some(1),
        "no second write"
    );
    // The user's licences are now active (read back through the check use case).
    assert!(
        for_user(
            &of_kind(&report, "license_assignment_error"),
            &upn("teacher11")
        )
        .is_empty()
    );
    assert!(for_user(&of_kind(&report, "unlicensed_mailbox"), &upn("teacher11")).is_empty());
}

#[tokio::test]
async fn a_remediation_that_cannot_succeed_is_recorded_as_failed_not_retried() {
    let h = Hook::new().await;
    let http = reqwest::Client::new();
    let mut deps = h.env.rt.worker_deps(&http, None);
    deps.verify_attempts = 2;
    deps.verify_delay = std::time::Duration::from_millis(10);
    let now = h.now();
    // No seats freed: reprocessing leaves the user in CountViolation.
    let b = body("teacher12", "reprocess", "INC900");
    assert_eq!(
        h.send(h.signed(NEW, "msg_x", now, &b), &b).await.status,
        202
    );
    let req = h
        .env
        .rt
        .store
        .pending(&h.env.sim.tenant_id)
        .await
        .expect("p")
        .remove(0);
    let outcome = process(&deps, &req, &h.env.rt.policy, false)
        .await
        .expect("permanent outcome, not Err");
    assert_eq!(
        outcome.status, "pending",
        "Microsoft may still be processing it"
    );
    // Processed, still without a seat: in error until the deadline, then failed (never retried).
    h.env.advance(Duration::minutes(3)).await;
    assert_eq!(
        h.env.check().await.remediations_confirmed,
        0,
        "still before verify_by"
    );
    h.env.advance(Duration::hours(25)).await;
    assert_eq!(h.env.check().await.remediations_confirmed, 1);
    let rec = h
        .env
        .rt
        .store
        .remediation(&req.remediation_id)
        .await
        .expect("store")
        .expect("record");
    assert_eq!(rec.status, "failed");
    assert!(
        rec.detail["errors"].to_string().contains("CountViolation"),
        "{:?}",
        rec.detail
    );
    // A user that does not exist fails in preflight, with no Graph write.
    let mut ghost = req.clone();
    ghost.user = "nobody@contoso.onmicrosoft.com".into();
    let before = h.graph_writes().await;
    let o = process(&deps, &ghost, &h.env.rt.policy, false)
        .await
        .expect("outcome");
    assert_eq!(o.status, "failed");
    assert_eq!(h.graph_writes().await, before);
}

#[tokio::test]
async fn the_budget_is_a_rolling_hour_not_a_calendar_hour() {
    let h = Hook::new().await;
    // Five admissions at 09:59 spend the budget of five ...
    h.env.advance(Duration::minutes(59)).await;
    for i in 0..5 {
        let b = body("teacher11", "reprocess", &format!("INC3{i}"));
        let r = h
            .send(h.signed(NEW, &format!("msg_r{i}"), h.now(), &b), &b)
            .await;
        assert_eq!(r.status, 202);
    }
    // ... and 10:01 is a new calendar hour but the same rolling hour: still spent.
    h.env.advance(Duration::minutes(2)).await;
    let b = body("teacher11", "reprocess", "INC399");
    assert_eq!(
        h.send(h.signed(NEW, "msg_r8", h.now(), &b), &b)
            .await
            .status,
        429,
        "twice the budget must not pass around the hour"
    );
    // Sixty minutes after the five, the window is free again.
    h.env.advance(Duration::minutes(59)).await;
    assert_eq!(
        h.send(h.signed(NEW, "msg_r9", h.now(), &b), &b)
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn the_rails_hold_for_requests_that_reach_the_worker_from_any_entry_point() {
    // A queued request (license-check's auto-reprocess, a replayed SQS message, a CLI) that the policy forbids is
    // rejected by the worker itself, before any Graph write.
    let mut p = policy();
    p.remediation.allow_remove = true;
    p.remediation.sku_allow_list = vec!["STANDARDWOFFPACK_STUDENT".into()];
    let h = Hook {
        auth: auth(&p),
        env: TestEnv::with_policy(p).await,
    };
    let http = reqwest::Client::new();
    let deps = h.env.rt.worker_deps(&http, None);
    let request =
        |action: &str, skus: &[&str]| licensewatch_core::ports::store::RemediationRequest {
            remediation_id: format!("rem_{action}"),
            tenant_id: h.env.sim.tenant_id.clone(),
            user: upn("alex.wilber"),
            action: action.parse().expect("action"),
            sku_ids: skus.iter().map(|s| s.to_string()).collect(),
            reason: "test".into(),
            requested_at: h.env.now(),
            disabled_plans: Default::default(),
            template_user: None,
            ticket: None,
        };
    for (action, skus) in [
        ("remove", vec![E3]),
        ("remove", vec!["ENTERPRISEPACK"]),
        ("assign", vec![E3]),
    ] {
        let outcome = process(&deps, &request(action, &skus), &h.env.rt.policy, false)
            .await
            .expect("processed");
        assert_eq!(
            outcome.status, "rejected",
            "{action} {skus:?}: {:?}",
            outcome.detail
        );
        assert!(
            outcome.detail["reason"]
                .as_str()
                .is_some_and(|r| r.contains("sku_allow_list")),
            "{:?}",
            outcome.detail
        );
    }
    assert_eq!(h.graph_writes().await, 0);
    // remove needs allow_remove, whoever asks.
    let mut strict = h.env.rt.policy.clone();
    strict.remediation.allow_remove = false;
    strict.remediation.sku_allow_list.clear();
    let outcome = process(&deps, &request("remove", &[E3]), &strict, false)
        .await
        .expect("processed");
    assert_eq!(outcome.status, "rejected");
    assert_eq!(h.graph_writes().await, 0);
}

#[tokio::test]
async fn a_replayed_dry_run_has_no_new_effect_and_head_answers_like_get() {
    let h = Hook::new().await;
    let now = h.now();
    let dry = serde_json::to_vec(
        &json!({"user": upn("teacher11"), "action": "reprocess", "dry_run": true}),
    )
    .expect("json");
    let first = h
        .send(h.signed(NEW, "msg_dry_replay", now, &dry), &dry)
        .await;
    assert_eq!(
        (first.status, first.body["status"].as_str()),
        (202, Some("dry_run"))
    );
    let reads = h.env.requests().await.len();
    for _ in 0..20 {
        let again = h
            .send(h.signed(NEW, "msg_dry_replay", now, &dry), &dry)
            .await;
        assert_eq!(again.status, 200, "{:?}", again.body);
        assert_eq!(again.body["duplicate"], true);
        assert_eq!(again.body["remediation_id"], first.body["remediation_id"]);
        assert_eq!(again.body["status"], "dry_run");
    }
    assert_eq!(
        h.env.requests().await.len(),
        reads,
        "a replay reads nothing from Graph"
    );
    let head = handle(
        &h.env.rt.webhook_deps(&h.auth),
        &HttpRequest {
            method: "HEAD",
            path: "/healthz",
            headers: vec![],
            body: b"",
        },
    )
    .await;
    assert_eq!(head.status, 200);
}

#[tokio::test]
async fn a_worker_crash_at_either_boundary_then_redelivery_tells_the_ticket_once() {
    use licensewatch_core::usecases::reprocess_user::WorkerStep;
    for step in [WorkerStep::AfterGraphCall, WorkerStep::AfterRecord] {
        let h = Hook::new().await;
        let now = h.now();
        h.env
            .control(
                &format!("/_sim/skus/{FACULTY}/seats"),
                json!({"enabled": 12}),
            )
            .await;
        let cb = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&cb)
            .await;
        let b = serde_json::to_vec(&json!({"user": upn("teacher11"), "action": "reprocess",
            "ticket": {"system": "servicenow", "id": "INC900", "callback_url": format!("{}/cb", cb.uri())}}))
        .expect("json");
        assert_eq!(
            h.send(h.signed(NEW, "msg_crash", now, &b), &b).await.status,
            202
        );
        let queued = h
            .env
            .rt
            .store
            .pending(&h.env.sim.tenant_id)
            .await
            .expect("pending");
        let http = reqwest::Client::new();
        let crash = |s: WorkerStep| {
            if s == step {
                return Err(licensewatch_core::error::CoreError::BadInput(format!(
                    "crash at {s:?}"
                )));
            }
            Ok(())
        };
        let mut deps = h.env.rt.worker_deps(&http, h.auth.callback_secret());
        deps.verify_delay = std::time::Duration::from_millis(20);
        deps.crash = &crash;
        assert!(
            process(&deps, &queued[0], &h.env.rt.policy, false)
                .await
                .is_err()
        );
        // SQS delivers the message again (the crashed invocation never deleted it), twice for good measure.
        deps.crash = &|_| Ok(());
        for _ in 0..2 {
            let outcome = process(&deps, &queued[0], &h.env.rt.policy, false)
                .await
                .expect("redelivery");
            // Group licensing is still processing the reprocess: pending, as the ticket was told.
            assert_eq!(outcome.status, "pending", "{step:?}");
        }
        let calls = cb.received_requests().await.unwrap_or_default();
        assert_eq!(calls.len(), 1, "{step:?}: the ticket is told exactly once");
        let writes = h.env.get("/_sim/writes").await;
        let expected_writes = match step {
            // Graph accepted the call but the outcome was never recorded: the redelivery calls again (reprocessing
            // is idempotent at Microsoft).
            WorkerStep::AfterGraphCall => 2,
            WorkerStep::AfterRecord => 1,
        };
        assert_eq!(
            writes.as_array().map(Vec::len),
            Some(expected_writes),
            "{step:?}"
        );
    }
}

/// `GET /remediations/{id}`, as the ticketing system polls it.
async fn remediation_status(h: &Hook, id: &str) -> Value {
    handle(
        &h.env.rt.webhook_deps(&h.auth),
        &HttpRequest {
            method: "GET",
            path: &format!("/remediations/{id}"),
            headers: vec![],
            body: b"",
        },
    )
    .await
    .body
}

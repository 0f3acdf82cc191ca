//! grace-period-notify end to end: a 35-day timeline against the simulated tenant, reruns, crashes at every step,
//! failing channels, signed webhooks and escaped templates.

use std::collections::{BTreeSet, HashMap};

use chrono::Duration;
use licensewatch_core::adapters::notify::{Channel, ConsoleChannel, WebhookChannel};
use licensewatch_core::domain::kinds::NoticeKind;
use licensewatch_core::domain::signing::{StandardHeaders, WebhookSecret, verify_standard};
use licensewatch_core::error::CoreError;
use licensewatch_core::policy::WebhookKind;
use licensewatch_core::usecases::notify_grace_period::{SentNotice, Step, no_crash};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

fn key(
    n: &SentNotice,
) -> (
    String,
    Option<String>,
    String,
    Option<i64>,
    String,
    String,
    String,
) {
    (
        n.case_id.clone(),
        n.deadline.map(|d| d.to_rfc3339()),
        n.kind.to_string(),
        n.threshold_days,
        n.audience.as_str().to_string(),
        n.channel.clone(),
        n.recipient.clone(),
    )
}

#[tokio::test]
async fn a_35_day_timeline_sends_exactly_the_expected_notices() {
    let env = TestEnv::with_policy(notify_policy()).await;
    let channels = env.mail_channels();
    let mut all: Vec<(i64, SentNotice)> = Vec::new();
    for day in 0..35 {
        env.check().await;
        let r = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("notify");
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        all.extend(r.sent.into_iter().map(|n| (day, n)));
        if day == 0 {
            // Rerunning the same day sends nothing.
            let again = env
                .notify_with(&channels, &no_crash, false)
                .await
                .expect("rerun");
            assert!(again.sent.is_empty(), "{:?}", again.sent);
            assert!(again.skipped_already_sent > 0);
        }
        env.advance(Duration::days(1)).await;
    }
    // Never the same notice twice.
    let keys: Vec<_> = all.iter().map(|(_, n)| key(n)).collect();
    let unique: BTreeSet<_> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), unique.len(), "a notice was sent twice");

    // Megan Bowen: migrated 2026-10-24 10:00 without a licence, so access ends 2026-11-23 10:00 and her data is
    // deleted 2026-12-23 10:00. Runs happen daily at 09:00 from 2026-11-21.
    let megan: Vec<(i64, &str, &str, Option<i64>, String)> = all
        .iter()
        .filter(|(_, n)| n.user_principal_name == upn("megan.bowen"))
        .map(|(day, n)| {
            (
                *day,
                n.audience.as_str(),
                n.kind.as_str(),
                n.threshold_days,
                n.deadline
                    .map(|d| d.format("%m-%d").to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let a = "11-23".to_string();
    let b = "12-23".to_string();
    assert_eq!(
        megan,
        vec![
            (0, "admin", "threshold", Some(3), a.clone()),
            (0, "user", "threshold", Some(2), a.clone()),
            (1, "admin", "threshold", Some(1), a.clone()),
            (2, "admin", "threshold", Some(0), a.clone()),
            (3, "admin", "access_gone", None, a.clone()),
            (11, "admin", "threshold", Some(21), b.clone()),
            (18, "admin", "threshold", Some(14), b.clone()),
            (25, "admin", "threshold", Some(7), b.clone()),
            (29, "admin", "threshold", Some(3), b.clone()),
            (31, "admin", "threshold", Some(1), b.clone()),
            (32, "admin", "threshold", Some(0), b.clone()),
        ]
    );
    // Admins get at most one digest per run; the mail reached the simulated tenant.
    let mail = env.mail().await;
    let mut per_run: HashMap<String, usize> = HashMap::new();
    for m in &mail {
        let to = m["message"]["toRecipients"][0]["emailAddress"]["address"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if to == "it-team@contoso.com" {
            *per_run
                .entry(m["at"].as_str().unwrap_or("").to_string())
                .or_default() += 1;
        }
    }
    assert!(per_run.values().all(|&n| n == 1), "{per_run:?}");
    assert!(mail.iter().any(
        |m| m["message"]["toRecipients"][0]["emailAddress"]["address"] == "megan.bowen@contoso.com"
    ));
}

#[tokio::test]
async fn a_crash_at_any_step_loses_nothing_and_repeats_at_most_the_message_in_flight() {
    // The clean run says what one day's notices are.
    let clean = TestEnv::with_policy(notify_policy()).await;
    clean.check().await;
    let expected = clean
        .notify_with(&clean.mail_channels(), &no_crash, false)
        .await
        .expect("clean");
    let expected_keys: BTreeSet<_> = expected.sent.iter().map(key).collect();
    let expected_mail = clean.mail().await.len();
    assert!(expected_mail >= 2);

    for step in [
        Step::BeforeIntent,
        Step::AfterIntent,
        Step::AfterSend,
        Step::AfterRecord,
    ] {
        let env = TestEnv::with_policy(notify_policy()).await;
        env.check().await;
        let channels = env.mail_channels();
        let crash = move |s: Step| -> Result<(), CoreError> {
            if s == step {
                Err(CoreError::BadInput(format!("injected crash at {s:?}")))
            } else {
                Ok(())
            }
        };
        assert!(
            env.notify_with(&channels, &crash, false).await.is_err(),
            "{step:?}"
        );
        let after = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("rerun");
        let third = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("third");
        assert!(
            third.sent.is_empty(),
            "{step:?}: all settled after the rerun"
        );
        let mail = env.mail().await.len();
        let delivered_in_crash = match step {
            Step::BeforeIntent | Step::AfterIntent | Step::AfterCreate => 0,
            Step::AfterSend | Step::AfterRecord => 1,
        };
        // Nothing skipped: every expected notice went out in the crashed run or the rerun.
        let rerun_keys: BTreeSet<_> = after.sent.iter().map(key).collect();
        let missing: Vec<_> = expected_keys.difference(&rerun_keys).collect();
        match step {
            Step::AfterRecord => assert!(
                !missing.is_empty() && mail == expected_mail,
                "{step:?}: recorded one is not resent"
            ),
            Step::AfterSend => assert_eq!(
                mail,
                expected_mail + 1,
                "{step:?}: only the message in flight repeats"
            ),
            _ => {
                assert!(missing.is_empty(), "{step:?}: {missing:?}");
                assert_eq!(mail, expected_mail, "{step:?}");
            }
        }
        assert!(
            mail >= expected_mail && mail <= expected_mail + delivered_in_crash,
            "{step:?}: {mail} vs {expected_mail}"
        );
    }
}

#[tokio::test]
async fn a_failing_channel_does_not_block_the_others_and_stays_due() {
    let env = TestEnv::with_policy(notify_policy()).await;
    env.check().await;
    let mut channels = env.mail_channels();
    // Nothing listens on port 9: connection refused.
    channels.insert(
        0,
        Box::new(WebhookChannel::new(
            reqwest::Client::new(),
            WebhookKind::Slack,
            "http://127.0.0.1:9/hook".into(),
            None,
        )),
    );
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].channel, "slack");
    assert!(r.sent.iter().any(|n| n.channel == "mail"));
    let again = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    assert_eq!(again.failed.len(), 1, "the failed notices are tried again");
    assert!(again.sent.is_empty(), "mail is not repeated");
}

#[tokio::test]
async fn generic_webhooks_are_signed_verifiably_with_a_stable_id() {
    let env = TestEnv::with_policy(notify_policy()).await;
    env.check().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let secret_text = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let channels: Vec<Box<dyn Channel>> = vec![Box::new(WebhookChannel::new(
        reqwest::Client::new(),
        WebhookKind::Generic,
        format!("{}/lw", hook.uri()),
        Some(WebhookSecret::parse(secret_text).expect("secret")),
    ))];
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    assert!(!r.sent.is_empty());
    let reqs = hook.received_requests().await.unwrap_or_default();
    assert_eq!(reqs.len(), 1, "one digest");
    let h = |n: &str| {
        reqs[0]
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (id, ts, sig) = (
        h("webhook-id").expect("id"),
        h("webhook-timestamp").expect("ts"),
        h("webhook-signature").expect("sig"),
    );
    let headers = StandardHeaders {
        id: Some(&id),
        timestamp: Some(&ts),
        signature: Some(&sig),
    };
    let now: i64 = ts.parse().expect("int");
    assert_eq!(
        verify_standard(
            &[WebhookSecret::parse(secret_text).expect("s")],
            &headers,
            &reqs[0].body,
            now,
            300
        ),
        Ok(0)
    );
    // An independent implementation (Python's hmac) agrees.
    let script = "import base64,hashlib,hmac,sys\nkey=base64.b64decode(sys.argv[1].split('_',1)[1])\nbody=open(sys.argv[4],'rb').read()\nmsg=sys.argv[2].encode()+b'.'+sys.argv[3].encode()+b'.'+body\nprint('v1,'+base64.b64encode(hmac.new(key,msg,hashlib.sha256).digest()).decode())";
    let dir = tempfile::tempdir().expect("tmp");
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, &reqs[0].body).expect("write");
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            script,
            secret_text,
            &id,
            &ts,
            body_path.to_str().expect("p"),
        ])
        .output()
        .expect("python3 runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), sig);
    let body: serde_json::Value = serde_json::from_slice(&reqs[0].body).expect("json body");
    assert_eq!(body["id"], id.as_str(), "the body names the same stable id");
}

#[tokio::test]
async fn templates_use_real_data_and_escape_user_text() {
    let env = TestEnv::with_policy(notify_policy()).await;
    assert_eq!(
        env.control("/_sim/users", json!({"id": "bad00000-0000-4000-8000-000000000001", "upn": "evil@contoso.onmicrosoft.com",
            "display_name": "<script>alert(1)</script> & Co", "mail": "evil@contoso.com", "created": "2026-10-25T12:00:00Z"})).await,
        201
    );
    env.check().await;
    let console = ConsoleChannel::new(true);
    let channels: Vec<Box<dyn Channel>> = env.mail_channels();
    env.notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    let mail = env.mail().await;
    let digest = mail
        .iter()
        .find(|m| {
            m["message"]["toRecipients"][0]["emailAddress"]["address"] == "it-team@contoso.com"
        })
        .expect("digest");
    let html = digest["message"]["body"]["content"].as_str().expect("html");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    assert!(html.contains("megan.bowen@contoso.onmicrosoft.com") && html.contains("2026-11-23"));
    assert!(html.contains("assign a licence") || html.contains("reprocess"));
    // The console channel renders the same notices as text.
    let channels: Vec<Box<dyn Channel>> = vec![Box::new(console)];
    let r = env
        .notify_with(&channels, &no_crash, true)
        .await
        .expect("dry run");
    assert!(r.dry_run && r.sent.is_empty() && !r.would_send.is_empty());
}

#[tokio::test]
async fn dry_run_sends_and_records_nothing() {
    let env = TestEnv::with_policy(notify_policy()).await;
    env.check().await;
    let channels = env.mail_channels();
    let dry = env
        .notify_with(&channels, &no_crash, true)
        .await
        .expect("dry");
    assert!(!dry.would_send.is_empty());
    assert!(env.mail().await.is_empty());
    let real = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("real");
    assert_eq!(
        real.sent.len(),
        dry.would_send.len(),
        "the dry run wrote no ledger entries"
    );
}

#[tokio::test]
async fn a_closed_case_gets_a_resolved_note_and_a_moved_deadline_gets_new_notices() {
    let env = TestEnv::with_policy(notify_policy()).await;
    env.check().await;
    let channels = env.mail_channels();
    let first = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("day 0");
    let lee_before: Vec<_> = first
        .sent
        .iter()
        .filter(|n| n.user_principal_name == upn("lee.gu") && n.audience == "admin")
        .cloned()
        .collect();
    assert_eq!(lee_before.len(), 1);

    // Megan gets a licence: her case closes and admins hear it is resolved, once.
    env.control(
        &format!("/_sim/users/{}/licenses", upn("megan.bowen")),
        json!({"add": [{"sku_id": E3}]}),
    )
    .await;
    // Better evidence arrives for Lee: the failed assignment at migration time moves her deadline.
    env.rt
        .store
        .put_license_events(
            &env.sim.tenant_id,
            &[licensewatch_core::domain::license_event::LicenseEvent {
                at: chrono::DateTime::parse_from_rfc3339("2026-10-22T08:00:00Z")
                    .expect("t")
                    .to_utc(),
                actor: Some(upn("it.admin")),
                user_id: None,
                user_principal_name: Some(upn("lee.gu")),
                added_sku_ids: vec![E3.into()],
                removed_sku_ids: vec![],
                result: "failure".into(),
                reason: Some("Subscription does not have any available licenses.".into()),
                source: "directory_audit".into(),
                record_ids: vec!["lee-failed".into()],
                correlation_id: None,
            }],
        )
        .await
        .expect("event");
    env.advance(Duration::hours(2)).await;
    env.check().await;
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("later");
    let resolved: Vec<_> = r.sent.iter().filter(|n| n.kind == "resolved").collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].user_principal_name, upn("megan.bowen"));
    let lee_after: Vec<_> = r
        .sent
        .iter()
        .filter(|n| n.user_principal_name == upn("lee.gu") && n.audience == "admin")
        .collect();
    assert_eq!(lee_after.len(), 1, "the new deadline is notified");
    assert_ne!(lee_after[0].deadline, lee_before[0].deadline);
    assert_eq!(
        lee_after[0].deadline.map(|d| d.to_rfc3339()),
        Some("2026-11-21T08:00:00+00:00".to_string())
    );
    let again = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("rerun");
    assert!(again.sent.is_empty());
}

#[tokio::test]
async fn a_tenants_entry_time_zone_dates_its_notices() {
    // The monitored tenant's own [[tenants]] entry says Auckland; [tenant] says UTC. The entry wins.
    let mut policy = notify_policy();
    let tenant_id = licensewatch_sim::Scenario::default_story().tenant_id;
    policy.tenants = vec![licensewatch_core::policy::TenantEntry {
        id: tenant_id.to_ascii_uppercase(),
        delayed_delicensing: false,
        time_zone: "Pacific/Auckland".into(),
        ..Default::default()
    }];
    let env = TestEnv::with_policy(policy).await;
    env.check().await;
    env.notify_with(&env.mail_channels(), &|_| Ok(()), false)
        .await
        .expect("notify");
    let mail = env.mail().await;
    let megan = mail
        .iter()
        .map(|m| m.to_string())
        .find(|m| m.contains(&upn("megan.bowen")))
        .expect("a notice about megan");
    // Megan's access ends 2026-11-23 10:00 UTC (30 days after her account was created), 23:00 in Auckland.
    assert!(
        megan.contains("access ends 2026-11-23 23:00 NZDT"),
        "{megan}"
    );
    assert!(!megan.contains(" UTC"), "{megan}");
    assert_eq!(
        env.rt
            .policy
            .time_zone_for(&tenant_id)
            .expect("valid")
            .name(),
        "Pacific/Auckland"
    );
    assert_eq!(
        env.rt
            .policy
            .time_zone_for("another-tenant")
            .expect("valid")
            .name(),
        "UTC"
    );
}

#[tokio::test]
async fn a_suppression_silences_alerts_and_notices_but_not_the_report() {
    use licensewatch_core::policy::SuppressionEntry;
    let mut policy = notify_policy();
    policy.suppressions = vec![
        // The exhausted faculty SKU: the reseller is adding seats.
        SuppressionEntry {
            sku: "STANDARDWOFFPACK_FACULTY".into(),
            kind: "sku_capacity".into(),
            until: "2027-01-31".into(),
            reason: "reseller adding seats".into(),
            ..Default::default()
        },
        // Grace notices for this tenant, during a migration project.
        SuppressionEntry {
            kind: "unlicensed_mailbox".into(),
            until: "2027-01-31".into(),
            reason: "migration week".into(),
            ..Default::default()
        },
    ];
    let quiet = TestEnv::with_policy(policy).await;
    let loud = TestEnv::with_policy(notify_policy()).await;
    for env in [&quiet, &loud] {
        env.check().await;
    }
    let report = quiet.check().await;
    let faculty = report
        .findings
        .iter()
        .find(|f| {
            f.kind() == "sku_capacity"
                && serde_json::to_value(f).expect("json")["sku_id"] == FACULTY
        })
        .expect("the finding is still reported");
    assert_eq!(
        faculty.suppressed.as_ref().map(|s| s.reason.as_str()),
        Some("reseller adding seats")
    );
    let exhausted = |env: &TestEnv| {
        let tenant = env.sim.tenant_id.clone();
        let store = env.rt.store.clone();
        async move {
            store
                .open_alerts(&tenant)
                .await
                .expect("alerts")
                .into_iter()
                .filter(|a| a.condition.starts_with("sku_exhausted"))
                .count()
        }
    };
    assert_eq!(exhausted(&quiet).await, 0, "suppressed: no alert");
    assert_eq!(
        exhausted(&loud).await,
        1,
        "the same tenant without the suppression"
    );
    let quiet_sent = quiet
        .notify_with(&quiet.mail_channels(), &no_crash, false)
        .await
        .expect("notify")
        .sent;
    assert!(
        quiet_sent.iter().all(|n| n.kind == NoticeKind::Alert),
        "only alerts, no grace notices: {quiet_sent:?}"
    );
    let loud_sent = loud
        .notify_with(&loud.mail_channels(), &no_crash, false)
        .await
        .expect("notify")
        .sent;
    assert!(
        loud_sent.iter().any(|n| n.kind != NoticeKind::Alert),
        "grace notices go out without the suppression"
    );
}

/// Outlook allows 4 requests in flight per app and mailbox: a dozen notices sent at once from one mailbox (runs of
/// several tenants or jobs in one process) wait for each other instead of meeting 429 `MailboxConcurrency`.
#[tokio::test]
async fn mail_from_one_mailbox_keeps_to_outlooks_four_requests_in_flight() {
    use licensewatch_core::ports::channel::{Audience, Message};
    let env = TestEnv::with_policy(notify_policy()).await;
    env.control(
        "/_sim/faults",
        json!({"route": "sendMail", "kind": "latency", "latency_ms": 150}),
    )
    .await;
    let channels = env.mail_channels();
    let message = |i: usize| Message {
        id: format!("notice-{i}"),
        audience: Audience::Admin,
        to: None,
        subject: format!("notice {i}"),
        text: "text".into(),
        html: "<p>text</p>".into(),
        data: json!({}),
        timestamp: 0,
    };
    let messages: Vec<Message> = (0..12).map(message).collect();
    let sent = futures::future::join_all(
        messages
            .iter()
            .map(|m| channels[0].deliver("it-team@contoso.com", m)),
    )
    .await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    let mail: Vec<Value> = env
        .requests()
        .await
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/sendMail")))
        .collect();
    let refused = mail.iter().filter(|r| r["status"] == 429).count();
    assert_eq!((mail.len(), refused), (12, 0), "{mail:?}");
}

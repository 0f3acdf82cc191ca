//! Tickets in ServiceNow, Jira, HaloPSA, ConnectWise and Autotask (a local desk written from their documentation):
//! one ticket per case across its life (created, commented at each later threshold, resolved when the licence is
//! back), a crash at each boundary, two notify runs at once, and a desk that is down or throttles.

use chrono::Duration;
use licensewatch_core::adapters::notify::build_channels;
use licensewatch_core::error::CoreError;
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::channel::Channel;
use licensewatch_core::usecases::notify_grace_period::{Step, no_crash};
use serde_json::json;

use crate::helpers::*;
use crate::psa::{FakePsa, FakeTicket, credentials, ticket_toml};

const SYSTEMS: [&str; 5] = ["servicenow", "jira", "halopsa", "connectwise", "autotask"];

fn policy_with(systems: &[&str], url: &str) -> Policy {
    let toml: String = systems.iter().map(|s| ticket_toml(s, url)).collect();
    let mut p = notify_policy();
    p.notify.tickets = Policy::parse(&toml).expect("ticket policy").notify.tickets;
    p
}

fn desks(env: &TestEnv) -> Vec<Box<dyn Channel>> {
    build_channels(
        &env.rt.policy,
        &env.rt.microsoft.graph,
        &reqwest::Client::new(),
        &credentials,
    )
    .expect("channels")
    .into_iter()
    .filter(|c| c.tickets().is_some())
    .collect()
}

fn megans(tickets: &[FakeTicket], system: &str) -> Vec<FakeTicket> {
    tickets
        .iter()
        .filter(|t| t.system == system && t.title.contains(&upn("megan.bowen")))
        .cloned()
        .collect()
}

/// Exactly one ticket per correlation key in each system.
fn assert_one_ticket_per_case(tickets: &[FakeTicket], what: &str) {
    let mut seen = std::collections::BTreeSet::new();
    for t in tickets {
        assert!(!t.correlation.is_empty(), "{what}: {t:?}");
        assert!(
            seen.insert((t.system, t.correlation.clone())),
            "{what}: a second ticket for {} in {}",
            t.correlation,
            t.system
        );
    }
}

#[tokio::test]
async fn each_desk_keeps_one_ticket_per_case_from_creation_to_resolution() {
    let psa = FakePsa::start().await;
    let env = TestEnv::with_policy(policy_with(&SYSTEMS, &psa.url)).await;
    let channels = desks(&env);
    assert_eq!(channels.len(), 5);
    // Megan Bowen: access ends 2026-11-23 10:00; runs at 09:00 from 2026-11-21: thresholds 3, 1 and 0 days.
    for day in 0..3 {
        env.check().await;
        let r = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("notify");
        assert!(r.failed.is_empty(), "day {day}: {:?}", r.failed);
        let again = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("rerun");
        assert!(
            again.sent.is_empty(),
            "day {day}: a rerun files nothing: {:?}",
            again.sent
        );
        env.advance(Duration::days(1)).await;
    }
    let tickets = psa.tickets();
    assert_one_ticket_per_case(&tickets, "after three days");
    for system in SYSTEMS {
        let megan = megans(&tickets, system);
        assert_eq!(megan.len(), 1, "{system}");
        let t = &megan[0];
        assert_eq!(
            t.comments.len(),
            2,
            "{system}: commented at 1 and 0 days: {:?}",
            t.comments
        );
        assert!(!t.resolved, "{system}");
        assert!(
            t.text.contains("What to do:") && t.text.contains("learn.microsoft.com"),
            "{system}: {}",
            t.text
        );
        assert!(t.comments[1].contains("What to do:"), "{system}");
    }
    // Routes from the policy reached the desks.
    let route = |s: &str| megans(&tickets, s)[0].clone();
    assert_eq!(route("servicenow").queue, "Service Desk");
    assert_eq!(route("jira").queue, "IT");
    assert_eq!(
        (
            route("halopsa").queue.as_str(),
            route("halopsa").company.as_str()
        ),
        ("1st Line", "12")
    );
    assert_eq!(route("connectwise").company, "ContosoLtd");
    assert_eq!(
        (
            route("autotask").queue.as_str(),
            route("autotask").company.as_str()
        ),
        ("29682833", "174")
    );
    assert!(route("servicenow").critical, "3 days or fewer is critical");

    // Megan gets a licence: the case closes and each ticket is resolved, once.
    env.control(
        &format!("/_sim/users/{}/licenses", upn("megan.bowen")),
        json!({"add": [{"sku_id": E3}]}),
    )
    .await;
    env.check().await;
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("resolve");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let again = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("rerun");
    assert!(again.sent.is_empty());
    let tickets = psa.tickets();
    assert_one_ticket_per_case(&tickets, "after resolution");
    for system in SYSTEMS {
        let t = &megans(&tickets, system)[0];
        assert!(t.resolved, "{system}");
        assert_eq!(
            t.comments.len(),
            3,
            "{system}: the resolution note: {:?}",
            t.comments
        );
    }
}

#[tokio::test]
async fn a_crash_at_each_boundary_never_opens_a_second_ticket_nor_repeats_the_opening() {
    let steps = [
        Step::BeforeIntent,
        Step::AfterIntent,
        Step::AfterCreate,
        Step::AfterSend,
        Step::AfterRecord,
    ];
    for (step, system) in steps.into_iter().flat_map(|s| SYSTEMS.map(|y| (s, y))) {
        let psa = FakePsa::start().await;
        let env = TestEnv::with_policy(policy_with(&[system], &psa.url)).await;
        let channels = desks(&env);
        env.check().await;
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
        let rerun = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("rerun");
        assert!(rerun.failed.is_empty(), "{step:?}: {:?}", rerun.failed);
        let third = env
            .notify_with(&channels, &no_crash, false)
            .await
            .expect("third");
        assert!(third.sent.is_empty(), "{step:?}: settled after the rerun");
        let tickets = psa.tickets();
        assert_one_ticket_per_case(&tickets, &format!("{step:?} in {system}"));
        assert!(
            tickets.len() >= 2,
            "{step:?}: every open case has its ticket"
        );
        for t in &tickets {
            assert!(
                t.comments.is_empty(),
                "{step:?} in {system}: the notice that opened a ticket is not repeated as a comment: {:?}",
                t.comments
            );
        }
    }
}

#[tokio::test]
async fn two_notify_runs_at_once_open_one_ticket_per_case() {
    let psa = FakePsa::start().await;
    psa.set_delay(150);
    let env = TestEnv::with_policy(policy_with(&["jira"], &psa.url)).await;
    let channels = desks(&env);
    env.check().await;
    let (a, b) = tokio::join!(
        env.notify_with(&channels, &no_crash, false),
        env.notify_with(&channels, &no_crash, false)
    );
    let (a, b) = (a.expect("a"), b.expect("b"));
    assert!(
        a.skipped.is_some() || b.skipped.is_some(),
        "one run waits for the other's lease"
    );
    let tickets = psa.tickets();
    assert_one_ticket_per_case(&tickets, "concurrent runs");
    assert_eq!(tickets.len(), a.sent.len() + b.sent.len());
}

#[tokio::test]
async fn a_desk_that_is_down_holds_back_no_mail_and_is_filed_when_it_is_back() {
    let psa = FakePsa::start().await;
    psa.set_down(true);
    let env = TestEnv::with_policy(policy_with(&["servicenow"], &psa.url)).await;
    let mut channels = env.mail_channels();
    channels.extend(desks(&env));
    env.check().await;
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    assert!(r.sent.iter().any(|n| n.channel == "mail"), "mail went out");
    assert!(
        !r.failed.is_empty() && r.failed.iter().all(|f| f.channel == "ticket:servicenow"),
        "{:?}",
        r.failed
    );
    assert!(psa.tickets().is_empty());
    assert!(!psa.requests().is_empty(), "the desk was tried");
    let mail = env.mail().await.len();
    // Back, but throttling its first answers: retried within the run.
    psa.set_down(false);
    psa.throttle_next(2);
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("runs");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        r.sent.iter().all(|n| n.channel == "ticket:servicenow"),
        "mail is not repeated"
    );
    assert_eq!(env.mail().await.len(), mail);
    assert_one_ticket_per_case(&psa.tickets(), "after the outage");
    assert!(!psa.tickets().is_empty());
}

#[tokio::test]
async fn a_missing_desk_credential_names_the_variable_and_the_key() {
    let p = policy_with(&["autotask"], "https://webservices5.autotask.net");
    let env = TestEnv::with_policy(p).await;
    let err = build_channels(
        &env.rt.policy,
        &env.rt.microsoft.graph,
        &reqwest::Client::new(),
        &|k| {
            if k == "AT_SECRET" {
                None
            } else {
                credentials(k)
            }
        },
    )
    .err()
    .expect("missing secret");
    assert_eq!(err.problems[0].name, "AT_SECRET");
    assert!(
        err.problems[0]
            .problem
            .contains("notify.tickets[0].secret_env"),
        "{err}"
    );
    let bad =
        Policy::parse("[[notify.tickets]]\nsystem = 'jira'\nurl = 'not a url'\n").expect_err("bad");
    let text = bad.to_string();
    for key in [
        "notify.tickets[0].url",
        "notify.tickets[0].user_env",
        "notify.tickets[0].token_env",
        "notify.tickets[0].project",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[tokio::test]
async fn a_remediation_asked_from_a_ticket_is_answered_in_that_ticket_once() {
    use licensewatch_core::domain::signing::sign_hub;
    use licensewatch_core::usecases::reprocess_user::process;
    use licensewatch_core::usecases::webhook::{HttpRequest, WebhookAuth, handle};
    let psa = FakePsa::start().await;
    let mut p = policy_with(&["jira", "servicenow"], &psa.url);
    let sources = Policy::parse(
        "[[webhook.sources]]\nname = 'jira'\nscheme = 'jira'\nsecret_env = 'LW_JIRA'\n\
         [webhook.sources.fields]\nuser = '/issue/fields/customfield_10050'\nticket_id = '/issue/key'\n\
         [[webhook.sources]]\nname = 'servicenow'\nscheme = 'shared-secret'\nsecret_env = 'LW_SNOW'\n\
         [webhook.sources.fields]\nuser = '/u_affected_user'\nticket_id = '/number'\n",
    )
    .expect("sources");
    p.webhook.sources = sources.webhook.sources;
    let env = TestEnv::with_policy(p).await;
    let secret = "jira-admin-webhook-secret-2026";
    let auth =
        WebhookAuth::from_policy(&env.rt.policy, &|_| Some(secret.to_string())).expect("auth");
    let issue = psa.open("jira", "Reprocess Adele's licence");
    let incident = psa.open("servicenow", "Reprocess a teacher's licence");
    let jira_body = serde_json::to_vec(&json!({"webhookEvent": "jira:issue_updated",
        "issue": {"key": issue.key, "fields": {"customfield_10050": upn("teacher11")}}}))
    .expect("json");
    let snow_body = serde_json::to_vec(&json!({"number": format!("INC{:07}", incident.id),
        "u_affected_user": upn("teacher12")}))
    .expect("json");
    let deps = env.rt.webhook_deps(&auth);
    for (path, headers, body) in [
        (
            "/webhooks/jira",
            vec![("x-hub-signature", sign_hub(secret.as_bytes(), &jira_body))],
            &jira_body,
        ),
        (
            "/webhooks/servicenow",
            vec![("x-licensewatch-secret", secret.to_string())],
            &snow_body,
        ),
    ] {
        let mut all: Vec<(String, String)> =
            vec![("content-type".into(), "application/json".into())];
        all.extend(headers.into_iter().map(|(k, v)| (k.to_string(), v)));
        let r = handle(
            &deps,
            &HttpRequest {
                method: "POST",
                path,
                headers: all,
                body,
            },
        )
        .await;
        assert_eq!(r.status, 202, "{path}: {:?}", r.body);
    }
    let desks = desks(&env);
    let http = reqwest::Client::new();
    let mut worker = env.rt.worker_deps(&http, None);
    worker.desks = &desks;
    let queued = env
        .rt
        .store
        .pending(&env.sim.tenant_id)
        .await
        .expect("queue");
    assert_eq!(queued.len(), 2);
    for request in &queued {
        let outcome = process(&worker, request, &env.rt.policy, false)
            .await
            .expect("worker");
        // SQS delivers again: the ticket is not told twice.
        process(&worker, request, &env.rt.policy, false)
            .await
            .expect("redelivery");
        let ticket_id = &request.ticket.as_ref().expect("ticket").id;
        let t = psa
            .tickets()
            .into_iter()
            .find(|t| &t.key == ticket_id || &format!("INC{:07}", t.id) == ticket_id)
            .expect("the ticket");
        assert_eq!(t.comments.len(), 1, "{ticket_id}: {:?}", t.comments);
        assert!(
            t.comments[0].contains(outcome.status.as_str())
                && t.comments[0].contains(&request.remediation_id),
            "{ticket_id}: {:?}",
            t.comments
        );
    }
}

#[tokio::test]
async fn an_alert_is_one_ticket_resolved_when_the_condition_ends() {
    let psa = FakePsa::start().await;
    let env = TestEnv::with_policy(policy_with(&["autotask"], &psa.url)).await;
    let channels = desks(&env);
    env.check().await;
    env.notify_with(&channels, &no_crash, false)
        .await
        .expect("notify");
    let alerts = |tickets: Vec<FakeTicket>| -> Vec<FakeTicket> {
        tickets
            .into_iter()
            .filter(|t| t.title.starts_with("licensewatch alert:"))
            .collect()
    };
    let open = alerts(psa.tickets());
    assert_eq!(
        open.len(),
        1,
        "the faculty SKU is exhausted: {:?}",
        psa.tickets()
    );
    assert!(open[0].critical && !open[0].resolved);
    assert!(
        open[0].text.contains("Free seats"),
        "the runbook: {}",
        open[0].text
    );
    // Seats are bought: the next check closes the occurrence and its ticket is resolved, once.
    env.control(
        &format!("/_sim/skus/{FACULTY}/seats"),
        json!({"enabled": 12}),
    )
    .await;
    env.advance(Duration::hours(1)).await;
    env.check().await;
    let r = env
        .notify_with(&channels, &no_crash, false)
        .await
        .expect("notify");
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    env.notify_with(&channels, &no_crash, false)
        .await
        .expect("rerun");
    let after = alerts(psa.tickets());
    assert_eq!(after.len(), 1, "no second ticket");
    assert!(after[0].resolved, "{:?}", after[0]);
    assert_eq!(
        after[0].comments.len(),
        1,
        "one resolution note: {:?}",
        after[0].comments
    );
    assert!(after[0].comments[0].contains("no longer holds"));
}

#[tokio::test]
async fn doctor_asks_each_desk_a_harmless_question_and_names_the_one_that_refuses() {
    use licensewatch_core::domain::doctor::{Job, Verdict};
    use licensewatch_core::usecases::doctor::doctor;
    let psa = FakePsa::start().await;
    let env = TestEnv::with_policy(policy_with(&["jira", "halopsa"], &psa.url)).await;
    let req = env.rt.doctor_request(&[Job::GracePeriodNotify], None);
    let mut deps = env.rt.doctor_deps();
    let verdicts = |r: &licensewatch_core::domain::doctor::DoctorReport| -> Vec<(String, Verdict)> {
        r.checks
            .iter()
            .filter(|c| c.name.starts_with("service_desk"))
            .map(|c| (c.name.clone(), c.verdict))
            .collect()
    };
    deps.desks = Ok(desks(&env));
    let r = doctor(&deps, &req).await;
    assert_eq!(
        verdicts(&r),
        [
            ("service_desk:jira".to_string(), Verdict::Ok),
            ("service_desk:halopsa".to_string(), Verdict::Ok)
        ]
    );
    assert!(psa.tickets().is_empty(), "doctor opens no ticket");
    // Jira's token revoked: that desk is named, with the fix.
    deps.desks = Ok(build_channels(
        &env.rt.policy,
        &env.rt.microsoft.graph,
        &reqwest::Client::new(),
        &|k| {
            if k == "JIRA_TOKEN" {
                Some("revoked".into())
            } else {
                credentials(k)
            }
        },
    )
    .expect("channels")
    .into_iter()
    .filter(|c| c.tickets().is_some())
    .collect());
    let r = doctor(&deps, &req).await;
    assert_eq!(
        verdicts(&r),
        [
            ("service_desk:jira".to_string(), Verdict::Missing),
            ("service_desk:halopsa".to_string(), Verdict::Ok)
        ]
    );
    let jira = r
        .checks
        .iter()
        .find(|c| c.name == "service_desk:jira")
        .expect("jira");
    assert!(
        jira.detail.contains("401") && !jira.detail.contains("revoked"),
        "{jira:?}"
    );
    // The environment lacks the credentials altogether (this process sets none): the variable is named.
    let r = doctor(&env.rt.doctor_deps(), &req).await;
    let desk = r
        .checks
        .iter()
        .find(|c| c.name == "service_desk")
        .expect("config check");
    assert_eq!(desk.verdict, Verdict::Missing);
    assert!(desk.detail.contains("JIRA_USER"), "{desk:?}");
}

//! `POST /webhooks/{source}`: remediation requests as ServiceNow, Jira (webhooks and Automation), HaloPSA,
//! ConnectWise and Autotask really send them, each with a correct, a wrong and a replayed request. The payloads and
//! headers here are the README's recipes (schemes: ../shared/reference/TICKETING.md; Jira's `X-Hub-Signature`:
//! Atlassian developer docs "Webhooks", secure admin webhooks; ConnectWise's `x-content-signature` and key_url:
//! ConnectWise developer docs "Callbacks"; Autotask's `x-hook-signature`: Autotask REST API "Webhooks").

use licensewatch_core::domain::signing::{sign_autotask, sign_connectwise, sign_hub};
use licensewatch_core::policy::Policy;
use licensewatch_core::usecases::webhook::{HttpRequest, HttpResponse, WebhookAuth, handle};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const JIRA_SECRET: &str = "jira-admin-webhook-secret-2026";
const AUTOMATION_SECRET: &str = "automation-header-secret-2026";
const HALO_TOKEN: &str = "halo-bearer-token-0123456789";
const SNOW_SECRET: &str = "servicenow-rest-message-secret";
const AUTOTASK_SECRET: &str = "autotask-webhook-secret-key-01";
const CW_KEY: &str = "connectwise-callback-signing-key";
const SIGNED_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The sources of the README's recipes; ConnectWise's PSA is `psa`.
fn sources_toml(psa: &str) -> String {
    format!(
        r#"
[[webhook.sources]]
name = "jira"
scheme = "jira"
secret_env = "LW_JIRA_SECRET"
[webhook.sources.fields]
user = "/issue/fields/customfield_10050"
ticket_id = "/issue/key"

[[webhook.sources]]
name = "jira-automation"
scheme = "shared-secret"
secret_env = "LW_AUTOMATION_SECRET"
header = "X-Automation-Secret"
system = "jira"

[[webhook.sources]]
name = "halopsa"
scheme = "shared-secret"
secret_env = "LW_HALO_TOKEN"
header = "Authorization"
[webhook.sources.fields]
user = "/ticket/user_emailaddress"
ticket_id = "/ticket/id"
sku_ids = "/ticket/customfields/licence_skus"
action = "/ticket/customfields/licence_action"

[[webhook.sources]]
name = "servicenow"
scheme = "shared-secret"
secret_env = "LW_SNOW_SECRET"
[webhook.sources.fields]
user = "/u_affected_user"
ticket_id = "/number"
callback_url = "/u_callback"

[[webhook.sources]]
name = "connectwise"
scheme = "connectwise"
psa_url = "{psa}"
[webhook.sources.fields]
user = "/Entity/contactEmailAddress"
ticket_id = "/ID"

[[webhook.sources]]
name = "signed"
scheme = "standard-webhooks"
secret_env = "LW_SIGNED_SECRET"
system = "freshservice"

[[webhook.sources]]
name = "github-style"
scheme = "hub-sha256"
secret_env = "LW_AUTOMATION_SECRET"

[[webhook.sources]]
name = "autotask"
scheme = "autotask"
secret_env = "LW_AUTOTASK_SECRET"
[webhook.sources.fields]
user = "/Fields/M365 User"
ticket_id = "/Id"
"#
    )
}

fn secret(name: &str) -> Option<String> {
    Some(
        match name {
            "LW_JIRA_SECRET" => JIRA_SECRET,
            "LW_AUTOMATION_SECRET" => AUTOMATION_SECRET,
            "LW_HALO_TOKEN" => HALO_TOKEN,
            "LW_SNOW_SECRET" => SNOW_SECRET,
            "LW_AUTOTASK_SECRET" => AUTOTASK_SECRET,
            "LW_SIGNED_SECRET" => SIGNED_SECRET,
            _ => return None,
        }
        .to_string(),
    )
}

struct Desk {
    env: TestEnv,
    auth: WebhookAuth,
    psa: MockServer,
}

impl Desk {
    async fn new() -> Self {
        let psa = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/v4_6_release/apis/3.0/system/callbacks/keys/7"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"signing_key": CW_KEY})))
            .mount(&psa)
            .await;
        let mut p = Policy::parse(&sources_toml(&psa.uri())).expect("policy");
        p.notify = notify_policy().notify;
        let auth = WebhookAuth::from_policy(&p, &secret)
            .expect("auth")
            .with_signing_keys(std::sync::Arc::new(
                licensewatch_core::adapters::signing_keys::HttpSigningKeys::new(
                    reqwest::Client::new(),
                ),
            ));
        Self {
            env: TestEnv::with_policy(p).await,
            auth,
            psa,
        }
    }

    async fn post_raw(&self, source: &str, headers: &[(&str, String)], raw: &[u8]) -> HttpResponse {
        let mut all: Vec<(String, String)> =
            vec![("content-type".into(), "application/json".into())];
        all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let req = HttpRequest {
            method: "POST",
            path: &format!("/webhooks/{source}"),
            headers: all,
            body: raw,
        };
        handle(&self.env.rt.webhook_deps(&self.auth), &req).await
    }

    async fn queued(&self) -> Vec<licensewatch_core::ports::store::RemediationRequest> {
        self.env
            .rt
            .store
            .pending(&self.env.sim.tenant_id)
            .await
            .expect("queue")
    }
}

/// A correct request is queued with the ticket it came from; a wrong one is refused and queues nothing; the same
/// request again answers the first remediation and queues nothing more.
async fn correct_wrong_replayed(
    desk: &Desk,
    source: &str,
    good: (&[(&str, String)], &[u8]),
    wrong: (&[(&str, String)], &[u8]),
    expect_ticket: (&str, &str),
) {
    let before = desk.queued().await.len();
    let bad = desk.post_raw(source, wrong.0, wrong.1).await;
    assert_eq!(bad.status, 401, "{source} wrong: {:?}", bad.body);
    assert_eq!(
        desk.queued().await.len(),
        before,
        "{source}: a refused request queues nothing"
    );
    let first = desk.post_raw(source, good.0, good.1).await;
    assert_eq!(first.status, 202, "{source}: {:?}", first.body);
    let queued = desk.queued().await;
    assert_eq!(queued.len(), before + 1, "{source}");
    let request = queued.last().expect("queued");
    let ticket = request.ticket.as_ref().expect("ticket");
    assert_eq!(
        (ticket.system.as_str(), ticket.id.as_str()),
        expect_ticket,
        "{source}"
    );
    let again = desk.post_raw(source, good.0, good.1).await;
    assert_eq!(
        (
            again.status,
            again.body["duplicate"].as_bool(),
            &again.body["remediation_id"]
        ),
        (200, Some(true), &first.body["remediation_id"]),
        "{source}: a replay is not acted on again"
    );
    assert_eq!(desk.queued().await.len(), before + 1, "{source}");
}

fn raw(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

#[tokio::test]
async fn jira_webhooks_and_automation_rules_are_accepted_as_jira_sends_them() {
    let desk = Desk::new().await;
    // A Jira Cloud admin webhook (jira:issue_updated) signed with X-Hub-Signature, its delivery id in
    // X-Atlassian-Webhook-Identifier.
    let issue = json!({"timestamp": 1796000000000_i64, "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_generic",
        "issue": {"id": "10042", "key": "IT-42", "fields": {"summary": "Reprocess licence",
            "customfield_10050": upn("teacher11")}}});
    let body = raw(&issue);
    let good = [
        ("x-hub-signature", sign_hub(JIRA_SECRET.as_bytes(), &body)),
        (
            "x-atlassian-webhook-identifier",
            "4e1b6f2c-0001".to_string(),
        ),
    ];
    // Signed as GitHub would (the -256 header) is not what Jira sends: refused.
    let wrong = [(
        "x-hub-signature-256",
        sign_hub(JIRA_SECRET.as_bytes(), &body),
    )];
    correct_wrong_replayed(
        &desk,
        "jira",
        (&good, &body),
        (&wrong, &body),
        ("jira", "IT-42"),
    )
    .await;
    // The same issue updated again (a new timestamp, a new delivery) asks for the same thing: a duplicate.
    let mut later = issue.clone();
    later["timestamp"] = json!(1796000060000_i64);
    let body2 = raw(&later);
    let r = desk
        .post_raw(
            "jira",
            &[
                ("x-hub-signature", sign_hub(JIRA_SECRET.as_bytes(), &body2)),
                (
                    "x-atlassian-webhook-identifier",
                    "4e1b6f2c-0002".to_string(),
                ),
            ],
            &body2,
        )
        .await;
    assert_eq!(
        (r.status, r.body["duplicate"].as_bool()),
        (200, Some(true)),
        "{:?}",
        r.body
    );
    // A signature over another body is refused.
    let r = desk
        .post_raw(
            "jira",
            &[("x-hub-signature", sign_hub(JIRA_SECRET.as_bytes(), b"{}"))],
            &body2,
        )
        .await;
    assert_eq!(r.status, 401);

    // Jira Automation's "Send web request": licensewatch's own body, a fixed secret header.
    let automation = raw(&json!({"user": upn("teacher12"), "action": "reprocess",
        "ticket": {"system": "jira", "id": "IT-43"}}));
    correct_wrong_replayed(
        &desk,
        "jira-automation",
        (
            &[("X-Automation-Secret", AUTOMATION_SECRET.to_string())],
            &automation,
        ),
        (
            &[("X-Automation-Secret", format!("{AUTOMATION_SECRET}x"))],
            &automation,
        ),
        ("jira", "IT-43"),
    )
    .await;
    assert_eq!(desk.post_raw("nobody", &[], &automation).await.status, 404);
}

#[tokio::test]
async fn servicenow_and_halopsa_send_a_secret_header_and_their_own_bodies() {
    let desk = Desk::new().await;
    let incident = raw(&json!({"sys_id": "46d44a5c", "number": "INC0010042",
        "u_affected_user": upn("teacher11"), "u_callback": "https://contoso.service-now.com/api/x_lw/cb"}));
    correct_wrong_replayed(
        &desk,
        "servicenow",
        (
            &[("x-licensewatch-secret", SNOW_SECRET.to_string())],
            &incident,
        ),
        (&[("x-licensewatch-secret", "guess".to_string())], &incident),
        ("servicenow", "INC0010042"),
    )
    .await;
    let queued = desk.queued().await;
    assert_eq!(
        queued[0]
            .ticket
            .as_ref()
            .and_then(|t| t.callback_url.as_deref()),
        Some("https://contoso.service-now.com/api/x_lw/cb")
    );
    // HaloPSA's webhook with Bearer authentication; ticket id a number, SKUs a comma-separated custom field.
    let sku = "6fd2c87f-b296-42f0-b197-1e91e994b900";
    let halo = raw(&json!({"event": "ticket_updated", "ticket": {"id": 1234,
        "user_emailaddress": upn("teacher12"), "summary": "Licence for new starter",
        "customfields": {"licence_action": "assign", "licence_skus": sku}}}));
    correct_wrong_replayed(
        &desk,
        "halopsa",
        (&[("Authorization", format!("Bearer {HALO_TOKEN}"))], &halo),
        (&[("Authorization", "Bearer nope".to_string())], &halo),
        ("halopsa", "1234"),
    )
    .await;
    let halo_request = desk.queued().await.pop().expect("halo");
    assert_eq!(
        (
            halo_request.action.to_string(),
            halo_request.sku_ids.clone()
        ),
        ("assign".to_string(), vec![sku.to_string()])
    );
    // On AWS (https_only) a shared secret sent over plain HTTP is refused before it is compared.
    let mut strict = desk.auth.clone();
    strict.https_only = true;
    let req = |proto: &'static str| HttpRequest {
        method: "POST",
        path: "/webhooks/servicenow",
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-licensewatch-secret".into(), SNOW_SECRET.into()),
            ("x-forwarded-proto".into(), proto.into()),
        ],
        body: &incident,
    };
    let deps = desk.env.rt.webhook_deps(&strict);
    assert_eq!(handle(&deps, &req("http")).await.status, 403);
    assert_eq!(
        handle(&deps, &req("https")).await.status,
        200,
        "the same request over HTTPS"
    );
}

#[tokio::test]
async fn connectwise_callbacks_are_verified_with_the_key_from_the_psa_and_nowhere_else() {
    let desk = Desk::new().await;
    let key_url = format!(
        "{}/v4_6_release/apis/3.0/system/callbacks/keys/7",
        desk.psa.uri()
    );
    let entity = json!({"id": 4711, "summary": "Reprocess licence", "contactEmailAddress": upn("teacher11")});
    let callback = |key_url: &str| {
        raw(
            &json!({"MessageId": "6a1f", "FromUrl": "https://na.myconnectwise.net", "CompanyId": "contoso",
            "MemberId": "admin1", "Action": "updated", "Type": "ticket", "ID": 4711,
            "Entity": entity.to_string(), "Metadata": {"key_url": key_url}}),
        )
    };
    let body = callback(&key_url);
    correct_wrong_replayed(
        &desk,
        "connectwise",
        (
            &[("x-content-signature", sign_connectwise(CW_KEY, &body))],
            &body,
        ),
        (
            &[(
                "x-content-signature",
                sign_connectwise("another key", &body),
            )],
            &body,
        ),
        ("connectwise", "4711"),
    )
    .await;
    // A callback naming a key on another host is refused without fetching it.
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"signing_key": "attacker"})))
        .mount(&elsewhere)
        .await;
    let forged = callback(&format!("{}/keys/7", elsewhere.uri()));
    let r = desk
        .post_raw(
            "connectwise",
            &[("x-content-signature", sign_connectwise("attacker", &forged))],
            &forged,
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(
        elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the endpoint never fetches a key from a host it was not configured with"
    );
    // One fetch of the key for all the callbacks (cached).
    let fetches = desk.psa.received_requests().await.unwrap_or_default().len();
    assert_eq!(fetches, 1);
}

#[tokio::test]
async fn autotask_webhooks_are_verified_with_hmac_sha1() {
    let desk = Desk::new().await;
    let body = raw(
        &json!({"Action": "Update", "Guid": "b7c2", "EntityType": "Ticket", "Id": 98765,
        "Fields": {"title": "Reprocess licence", "M365 User": upn("teacher11")},
        "EventTime": "2026-12-07T09:00:00Z", "SequenceNumber": 3, "PersonID": 29682885}),
    );
    correct_wrong_replayed(
        &desk,
        "autotask",
        (
            &[(
                "x-hook-signature",
                sign_autotask(AUTOTASK_SECRET.as_bytes(), &body),
            )],
            &body,
        ),
        (
            &[("x-hook-signature", sign_autotask(b"not the secret", &body))],
            &body,
        ),
        ("autotask", "98765"),
    )
    .await;
    // A mapped body without the user names the pointer.
    let empty = raw(&json!({"Id": 1, "Fields": {}}));
    let r = desk
        .post_raw(
            "autotask",
            &[(
                "x-hook-signature",
                sign_autotask(AUTOTASK_SECRET.as_bytes(), &empty),
            )],
            &empty,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("/Fields/M365 User"),
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn standard_webhooks_and_hub_signatures_work_per_source_with_their_own_secrets() {
    use licensewatch_core::domain::signing::WebhookSecret;
    let desk = Desk::new().await;
    let body =
        raw(&json!({"user": upn("teacher11"), "action": "reprocess", "ticket": {"id": "SR-7"}}));
    let now = desk.env.now().timestamp();
    let sign = |secret: &str, id: &str, ts: i64| {
        let s = WebhookSecret::parse(secret).expect("secret");
        vec![
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", s.sign(id, ts, &body)),
        ]
    };
    let good = sign(SIGNED_SECRET, "msg_1", now);
    // Signed with another source's whsec secret: refused.
    let wrong = sign("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_2", now);
    correct_wrong_replayed(
        &desk,
        "signed",
        (&good, &body),
        (&wrong, &body),
        ("freshservice", "SR-7"),
    )
    .await;
    // A stale timestamp is refused even with the right secret.
    let stale = sign(SIGNED_SECRET, "msg_3", now - 301);
    assert_eq!(desk.post_raw("signed", &stale, &body).await.status, 401);
    let body2 = raw(&json!({"user": upn("teacher12"), "ticket": {"system": "github", "id": "42"}}));
    correct_wrong_replayed(
        &desk,
        "github-style",
        (
            &[(
                "x-hub-signature-256",
                sign_hub(AUTOMATION_SECRET.as_bytes(), &body2),
            )],
            &body2,
        ),
        (
            &[(
                "x-hub-signature",
                sign_hub(AUTOMATION_SECRET.as_bytes(), &body2),
            )],
            &body2,
        ),
        ("github", "42"),
    )
    .await;
}

#[tokio::test]
async fn a_source_without_its_secret_stops_the_endpoint_naming_the_variable() {
    let p = Policy::parse(&sources_toml("https://na.myconnectwise.net")).expect("policy");
    let err = WebhookAuth::from_policy(&p, &|k| {
        if k == "LW_HALO_TOKEN" {
            None
        } else {
            secret(k)
        }
    })
    .expect_err("missing");
    assert_eq!(err.problems[0].name, "LW_HALO_TOKEN");
    assert!(
        err.problems[0]
            .problem
            .contains("webhook.sources[2].secret_env"),
        "{err}"
    );
    let bad =
        Policy::parse("[[webhook.sources]]\nname = 'a/b'\nscheme = 'hmac'\n").expect_err("bad");
    assert!(bad.to_string().contains("scheme"), "{bad}");
    let bad = Policy::parse("[[webhook.sources]]\nname = 'a/b'\nscheme = 'autotask'\n[webhook.sources.fields]\nticket_id = 'Id'\n")
        .expect_err("bad");
    let text = bad.to_string();
    for key in [
        "webhook.sources[0].name",
        "webhook.sources[0].secret_env",
        "webhook.sources[0].fields.ticket_id",
        "webhook.sources[0].fields.user",
    ] {
        assert!(text.contains(key), "{key} in {text}");
    }
}

#[test]
fn the_readme_recipes_are_valid_policy() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README");
    let section = readme
        .split("\n## Ticketing\n")
        .nth(1)
        .expect("a Ticketing section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let blocks: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert_eq!(blocks.len(), 6, "one recipe per sender");
    for block in blocks {
        Policy::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
    }
}

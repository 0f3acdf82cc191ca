//! The simulated tenant seen by a plain HTTP client that knows only Microsoft's documentation.

use std::net::SocketAddr;

use chrono::DurationRound;

use licensewatch_sim::{Scenario, SimHandle, start};
use serde_json::{Value, json};

const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const FACULTY: &str = "94763226-9b3c-4e75-a931-5c89701abe66";
const STUDENT: &str = "314c4481-f395-4525-be8b-2ec4bb1e9d91";
const FACULTY_GROUP: &str = "c7a1f1a2-0a4e-4d1c-9a3e-000000000f01";

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

struct Client {
    sim: SimHandle,
    http: reqwest::Client,
    graph_token: String,
    manage_token: String,
}

impl Client {
    async fn new(scenario: Scenario) -> Self {
        let sim = start(scenario, any_port()).await.expect("sim starts");
        Self::with_sim(sim).await
    }

    /// A client with fresh tokens for a running simulator.
    async fn with_sim(sim: SimHandle) -> Self {
        let http = reqwest::Client::new();
        let token = |scope: &'static str| {
            let http = http.clone();
            let url = format!("{}/{}/oauth2/v2.0/token", sim.base_url, sim.tenant_id);
            async move {
                let r: Value = http
                    .post(url)
                    .form(&[
                        ("client_id", "00000000-0000-0000-0000-00000000c1d0"),
                        ("client_secret", "x"),
                        ("grant_type", "client_credentials"),
                        ("scope", scope),
                    ])
                    .send()
                    .await
                    .expect("token")
                    .json()
                    .await
                    .expect("json");
                r["access_token"]
                    .as_str()
                    .expect("access_token")
                    .to_string()
            }
        };
        let graph_token = token("https://graph.microsoft.com/.default").await;
        let manage_token = token("https://manage.office.com/.default").await;
        Self {
            sim,
            http,
            graph_token,
            manage_token,
        }
    }

    /// Deletes a user through the control API: soft (restorable) or for good.
    async fn delete_user(&self, id: &str, permanent: bool) -> u16 {
        let url = format!(
            "{}/_sim/users/{id}?permanent={permanent}",
            self.sim.base_url
        );
        self.http
            .delete(url)
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    }

    /// Moves the tenant's clock and, as a client whose tokens expired would, takes new ones.
    async fn advance(&mut self, by: Value) -> u16 {
        let status = self.control("/_sim/clock", by).await;
        let fresh = Self::with_sim(self.sim.clone()).await;
        (self.graph_token, self.manage_token) = (fresh.graph_token, fresh.manage_token);
        status
    }

    async fn get(&self, path_or_url: &str) -> (u16, Value) {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.sim.base_url, path_or_url)
        };
        let token = if url.contains("/api/v1.0/") {
            &self.manage_token
        } else {
            &self.graph_token
        };
        let r = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let url = format!("{}{}", self.sim.base_url, path);
        let token = if url.contains("/api/v1.0/") {
            &self.manage_token
        } else {
            &self.graph_token
        };
        let request = self.http.post(url).bearer_auth(token);
        // `null` stands for no body at all (reprocessLicenseAssignment takes none).
        let request = match body {
            Value::Null => request,
            body => request.json(&body),
        };
        let r = request.send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn control(&self, path: &str, body: Value) -> u16 {
        self.http
            .post(format!("{}{}", self.sim.base_url, path))
            .json(&body)
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    }

    /// A control endpoint's JSON (`/_sim/...`).
    async fn inspect(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sim.base_url))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json")
    }

    /// The simulated clock's time (`/_sim/state`).
    async fn now(&self) -> chrono::DateTime<chrono::Utc> {
        let state = self.inspect("/_sim/state").await;
        chrono::DateTime::parse_from_rfc3339(state["now"].as_str().expect("now"))
            .expect("time")
            .to_utc()
    }

    async fn user(&self, upn: &str) -> Value {
        let (s, u) = self.get(&format!("/v1.0/users/{upn}?$select=id,userPrincipalName,assignedLicenses,assignedPlans,licenseAssignmentStates")).await;
        assert_eq!(s, 200, "{u}");
        u
    }
}

/// A Graph token request for the simulator's test app, as the client-credentials flow sends it.
async fn request_token(http: &reqwest::Client, base: &str, tenant: &str) -> reqwest::Response {
    http.post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "00000000-0000-0000-0000-00000000c1d0"),
            ("client_secret", "x"),
            ("grant_type", "client_credentials"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .expect("token")
}

fn upn(nick: &str) -> String {
    format!("{nick}@contoso.onmicrosoft.com")
}

#[tokio::test]
async fn requests_without_a_token_get_graph_401() {
    let c = Client::new(Scenario::default_story()).await;
    let r = c
        .http
        .get(format!("{}/v1.0/users", c.sim.base_url))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
    assert!(body["error"]["innerError"]["request-id"].is_string());
    // A Graph token is not accepted by the Management API.
    let r = c
        .http
        .get(format!(
            "{}/api/v1.0/{}/activity/feed/subscriptions/list",
            c.sim.base_url, c.sim.tenant_id
        ))
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test]
async fn user_paging_follows_documented_rules() {
    let c = Client::new(Scenario::default_story()).await;
    let (s, e) = c.get("/v1.0/users?$top=1000").await;
    assert_eq!(s, 400);
    assert_eq!(
        e["error"]["message"],
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    // Default page is 100 and licence fields are absent unless selected.
    let (_, first) = c.get("/v1.0/users").await;
    assert!(first["value"][0].get("assignedLicenses").is_none());
    assert!(first["value"][0]["userPrincipalName"].is_string());
    let mut next = Some("/v1.0/users?$select=id,assignedLicenses&$top=7".to_string());
    let (mut pages, mut ids) = (0, Vec::new());
    while let Some(url) = next.take() {
        let (s, page) = c.get(&url).await;
        assert_eq!(s, 200);
        pages += 1;
        for u in page["value"].as_array().expect("value") {
            assert!(u.get("assignedLicenses").is_some());
            assert!(
                u.get("displayName").is_none(),
                "$select limits the properties"
            );
            ids.push(u["id"].as_str().expect("id").to_string());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    let total = Scenario::default_story().users.len();
    assert_eq!(ids.len(), total);
    assert_eq!(pages, total.div_ceil(7));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no user twice");
}

#[tokio::test]
async fn group_licensing_is_all_or_none_and_reprocess_fixes_it_after_seats_are_freed() {
    let c = Client::new(Scenario::default_story()).await;
    // 12 teachers, 10 faculty seats: the last two get CountViolation on faculty and Other on students.
    let t11 = c.user(&upn("teacher11")).await;
    let states = t11["licenseAssignmentStates"].as_array().expect("states");
    let by_sku = |sku: &str| {
        states
            .iter()
            .find(|s| s["skuId"] == sku)
            .cloned()
            .expect("state")
    };
    assert_eq!(by_sku(FACULTY)["error"], "CountViolation");
    assert_eq!(by_sku(FACULTY)["state"], "Error");
    assert_eq!(by_sku(STUDENT)["error"], "Other");
    assert_eq!(by_sku(FACULTY)["assignedByGroup"], FACULTY_GROUP);
    assert_eq!(
        t11["assignedLicenses"],
        json!([]),
        "none of the group's licences applied"
    );
    let t01 = c.user(&upn("teacher01")).await;
    assert!(
        t01["licenseAssignmentStates"]
            .as_array()
            .expect("s")
            .iter()
            .all(|s| s["error"] == "None" && s["state"] == "Active")
    );

    let (_, groups) = c
        .get("/v1.0/groups?$filter=hasMembersWithLicenseErrors eq true")
        .await;
    let ids: Vec<&str> = groups["value"]
        .as_array()
        .expect("v")
        .iter()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert!(ids.contains(&FACULTY_GROUP));
    let (_, members) = c
        .get(&format!(
            "/v1.0/groups/{FACULTY_GROUP}/membersWithLicenseErrors"
        ))
        .await;
    let m: Vec<&str> = members["value"]
        .as_array()
        .expect("v")
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str())
        .collect();
    assert_eq!(m, vec![upn("teacher11"), upn("teacher12")]);

    // Reprocessing without seats changes nothing; after buying two seats it succeeds.
    let (s, _) = c
        .post(
            &format!(
                "/v1.0/users/{}/reprocessLicenseAssignment",
                upn("teacher11")
            ),
            json!(null),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.user(&upn("teacher11")).await["assignedLicenses"],
        json!([])
    );
    assert_eq!(
        c.control(
            &format!("/_sim/skus/{FACULTY}/seats"),
            json!({"enabled": 12})
        )
        .await,
        204
    );
    let (s, u) = c
        .post(
            &format!(
                "/v1.0/users/{}/reprocessLicenseAssignment",
                upn("teacher11")
            ),
            json!(null),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    // Group-based licensing processes it asynchronously: queued, nothing changed yet, the group says so.
    assert_eq!(
        c.user(&upn("teacher11")).await["assignedLicenses"],
        json!([])
    );
    let (_, group) = c.get(&format!("/v1.0/groups/{FACULTY_GROUP}")).await;
    assert_eq!(
        group["licenseProcessingState"]["state"],
        "QueuedForProcessing"
    );
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 1}))
            .await,
        200
    );
    assert_eq!(
        c.user(&upn("teacher11")).await["assignedLicenses"],
        json!([]),
        "two minutes by default"
    );
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 1}))
            .await,
        200
    );
    let (_, group) = c.get(&format!("/v1.0/groups/{FACULTY_GROUP}")).await;
    assert_eq!(
        group["licenseProcessingState"]["state"],
        "ProcessingComplete"
    );
    let t11 = c.user(&upn("teacher11")).await;
    assert_eq!(t11["assignedLicenses"].as_array().map(Vec::len), Some(2));
    assert!(
        t11["assignedPlans"]
            .as_array()
            .expect("plans")
            .iter()
            .any(|p| p["service"] == "exchange" && p["capabilityStatus"] == "Enabled")
    );
    let (_, skus) = c.get("/v1.0/subscribedSkus").await;
    let fac = skus["value"]
        .as_array()
        .expect("v")
        .iter()
        .find(|k| k["skuId"] == FACULTY)
        .cloned()
        .expect("sku");
    assert_eq!(fac["consumedUnits"], 11);
    // The change is audited as the group-based licensing service.
    let (_, audits) = c
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update user'")
        .await;
    let latest = &audits["value"][0];
    assert_eq!(
        latest["initiatedBy"]["app"]["displayName"],
        "Microsoft Azure AD Group-Based Licensing"
    );
    assert_eq!(
        latest["targetResources"][0]["userPrincipalName"],
        upn("teacher11")
    );
}

#[tokio::test]
async fn direct_assignment_counts_seats_checks_location_and_conflicts() {
    let c = Client::new(Scenario::default_story()).await;
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("megan.bowen")),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}]}),
        )
        .await;
    assert_eq!(s, 400, "removeLicenses is required: {e}");
    // E3 has 24 seats; fill them, then the next assignment fails with Graph's message.
    let (_, skus) = c.get("/v1.0/subscribedSkus").await;
    let e3 = skus["value"]
        .as_array()
        .expect("v")
        .iter()
        .find(|k| k["skuId"] == E3)
        .cloned()
        .expect("e3");
    let free = e3["prepaidUnits"]["enabled"].as_i64().expect("n")
        - e3["consumedUnits"].as_i64().expect("n");
    assert!(free > 0);
    assert_eq!(
        c.control(
            &format!("/_sim/skus/{E3}/seats"),
            json!({"enabled": e3["consumedUnits"]})
        )
        .await,
        204
    );
    let body = json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []});
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("megan.bowen")),
            body.clone(),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(e["error"]["code"], "Request_BadRequest");
    assert_eq!(
        e["error"]["message"],
        format!("Subscription with SKU {E3} does not have any available licenses.")
    );
    // The failure is in the audit log with result failure, and, as in real tenants, names no SKU: nothing changed.
    let (_, audits) = c.get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Change user license'&$top=1").await;
    assert_eq!(audits["value"][0]["result"], "failure");
    assert!(
        audits["value"][0]["resultReason"]
            .as_str()
            .expect("r")
            .contains("does not have any available licenses")
    );
    let (_, updates) = c
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update user'&$top=1")
        .await;
    assert_eq!(updates["value"][0]["result"], "failure");
    for record in [&audits["value"][0], &updates["value"][0]] {
        let text = record.to_string();
        assert!(!text.contains(E3), "a failure record names no SKU: {text}");
        assert!(!text.contains("AssignedLicense"), "{text}");
    }

    // Free a seat: assignment works and shows up in assignedPlans with an enabled Exchange plan.
    assert_eq!(
        c.control(&format!("/_sim/skus/{E3}/seats"), json!({"enabled": 30}))
            .await,
        204
    );
    let (s, u) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("megan.bowen")),
            body.clone(),
        )
        .await;
    assert_eq!(s, 200, "{u}");
    // Usage location is required for direct assignment.
    assert_eq!(
        c.control(
            &format!("/_sim/users/{}/usage-location", upn("lee.gu")),
            json!({"usage_location": null})
        )
        .await,
        204
    );
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("lee.gu")),
            body,
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        e["error"]["message"]
            .as_str()
            .expect("m")
            .contains("usage location")
    );
    // Exchange Plan 1 conflicts with E3's Exchange Plan 2 (adele is in the kiosk group and has E3 directly).
    let adele = c.user(&upn("adele.vance")).await;
    let err = adele["licenseAssignmentStates"]
        .as_array()
        .expect("s")
        .iter()
        .find(|s| s["assignedByGroup"].is_string())
        .cloned()
        .expect("group state");
    assert_eq!(err["error"], "MutuallyExclusiveViolation");
}

#[tokio::test]
async fn every_change_leaves_both_audit_trails() {
    let mut c = Client::new(publishing_at_once()).await;
    let (s, _) = c.post(&format!("/api/v1.0/{}/activity/feed/subscriptions/content?contentType=Audit.AzureActiveDirectory", c.sim.tenant_id).replace("/content", "/start"), json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        c.control(
            &format!("/_sim/users/{}/licenses", upn("joni.sherman")),
            json!({"remove": [E3], "actor": upn("it.admin")})
        )
        .await,
        200
    );
    let (_, audits) = c
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update user'&$top=1")
        .await;
    let prop = &audits["value"][0]["targetResources"][0]["modifiedProperties"][0];
    assert_eq!(prop["displayName"], "AssignedLicense");
    let old: Vec<String> =
        serde_json::from_str(prop["oldValue"].as_str().expect("s")).expect("JSON in a string");
    assert!(
        old.iter()
            .any(|l| l.starts_with("[SkuName=ENTERPRISEPACK, AccountId=")
                && l.contains(&format!("SkuId={E3}")))
    );
    assert_eq!(
        audits["value"][0]["initiatedBy"]["user"]["userPrincipalName"],
        upn("it.admin")
    );

    // Management API: after the blob's availability time, the pair appears with trailing periods.
    assert_eq!(c.advance(json!({"advance_hours": 5})).await, 200);
    let now = c.now().await;
    let start = (now - chrono::Duration::hours(24)).format("%Y-%m-%dT%H:%M:%S");
    let end = now.format("%Y-%m-%dT%H:%M:%S");
    let (s, list) = c.get(&format!("/api/v1.0/{}/activity/feed/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime={start}&endTime={end}", c.sim.tenant_id)).await;
    assert_eq!(s, 200, "{list}");
    let mut ops = Vec::new();
    let mut removal_seen = false;
    for b in list.as_array().expect("blobs") {
        let (s, records) = c.get(b["contentUri"].as_str().expect("uri")).await;
        assert_eq!(s, 200);
        for r in records.as_array().expect("records") {
            if r["ObjectId"] == upn("joni.sherman") {
                ops.push(r["Operation"].as_str().expect("op").to_string());
                if r["Operation"] == "Update user." {
                    let mp = &r["ModifiedProperties"][0];
                    assert_eq!(mp["Name"], "AssignedLicense");
                    let old: Vec<String> =
                        serde_json::from_str(mp["OldValue"].as_str().expect("string"))
                            .expect("JSON in a string");
                    let new: Vec<String> =
                        serde_json::from_str(mp["NewValue"].as_str().expect("string"))
                            .expect("JSON in a string");
                    removal_seen |= old.iter().any(|l| l.contains("SkuName=ENTERPRISEPACK"))
                        && !new.iter().any(|l| l.contains("ENTERPRISEPACK"));
                }
            }
        }
    }
    assert!(
        ops.contains(&"Change user license.".to_string())
            && ops.contains(&"Update user.".to_string()),
        "{ops:?}"
    );
    assert!(removal_seen, "the E3 removal is in the Management API feed");
}

#[tokio::test]
async fn management_feed_has_af_errors_late_blobs_and_duplicates() {
    let mut c = Client::new(publishing_at_once()).await;
    let feed = format!("/api/v1.0/{}/activity/feed", c.sim.tenant_id);
    let (s, e) = c
        .get(&format!(
            "{feed}/subscriptions/content?contentType=Audit.AzureActiveDirectory"
        ))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("AF20022")));
    c.post(
        &format!("{feed}/subscriptions/start?contentType=Audit.AzureActiveDirectory"),
        json!({}),
    )
    .await;
    let (_, subs) = c.get(&format!("{feed}/subscriptions/list")).await;
    assert_eq!(subs[0]["status"], "enabled");
    let (s, e) = c.get(&format!("{feed}/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime=2026-11-19T00:00:00&endTime=2026-11-20T06:00:00")).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("AF20030")),
        "more than 24 h"
    );
    let (s, e) = c.get(&format!("{feed}/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime=2026-11-01&endTime=2026-11-02")).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("AF20055")),
        "older than 7 days"
    );

    // Make many changes, then look at the feed hour by hour as a poller would.
    for i in 1..=10 {
        let who = upn(&format!("teacher{i:02}"));
        c.control(
            &format!("/_sim/users/{who}/licenses"),
            json!({"add": [{"sku_id": E3, "disabled_plans": []}]}),
        )
        .await;
        c.control("/_sim/clock", json!({"advance_minutes": 20}))
            .await;
    }
    let start = c.now().await - chrono::Duration::hours(4);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let list_url = |a: chrono::DateTime<chrono::Utc>, b: chrono::DateTime<chrono::Utc>| {
        format!(
            "{feed}/subscriptions/content?contentType=Audit.AzureActiveDirectory&startTime={}&endTime={}",
            fmt(a),
            fmt(b)
        )
    };
    c.advance(json!({"advance_hours": 2})).await;
    let window_end = start + chrono::Duration::hours(6);
    let early = c
        .get(&list_url(start, window_end))
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default();
    c.advance(json!({"advance_hours": 6})).await;
    let later = c
        .get(&list_url(start, window_end))
        .await
        .1
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        later.len() > early.len(),
        "a late blob appears in a later listing of the same window ({} vs {})",
        early.len(),
        later.len()
    );
    let mut seen = std::collections::HashMap::new();
    for b in &later {
        let (_, records) = c.get(b["contentUri"].as_str().expect("uri")).await;
        for r in records.as_array().expect("array") {
            *seen
                .entry(r["Id"].as_str().expect("Id").to_string())
                .or_insert(0) += 1;
        }
    }
    assert!(
        seen.values().any(|&n| n > 1),
        "some record is delivered in two blobs"
    );
}

/// Records of past hours added at once (a backfill) gather in one blob per hour and content type, as Microsoft
/// publishes an hour's records together, not one blob per record.
#[tokio::test]
async fn records_of_a_past_hour_are_published_in_one_blob() {
    let mut c = Client::new(publishing_at_once()).await;
    let feed = format!("/api/v1.0/{}/activity/feed", c.sim.tenant_id);
    let kind = "Audit.AzureActiveDirectory";
    c.post(
        &format!("{feed}/subscriptions/start?contentType={kind}"),
        json!({}),
    )
    .await;
    let now = c.now().await;
    let hour = |h: i64| {
        now.duration_trunc(chrono::Duration::hours(1))
            .expect("hour")
            - chrono::Duration::hours(h)
    };
    let records: Vec<Value> = (0..12)
        .map(|n| {
            let at = hour(3 - n / 4) + chrono::Duration::minutes(5 + 10 * (n % 4));
            json!({"CreationTime": at.format("%Y-%m-%dT%H:%M:%S").to_string(),
                "Id": format!("b1000000-0000-4000-8000-{n:012}"), "Operation": "UserLoggedIn",
                "RecordType": 15, "Workload": "AzureActiveDirectory", "UserId": upn("backfill")})
        })
        .collect();
    assert_eq!(
        c.control("/_sim/audit/records", json!({"management": records}))
            .await,
        201
    );
    c.advance(json!({"advance_hours": 4})).await;
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let (_, listed) = c
        .get(&format!(
            "{feed}/subscriptions/content?contentType={kind}&startTime={}&endTime={}",
            fmt(now - chrono::Duration::hours(1)),
            fmt(now + chrono::Duration::hours(4))
        ))
        .await;
    let mut ids = std::collections::BTreeSet::new();
    let mut blobs = 0;
    for b in listed.as_array().expect("blobs") {
        let (_, records) = c.get(b["contentUri"].as_str().expect("uri")).await;
        let ours: Vec<String> = records
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|r| r["Id"].as_str())
            .filter(|id| id.starts_with("b1000000"))
            .map(str::to_string)
            .collect();
        blobs += usize::from(!ours.is_empty());
        ids.extend(ours);
    }
    assert_eq!(ids.len(), 12, "every record is published: {ids:?}");
    assert!(
        blobs <= 4,
        "three hours of records in at most four blobs (an hour, or a repeat in the next hour's): {blobs}"
    );
}

#[tokio::test]
async fn faults_are_injected_per_route_and_counted() {
    let c = Client::new(Scenario::default_story()).await;
    c.control("/_sim/faults", json!({"route": "/v1.0/subscribedSkus", "kind": "throttle", "retry_after": "2", "count": 1})).await;
    c.control(
        "/_sim/faults",
        json!({"route": "/v1.0/groups", "kind": "truncate", "count": 1}),
    )
    .await;
    c.control(
        "/_sim/faults",
        json!({"route": "/v1.0/users", "kind": "server_error", "count": 2}),
    )
    .await;
    c.control(
        "/_sim/faults",
        json!({"route": "activity/feed", "kind": "af429", "count": 1}),
    )
    .await;
    let r = c
        .http
        .get(format!("{}/v1.0/subscribedSkus", c.sim.base_url))
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("s");
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        c.get("/v1.0/subscribedSkus").await.0,
        200,
        "counted: only once"
    );
    let r = c
        .http
        .get(format!("{}/v1.0/groups", c.sim.base_url))
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("s");
    let text = r.text().await.unwrap_or_default();
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "truncated body is not JSON"
    );
    assert_eq!(c.get("/v1.0/users").await.0, 500);
    assert_eq!(c.get("/v1.0/users").await.0, 500);
    assert_eq!(c.get("/v1.0/users").await.0, 200);
    let (s, e) = c
        .get(&format!(
            "/api/v1.0/{}/activity/feed/subscriptions/list",
            c.sim.tenant_id
        ))
        .await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("AF429")));
    let log = c.inspect("/_sim/requests").await;
    assert!(
        log.as_array()
            .expect("log")
            .iter()
            .any(|r| r["status"] == 429)
    );
}

#[tokio::test]
async fn send_mail_is_recorded() {
    let c = Client::new(Scenario::default_story()).await;
    let (s, _) = c.post(&format!("/v1.0/users/{}/sendMail", upn("it.admin")), json!({"message": {"subject": "hi", "body": {"contentType": "Text", "content": "x"}, "toRecipients": []}})).await;
    assert_eq!(s, 400);
    let r = c.http.post(format!("{}/v1.0/users/{}/sendMail", c.sim.base_url, upn("it.admin"))).bearer_auth(&c.graph_token)
        .json(&json!({"message": {"subject": "Grace period", "body": {"contentType": "HTML", "content": "<p>x</p>"},
            "toRecipients": [{"emailAddress": {"address": "lee.gu@contoso.com"}}]}, "saveToSentItems": false}))
        .send().await.expect("s");
    assert_eq!(r.status().as_u16(), 202);
    let mail = c.inspect("/_sim/mail").await;
    assert_eq!(mail[0]["message"]["subject"], "Grace period");
    assert_eq!(mail[0]["from"], upn("it.admin"));

    // As Microsoft's Graph SDKs send it: parameter names as the metadata spells them, with type annotations.
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/sendMail", upn("it.admin")),
            json!({"Message": {"@odata.type": "#microsoft.graph.message", "subject": "From the SDK",
                "body": {"@odata.type": "#microsoft.graph.itemBody", "contentType": "text", "content": "x"},
                "toRecipients": [{"@odata.type": "#microsoft.graph.recipient",
                    "emailAddress": {"@odata.type": "#microsoft.graph.emailAddress", "address": "lee.gu@contoso.com"}}]},
                "SaveToSentItems": false}),
        )
        .await;
    assert_eq!(s, 202, "{e}");
    let mail = c.inspect("/_sim/mail").await;
    assert_eq!(mail[1]["message"]["subject"], "From the SDK");
    assert_eq!(mail[1]["saveToSentItems"], false);
    assert_eq!(
        mail[1]["message"]["toRecipients"][0]["emailAddress"]["address"],
        "lee.gu@contoso.com"
    );
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("joni.sherman")),
            json!({"AddLicenses": [{"@odata.type": "#microsoft.graph.assignedLicense",
                "skuId": "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235", "disabledPlans": []}], "RemoveLicenses": []}),
        )
        .await;
    assert_eq!(s, 200, "{e}");
}

#[tokio::test]
async fn a_plain_paging_loop_reads_a_100k_user_tenant() {
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T09:00:00Z")
        .expect("t")
        .to_utc();
    let scenario = Scenario::generated(100_000, "0d7a3c4e-1111-4222-8333-944455556666", now);
    let c = Client::new(scenario).await;
    let started = std::time::Instant::now();
    let mut next = Some("/v1.0/users?$select=id,userPrincipalName,assignedLicenses,assignedPlans,licenseAssignmentStates&$top=999".to_string());
    let (mut pages, mut users) = (0, 0);
    while let Some(url) = next.take() {
        let (s, page) = c.get(&url).await;
        assert_eq!(s, 200);
        pages += 1;
        users += page["value"].as_array().expect("value").len();
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    assert_eq!(users, 100_000);
    assert_eq!(pages, 101);
    eprintln!("100k users in {pages} pages: {:?}", started.elapsed());
}

/// Directory audits of one change, newest first, as a client sees them.
async fn audits_of(c: &Client, activity: &str) -> Vec<Value> {
    let (_, a) = c
        .get(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq '{activity}'&$top=999"
        ))
        .await;
    a["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_large_change_is_split_into_sequence_events_that_reassemble() {
    let c = Client::new(Scenario::default_story()).await;
    // alex has E3, EMS and Power BI: the diff of his licences and plans is too long for one event.
    assert_eq!(
        c.control(
            &format!("/_sim/users/{}/licenses", upn("alex.wilber")),
            json!({"remove": [E3], "actor": upn("it.admin")})
        )
        .await,
        200
    );
    let updates = audits_of(&c, "Update user").await;
    let detail = |r: &Value, k: &str| {
        r["additionalDetails"]
            .as_array()
            .and_then(|d| d.iter().find(|x| x["key"] == k))
            .and_then(|x| x["value"].as_str())
            .map(str::to_string)
    };
    let mut chunks: Vec<(usize, usize, String, String)> = updates
        .iter()
        .filter_map(|r| {
            Some((
                detail(r, "seq")?.parse().ok()?,
                detail(r, "c")?.parse().ok()?,
                detail(r, "b")?,
                r["correlationId"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert!(chunks.len() >= 2, "{updates:?}");
    assert_eq!(chunks[0].0, chunks.len(), "the last chunk is listed first");
    assert!(
        chunks
            .iter()
            .all(|c| c.1 == chunks.len() && c.3 == chunks[0].3)
    );
    let change = audits_of(&c, "Change user license").await;
    assert_eq!(
        change[0]["correlationId"].as_str(),
        Some(chunks[0].3.as_str())
    );
    assert_eq!(
        change[0]["targetResources"][0]["modifiedProperties"],
        json!([])
    );
    chunks.sort_by_key(|c| c.0);
    let doc: Value = serde_json::from_str(&chunks.iter().map(|c| c.2.as_str()).collect::<String>())
        .expect("the fragments form a JSON document");
    let props = doc["targetUpdatedProperties"].as_array().expect("props");
    let lic = props
        .iter()
        .find(|p| p["Name"] == "AssignedLicense")
        .expect("AssignedLicense");
    assert!(lic["OldValue"].as_str().expect("s").contains(E3));
    assert!(!lic["NewValue"].as_str().expect("s").contains(E3));
}

#[tokio::test]
async fn users_created_licensed_and_group_runs_are_logged_as_microsoft_logs_them() {
    let c = Client::new(Scenario::default_story()).await;
    let (s, _) = c
        .post(
            "/_sim/users",
            json!({"id": "0a0a0a0a-0000-4000-8000-00000000a001", "upn": upn("new.starter"),
                "display_name": "New Starter", "mail": upn("new.starter"), "usage_location": "US", "created": "2026-11-21T09:00:00Z",
                "licenses": [{"sku_id": E3, "disabled_plans": []}]}),
        )
        .await;
    assert_eq!(s, 201);
    let added = audits_of(&c, "Add user").await;
    let props = added[0]["targetResources"][0]["modifiedProperties"]
        .as_array()
        .expect("props");
    let lic = props
        .iter()
        .find(|p| p["displayName"] == "AssignedLicense")
        .expect("AssignedLicense at creation");
    assert!(lic["newValue"].as_str().expect("s").contains(E3));
    assert!(
        !audits_of(&c, "Change user license")
            .await
            .iter()
            .any(|r| r["targetResources"][0]["userPrincipalName"] == upn("new.starter")),
        "creation is not a licence change"
    );

    // A new faculty member while the faculty SKU has no seat: group licensing fails for them, and the only trace in
    // the log is the Finish record's count.
    c.control(
        &format!("/_sim/skus/{FACULTY}/seats"),
        json!({"enabled": 0}),
    )
    .await;
    assert_eq!(
        c.control(
            &format!("/_sim/groups/{FACULTY_GROUP}/members"),
            json!({"add": [upn("new.starter")]})
        )
        .await,
        204
    );
    assert_eq!(
        audits_of(&c, "Start applying group based license to users")
            .await
            .len(),
        1
    );
    let finish = audits_of(&c, "Finish applying group based license to users").await;
    assert_eq!(finish[0]["targetResources"][0]["id"], FACULTY_GROUP);
    assert!(
        finish[0].to_string().contains(
            "Users successfully assigned licenses: 0, Users for whom license assignment failed: 1."
        ),
        "{}",
        finish[0]
    );

    // $select on membersWithLicenseErrors returns the licence fields asked for, and nothing else.
    let (_, members) = c
        .get(&format!("/v1.0/groups/{FACULTY_GROUP}/membersWithLicenseErrors?$select=id,userPrincipalName,licenseAssignmentStates"))
        .await;
    let m = &members["value"][0];
    assert!(m["licenseAssignmentStates"].is_array(), "{m}");
    assert!(m.get("displayName").is_none(), "{m}");
    let (_, groups) = c.get("/v1.0/groups?$select=id,displayName").await;
    assert!(groups["value"][0].get("assignedLicenses").is_none());
    assert!(groups["value"][0]["displayName"].is_string());
    // Success is "None", not null, in licenseAssignmentStates.
    let joni = c.user(&upn("joni.sherman")).await;
    assert_eq!(joni["licenseAssignmentStates"][0]["error"], "None");
}

/// Follows a delta round to its end: (items, deltaLink).
async fn delta_round(c: &Client, first: &str) -> (Vec<Value>, String) {
    delta_round_preferring(c, first, "odata.maxpagesize=2, return=minimal").await
}

/// A delta round with Graph's default: every selected property on an updated user.
async fn delta_round_in_full(c: &Client, first: &str) -> (Vec<Value>, String) {
    delta_round_preferring(c, first, "odata.maxpagesize=2").await
}

async fn delta_round_preferring(c: &Client, first: &str, prefer: &str) -> (Vec<Value>, String) {
    let mut url = first.to_string();
    let mut items = Vec::new();
    loop {
        let r = c
            .http
            .get(if url.starts_with("http") {
                url.clone()
            } else {
                format!("{}{url}", c.sim.base_url)
            })
            .bearer_auth(&c.graph_token)
            .header("prefer", prefer)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), 200);
        let page: Value = r.json().await.expect("json");
        items.extend(page["value"].as_array().cloned().unwrap_or_default());
        if let Some(next) = page["@odata.nextLink"].as_str() {
            assert!(next.contains("$skiptoken="), "{next}");
            url = next.to_string();
            continue;
        }
        let delta = page["@odata.deltaLink"]
            .as_str()
            .expect("a round ends with a deltaLink");
        assert!(delta.contains("$deltatoken="), "{delta}");
        return (items, delta.to_string());
    }
}

#[tokio::test]
async fn user_delta_reports_new_updated_and_removed_users_in_full_or_with_only_the_changed_properties()
 {
    let c = Client::new(Scenario::default_story()).await;
    let (all, link) = delta_round(
        &c,
        "/v1.0/users/delta?$select=id,userPrincipalName,accountEnabled,assignedLicenses,licenseAssignmentStates",
    )
    .await;
    let (_, users) = c.get("/v1.0/users?$top=999").await;
    assert_eq!(all.len(), users["value"].as_array().map_or(0, Vec::len));
    assert!(all.iter().all(|u| u.get("userPrincipalName").is_some()));
    // Nothing changed: an empty round, and a new link.
    let (none, link) = delta_round(&c, &link).await;
    assert!(none.is_empty(), "{none:?}");

    let joni = c.user(&upn("joni.sherman")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let alex = c.user(&upn("alex.wilber")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let adele = c.user(&upn("adele.vance")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    c.control(
        &format!("/_sim/users/{joni}/licenses"),
        json!({"remove": [E3]}),
    )
    .await;
    // A failed assignment changes licenseAssignmentStates only: not tracked.
    c.control(
        &format!("/_sim/users/{adele}/failed-assignment"),
        json!({"sku_ids": [E3], "reason": "License assignment failed."}),
    )
    .await;
    assert_eq!(c.delete_user(&alex, false).await, 200);
    let created = json!({"id": "d1f0c0de-0000-4000-8000-000000000001", "upn": upn("new.hire"),
        "created": "2026-11-20T00:00:00Z", "licenses": [{"sku_id": E3}]});
    assert_eq!(c.control("/_sim/users", created).await, 201);
    let (in_full, _) = delta_round_in_full(&c, &link).await;
    let (changes, link) = delta_round(&c, &link).await;
    // Graph's default: the updated user carries every selected property, the untracked licenseAssignmentStates
    // as delta last saw it (still holding the E3 just removed).
    let j = in_full
        .iter()
        .find(|u| {
            u["id"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(&joni))
        })
        .expect("joni in the round in full");
    assert!(
        j.get("userPrincipalName").is_some() && j.get("accountEnabled").is_some(),
        "{j}"
    );
    assert!(
        j["assignedLicenses"]
            .as_array()
            .is_some_and(|l| l.iter().all(|l| l["skuId"] != E3)),
        "{j}"
    );
    assert!(
        j["licenseAssignmentStates"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["skuId"] == E3)),
        "stale: {j}"
    );
    let by_id = |id: &str| {
        changes
            .iter()
            .find(|u| u["id"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(id)))
    };
    let j = by_id(&joni).expect("joni updated");
    assert!(j.get("assignedLicenses").is_some(), "{j}");
    assert!(
        j.get("userPrincipalName").is_none() && j.get("accountEnabled").is_none(),
        "only what changed: {j}"
    );
    assert!(
        by_id(&adele).is_none(),
        "licenseAssignmentStates is not tracked: {changes:?}"
    );
    assert_eq!(
        by_id(&alex).expect("alex removed")["@removed"]["reason"],
        "changed"
    );
    let n = by_id("d1f0c0de-0000-4000-8000-000000000001").expect("new user");
    assert!(
        n.get("userPrincipalName").is_some() && n.get("assignedLicenses").is_some(),
        "{n}"
    );
    assert_eq!(changes.len(), 3, "{changes:?}");

    // A permanent deletion is `deleted`; an expired token must be answered as Graph does.
    assert_eq!(
        c.delete_user("d1f0c0de-0000-4000-8000-000000000001", true)
            .await,
        200
    );
    let (changes, link) = delta_round(&c, &link).await;
    assert_eq!(changes[0]["@removed"]["reason"], "deleted", "{changes:?}");
    assert_eq!(c.control("/_sim/delta/expire", json!({})).await, 200);
    let gone = c
        .http
        .get(&link)
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("delta");
    assert_eq!(gone.status().as_u16(), 410, "Graph answers 410 Gone");
    let restart = gone
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location to restart from")
        .to_string();
    let err: Value = gone.json().await.expect("json");
    assert_eq!(err["error"]["code"], "syncStateNotFound");
    // The Location starts a full round: every user again.
    let (again, _) = delta_round(&c, &restart).await;
    assert!(again.len() > 3, "{again:?}");
    // `$deltatoken=latest`: no users, a link for now.
    let (latest, _) = delta_round(
        &c,
        "/v1.0/users/delta?$select=id,assignedLicenses&$deltatoken=latest",
    )
    .await;
    assert!(latest.is_empty());
}

#[tokio::test]
async fn json_batches_run_each_item_through_graph_and_answer_by_id() {
    let c = Client::new(Scenario::default_story()).await;
    let items: Vec<Value> = ["adele.vance", "nobody.here", "lee.gu"]
        .iter()
        .enumerate()
        .map(|(i, nick)| {
            json!({"id": format!("r{i}"), "method": "GET",
                "url": format!("/users/{}?$select=id,userPrincipalName", upn(nick))})
        })
        .collect();
    let (s, body) = c.post("/v1.0/$batch", json!({ "requests": items })).await;
    assert_eq!(s, 200, "{body}");
    let responses = body["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 3);
    let by_id = |id: &str| responses.iter().find(|r| r["id"] == id).expect("answered");
    assert_eq!(by_id("r0")["status"], 200);
    assert_eq!(by_id("r0")["body"]["userPrincipalName"], upn("adele.vance"));
    assert_eq!(by_id("r1")["status"], 404);
    assert_eq!(
        by_id("r1")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    assert_eq!(by_id("r2")["status"], 200);
    // Throttling applies to items, as at Microsoft: the batch is 200, the item 429 with its Retry-After.
    c.control(
        "/_sim/faults",
        json!({"route": "/v1.0/users/", "kind": "throttle", "retry_after": "1", "count": 1}),
    )
    .await;
    let one = json!({"requests": [{"id": "1", "method": "GET", "url": format!("/users/{}", upn("lee.gu"))}]});
    let (s, body) = c.post("/v1.0/$batch", one).await;
    assert_eq!(s, 200);
    assert_eq!(body["responses"][0]["status"], 429, "{body}");
    assert_eq!(body["responses"][0]["headers"]["retry-after"], "1");
    // More than 20 requests, or one id twice, is refused whole.
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    assert_eq!(
        c.post("/v1.0/$batch", json!({ "requests": many })).await.0,
        400
    );
    let twice = json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/users"}]});
    assert_eq!(c.post("/v1.0/$batch", twice).await.0, 400);
}

#[tokio::test]
async fn subscriptions_are_checked_and_validated_as_graph_does() {
    let c = Client::new(Scenario::default_story()).await;
    let now: chrono::DateTime<chrono::Utc> = Scenario::default_story().now;
    let expiry = |days: i64| (now + chrono::Duration::days(days)).to_rfc3339();
    let sub = |url: &str, days: i64| {
        json!({"changeType": "updated,deleted", "notificationUrl": url, "resource": "/users",
            "expirationDateTime": expiry(days), "clientState": "secret-secret-secret-secret-secret!"})
    };
    // Not https (and not loopback), too far away, an unknown change type, a resource the simulator lacks.
    let (s, body) = c
        .post("/v1.0/subscriptions", sub("http://example.com/n", 2))
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("https")
    );
    let (s, body) = c
        .post("/v1.0/subscriptions", sub("http://127.0.0.1:9/n", 30))
        .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("41760")
    );
    let mut moved = sub("http://127.0.0.1:9/n", 2);
    moved["changeType"] = "moved".into();
    assert_eq!(c.post("/v1.0/subscriptions", moved).await.0, 400);
    let mut groups = sub("http://127.0.0.1:9/n", 2);
    groups["resource"] = "/groups".into();
    assert_eq!(c.post("/v1.0/subscriptions", groups).await.0, 400);
    // Nobody answers the validation call on port 9: refused.
    let (s, body) = c
        .post("/v1.0/subscriptions", sub("http://127.0.0.1:9/n", 2))
        .await;
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("msg")
            .contains("validation request failed"),
        "{body}"
    );
    let (s, body) = c.get("/v1.0/subscriptions").await;
    assert_eq!((s, body["value"].as_array().map(Vec::len)), (200, Some(0)));
}

#[tokio::test]
async fn a_fleet_serves_each_tenant_its_own_data_and_a_revoked_consent_refuses_tokens() {
    let now = Scenario::default_story().now;
    let fleet = Scenario::fleet(3, 25, now);
    let ids: Vec<String> = fleet.iter().map(|s| s.tenant_id.clone()).collect();
    let sim = licensewatch_sim::start_fleet(fleet, any_port())
        .await
        .expect("fleet");
    assert_eq!(sim.tenant_ids, ids);
    let http = reqwest::Client::new();
    let token = |tenant: String| {
        let (http, base) = (http.clone(), sim.base_url.clone());
        async move {
            let r = request_token(&http, &base, &tenant).await;
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let users_of = |t: String| {
        let (http, base) = (http.clone(), sim.base_url.clone());
        async move {
            let body: Value = http
                .get(format!("{base}/v1.0/users?$select=userPrincipalName"))
                .bearer_auth(t)
                .send()
                .await
                .expect("users")
                .json()
                .await
                .expect("json");
            body["value"][0]["userPrincipalName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    // Each tenant's token reads that tenant's users, under its own domain (a domain names the tenant too).
    let (_, t1) = token(ids[0].clone()).await;
    let (_, t2) = token("customer002.onmicrosoft.com".into()).await;
    let a = users_of(t1["access_token"].as_str().expect("t").into()).await;
    let b = users_of(t2["access_token"].as_str().expect("t").into()).await;
    assert!(a.ends_with("@customer001.onmicrosoft.com"), "{a}");
    assert!(b.ends_with("@customer002.onmicrosoft.com"), "{b}");
    // Control calls name their tenant.
    let state: Value = http
        .get(format!("{}/_sim/state", sim.base_url))
        .header("x-sim-tenant", ids[2].as_str())
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json");
    assert_eq!(state["tenant_id"], ids[2].as_str());
    // The third customer removes the app: its token requests fail as Entra answers them; the others are unaffected.
    let r = http
        .post(format!("{}/_sim/consent", sim.base_url))
        .header("x-sim-tenant", ids[2].as_str())
        .json(&json!({"revoked": true}))
        .send()
        .await
        .expect("consent");
    assert_eq!(r.status().as_u16(), 204);
    let (status, refused) = token(ids[2].clone()).await;
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["error_description"]
            .as_str()
            .expect("desc")
            .starts_with("AADSTS7000229"),
        "{refused}"
    );
    assert_eq!(token(ids[1].clone()).await.0, 200);
    assert_eq!(token("nobody.onmicrosoft.com".into()).await.0, 400);
}

/// What Microsoft documents (and is reported to do), held to by default: MICROSOFT_BEHAVIOUR.md.
#[tokio::test]
async fn graph_refuses_what_microsoft_refuses_and_answers_as_microsoft_does() {
    let c = Client::new(Scenario::default_story()).await;
    // directoryAudits: eq, ge and le on activityDateTime; lt is not documented and is refused.
    let audits = "/v1.0/auditLogs/directoryAudits?$filter=";
    let (s, e) = c
        .get(&format!("{audits}activityDateTime lt 2026-11-20T00:00:00Z"))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _) = c
        .get(&format!(
            "{audits}activityDateTime ge 2026-11-01T00:00:00Z and activityDateTime le 2026-11-20T00:00:00Z"
        ))
        .await;
    assert_eq!(s, 200);

    // reprocessLicenseAssignment takes no body; a JSON null is a body.
    let url = format!(
        "{}/v1.0/users/{}/reprocessLicenseAssignment",
        c.sim.base_url,
        upn("teacher11")
    );
    let with_null = c
        .http
        .post(&url)
        .bearer_auth(&c.graph_token)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .expect("send");
    assert_eq!(with_null.status().as_u16(), 400);
    let bare = c.http.post(&url).bearer_auth(&c.graph_token).send().await;
    assert_eq!(bare.expect("send").status().as_u16(), 200);

    // A licence inherited from a group cannot be removed from the user directly: Microsoft's own message.
    let (s, e) = c
        .post(
            &format!("/v1.0/users/{}/assignLicense", upn("teacher01")),
            json!({"addLicenses": [], "removeLicenses": [FACULTY]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(
        e["error"]["message"],
        "User license is inherited from a group membership and it cannot be removed directly from the user."
    );

    // The SDKs' spelling of delta.
    let (s, round) = c.get("/v1.0/users/delta()?$select=id").await;
    assert_eq!(s, 200, "{round}");
    assert!(round["value"].as_array().is_some_and(|v| !v.is_empty()));

    // Starting an enabled Management API subscription again: 400 AF20024.
    let feed = format!("/api/v1.0/{}/activity/feed", c.sim.tenant_id);
    let start = format!("{feed}/subscriptions/start?contentType=Audit.General");
    assert_eq!(c.post(&start, json!({})).await.0, 200);
    let (s, e) = c.post(&start, json!({})).await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("AF20024")));
}

#[tokio::test]
async fn sign_in_pages_hold_120_users_and_never_signed_in_reads_as_year_one() {
    let mut scenario = Scenario::generated(
        300,
        "48a80680-7326-48cd-9935-b556b81d3a4e",
        chrono::Utc::now(),
    );
    scenario.premium = Some(true);
    let c = Client::new(scenario).await;
    let (s, page) = c
        .get("/v1.0/users?$select=id,signInActivity&$top=999")
        .await;
    assert_eq!(s, 200, "{page}");
    let users = page["value"].as_array().expect("value");
    assert_eq!(
        users.len(),
        120,
        "at most 120 users a page with signInActivity"
    );
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("%24top=120") || l.contains("$top=120"))
    );
    let never = users
        .iter()
        .find(|u| u["signInActivity"]["lastSuccessfulSignInDateTime"].is_null())
        .expect("a user who never signed in");
    assert_eq!(
        never["signInActivity"]["lastSignInDateTime"],
        "0001-01-01T00:00:00Z"
    );
    let (_, plain) = c.get("/v1.0/users?$select=id&$top=999").await;
    assert_eq!(
        plain["value"].as_array().map(Vec::len),
        Some(300),
        "no cap without it"
    );
}

#[tokio::test]
async fn a_tenant_may_refuse_the_license_error_filter() {
    let mut scenario = Scenario::default_story();
    scenario.behaviour.refuse_license_error_filter = true;
    let c = Client::new(scenario).await;
    let (s, e) = c
        .get("/v1.0/groups?$filter=hasMembersWithLicenseErrors eq true")
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some("Request_UnsupportedQuery"))
    );
    let (s, _) = c
        .get(&format!(
            "/v1.0/groups/{FACULTY_GROUP}/membersWithLicenseErrors"
        ))
        .await;
    assert_eq!(s, 200, "each group still answers for its members");
}

#[tokio::test]
async fn audit_logs_allow_five_requests_a_window_then_429_with_retry_after() {
    let mut scenario = Scenario::default_story();
    scenario.behaviour.reports_quota_window_ms = 2_000;
    let c = Client::new(scenario).await;
    let url = format!("{}/v1.0/auditLogs/directoryAudits?$top=1", c.sim.base_url);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = c
            .http
            .get(&url)
            .bearer_auth(&c.graph_token)
            .send()
            .await
            .expect("send");
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap_or("").to_string());
        statuses.push((r.status().as_u16(), retry_after));
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
    assert_eq!(
        statuses[5],
        (429, Some("2".to_string())),
        "the seconds until a slot frees up"
    );
    // Other Graph resources are not counted against this quota.
    assert_eq!(c.get("/v1.0/users?$top=1").await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(2_050)).await;
    let again = c
        .http
        .get(&url)
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("send");
    assert_eq!(
        again.status().as_u16(),
        200,
        "a slot freed up after the window"
    );
}

#[tokio::test]
async fn a_token_carries_the_permissions_granted_when_it_was_issued() {
    let mut scenario = Scenario::default_story();
    scenario.behaviour.granted_permissions = Some(vec!["User.Read.All".into()]);
    scenario.behaviour.mail_senders = Some(vec![upn("it.admin")]);
    let c = Client::new(scenario).await;
    assert_eq!(c.get("/v1.0/users?$top=1").await.0, 200);
    let (s, e) = c.get("/v1.0/auditLogs/directoryAudits").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("Authorization_RequestDenied"))
    );
    assert_eq!(
        e["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    let mail = json!({"message": {"subject": "x", "body": {"contentType": "Text", "content": "x"},
        "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}]}});
    let (s, _) = c
        .post(
            &format!("/v1.0/users/{}/sendMail", upn("it.admin")),
            mail.clone(),
        )
        .await;
    assert_eq!(s, 403, "Mail.Send is not granted");

    // Admin consent for more: tokens issued from now on carry it, the one in hand does not.
    let granted = json!({"granted": ["User.Read.All", "AuditLog.Read.All", "Mail.Send"]});
    assert_eq!(c.control("/_sim/permissions", granted).await, 204);
    assert_eq!(
        c.get("/v1.0/auditLogs/directoryAudits").await.0,
        403,
        "the old token"
    );
    let fresh = Client::with_sim(c.sim.clone()).await;
    assert_eq!(fresh.get("/v1.0/auditLogs/directoryAudits").await.0, 200);
    // The application access policy: only the listed mailbox may send.
    let (s, _) = fresh
        .post(
            &format!("/v1.0/users/{}/sendMail", upn("it.admin")),
            mail.clone(),
        )
        .await;
    assert_eq!(s, 202);
    let (s, e) = fresh
        .post(
            &format!("/v1.0/users/{}/sendMail", upn("adele.vance")),
            mail,
        )
        .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (403, Some("ErrorAccessDenied"))
    );
}

#[tokio::test]
async fn a_token_lives_sixty_to_ninety_minutes_on_the_tenants_clock() {
    let c = Client::new(Scenario::default_story()).await;
    let r: Value = request_token(&c.http, &c.sim.base_url, &c.sim.tenant_id)
        .await
        .json()
        .await
        .expect("json");
    let lifetime = r["expires_in"].as_i64().expect("expires_in");
    assert!((3600..5400).contains(&lifetime), "{lifetime}");
    assert_eq!(c.get("/v1.0/users?$top=1").await.0, 200);
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 59}))
            .await,
        200
    );
    assert_eq!(
        c.get("/v1.0/users?$top=1").await.0,
        200,
        "still within an hour"
    );
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 32}))
            .await,
        200
    );
    let (s, e) = c.get("/v1.0/users?$top=1").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("InvalidAuthenticationToken"))
    );
    let feed = format!(
        "/api/v1.0/{}/activity/feed/subscriptions/list",
        c.sim.tenant_id
    );
    assert_eq!(c.get(&feed).await.0, 401, "the Management API's token too");
}

#[tokio::test]
async fn identity_reads_spend_resource_units_and_the_budget_of_a_small_tenant_runs_out() {
    let mut scenario = Scenario::default_story();
    // A window long enough that nothing frees up during the test.
    scenario.behaviour.identity_quota_window_ms = 120_000;
    let c = Client::new(scenario).await;
    // A tenant of fewer than 50 users has 3,500 units; a list without $select costs 2, with $select 1.
    let mut spent = 0;
    while spent + 2 <= 3_500 {
        assert_eq!(
            c.get("/v1.0/users?$top=1").await.0,
            200,
            "after {spent} units"
        );
        spent += 2;
    }
    let r = c
        .http
        .get(format!("{}/v1.0/users?$top=1", c.sim.base_url))
        .bearer_auth(&c.graph_token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Other budgets are untouched: the audit logs answer.
    assert_eq!(c.get("/v1.0/auditLogs/directoryAudits?$top=1").await.0, 200);
}

/// Users' change notifications as Graph sends them: a creation and a soft deletion are `updated`, `deleted` only a
/// user gone for good; each arrives after a delay on the tenant's clock (up to 15 minutes), never at once.
#[tokio::test]
async fn a_new_user_and_a_soft_deletion_are_notified_as_updated_after_a_delay() {
    use std::sync::{Arc, Mutex};
    let c = Client::new(Scenario::default_story()).await;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let receiver = {
        let got = got.clone();
        axum::Router::new().route(
            "/n",
            axum::routing::post(
                move |q: axum::extract::Query<std::collections::HashMap<String, String>>,
                      body: String| {
                    let got = got.clone();
                    async move {
                        if let Some(token) = q.get("validationToken") {
                            return token.clone();
                        }
                        if let Ok(v) = serde_json::from_str::<Value>(&body) {
                            got.lock()
                                .expect("lock")
                                .extend(v["value"].as_array().cloned().unwrap_or_default());
                        }
                        String::new()
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/n", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    let expiry = (Scenario::default_story().now + chrono::Duration::days(2)).to_rfc3339();
    let (s, body) = c
        .post(
            "/v1.0/subscriptions",
            json!({"changeType": "updated,deleted", "notificationUrl": url, "resource": "/users",
                "expirationDateTime": expiry, "clientState": "secret-secret-secret-secret-secret!"}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let created = json!({"id": "d1f0c0de-0000-4000-8000-0000000000aa", "upn": upn("new.starter"),
        "created": "2026-11-20T00:00:00Z"});
    assert_eq!(c.control("/_sim/users", created).await, 201);
    let quarter_hour = || c.control("/_sim/clock", json!({"advance_minutes": 15}));
    // Several ticks of the notifier pass in real time, none on the tenant's clock: nothing is sent yet.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(got.lock().expect("lock").is_empty(), "not before its delay");
    assert_eq!(quarter_hour().await, 200);
    let seen = |n: usize| {
        let got = got.clone();
        async move {
            for _ in 0..200 {
                if got.lock().expect("lock").len() >= n {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            got.lock().expect("lock").clone()
        }
    };
    let first = seen(1).await;
    assert_eq!(first[0]["changeType"], "updated", "a creation: {first:?}");
    let adele = c.user(&upn("adele.vance")).await["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(c.delete_user(&adele, false).await, 200);
    assert_eq!(quarter_hour().await, 200);
    let second = seen(2).await;
    assert_eq!(
        second[1]["changeType"], "updated",
        "a soft deletion: {second:?}"
    );
    assert_eq!(
        c.delete_user("d1f0c0de-0000-4000-8000-0000000000aa", true)
            .await,
        200
    );
    assert_eq!(quarter_hour().await, 200);
    let third = seen(3).await;
    assert_eq!(
        third[2]["changeType"], "deleted",
        "gone for good: {third:?}"
    );
}

#[tokio::test]
async fn the_management_api_allows_2000_requests_a_minute_then_af429() {
    let c = Client::new(Scenario::default_story()).await;
    let list = format!(
        "/api/v1.0/{}/activity/feed/subscriptions/list",
        c.sim.tenant_id
    );
    for i in 0..2_000 {
        assert_eq!(c.get(&list).await.0, 200, "request {i}");
    }
    let (s, e) = c.get(&list).await;
    assert_eq!((s, e["error"]["code"].as_str()), (403, Some("AF429")));
    assert_eq!(
        c.get("/v1.0/users?$top=1").await.0,
        200,
        "Graph is another quota"
    );
}

/// Graph may notify before every replica has a change: a read by id right after a change shows the user as it was,
/// and as it is once the lag has passed.
#[tokio::test]
async fn a_read_right_after_a_change_may_not_show_it_yet() {
    let mut scenario = Scenario::default_story();
    scenario.behaviour.read_lag_seconds = 120;
    let c = Client::new(scenario).await;
    let alex = c.user(&upn("alex.wilber")).await;
    let id = alex["id"].as_str().expect("id").to_string();
    let held = alex["assignedLicenses"].as_array().expect("licences").len();
    assert!(held > 0, "{alex}");
    let sku = alex["assignedLicenses"][0]["skuId"]
        .as_str()
        .expect("sku")
        .to_string();
    let (s, body) = c
        .post(
            &format!("/v1.0/users/{id}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [sku]}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let path = format!("/v1.0/users/{id}?$select=id,assignedLicenses");
    let (_, stale) = c.get(&path).await;
    assert_eq!(
        stale["assignedLicenses"].as_array().map(Vec::len),
        Some(held),
        "the replica read does not have the change yet: {stale}"
    );
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 3}))
            .await,
        200
    );
    let (_, fresh) = c.get(&path).await;
    assert_eq!(
        fresh["assignedLicenses"].as_array().map(Vec::len),
        Some(held - 1),
        "{fresh}"
    );
}

/// A change to a group's licences is processed asynchronously, as `reprocessLicenseAssignment` is: the group is
/// `QueuedForProcessing` and its members unchanged until the processing time has passed.
#[tokio::test]
async fn a_group_licence_change_reaches_members_only_when_processing_ends() {
    let c = Client::new(Scenario::default_story()).await;
    let before = c.user(&upn("teacher01")).await["assignedLicenses"].clone();
    let (s, group) = c
        .post(
            &format!("/v1.0/groups/{FACULTY_GROUP}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [FACULTY]}),
        )
        .await;
    assert_eq!(s, 202, "{group}");
    assert_eq!(
        group["licenseProcessingState"]["state"],
        "QueuedForProcessing"
    );
    assert_eq!(
        c.user(&upn("teacher01")).await["assignedLicenses"],
        before,
        "members keep their licences while the group is queued"
    );
    assert_eq!(
        c.control("/_sim/clock", json!({"advance_minutes": 3}))
            .await,
        200
    );
    let (_, group) = c.get(&format!("/v1.0/groups/{FACULTY_GROUP}")).await;
    assert_eq!(
        group["licenseProcessingState"]["state"],
        "ProcessingComplete"
    );
    let after = c.user(&upn("teacher01")).await["assignedLicenses"].clone();
    assert!(
        after
            .as_array()
            .expect("licences")
            .iter()
            .all(|l| l["skuId"] != FACULTY),
        "{after}"
    );
}

/// The story with its Management Activity API content published from the moment a subscription starts (Microsoft:
/// up to 12 hours later, the simulator's default and its own test): for the tests of what is published.
fn publishing_at_once() -> Scenario {
    let mut scenario = Scenario::default_story();
    scenario.behaviour.management_first_content_minutes = 0;
    scenario
}

/// A new Management Activity API subscription publishes nothing for 12 hours; then the content of that time is
/// published, created when it was published.
#[tokio::test]
async fn a_new_subscription_publishes_its_first_content_twelve_hours_after_the_start() {
    let mut c = Client::new(Scenario::default_story()).await;
    let feed = format!("/api/v1.0/{}/activity/feed", c.sim.tenant_id);
    let kind = "Audit.AzureActiveDirectory";
    let (_, state) = c.get("/_sim/state").await;
    let started = chrono::DateTime::parse_from_rfc3339(state["now"].as_str().expect("now"))
        .expect("time")
        .to_utc();
    let (s, _) = c
        .post(
            &format!("{feed}/subscriptions/start?contentType={kind}"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.control(
            &format!("/_sim/users/{}/licenses", upn("joni.sherman")),
            json!({"remove": [E3], "actor": upn("it.admin")})
        )
        .await,
        200
    );
    let url = format!("{feed}/subscriptions/content?contentType={kind}");

    for hours in [2, 9] {
        assert_eq!(c.advance(json!({"advance_hours": hours})).await, 200);
        assert!(
            listing(&c, &url).await.is_empty(),
            "nothing before 12 hours"
        );
    }
    assert_eq!(c.advance(json!({"advance_hours": 2})).await, 200);
    let blobs = listing(&c, &url).await;
    assert!(!blobs.is_empty(), "published from 12 hours on");
    let first = started + chrono::Duration::hours(12);
    assert!(
        blobs.iter().all(|b| b["contentCreated"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t.to_utc() >= first)),
        "created when published: {blobs:?}"
    );
}

/// A content listing's blobs (its status must be 200).
async fn listing(c: &Client, url: &str) -> Vec<Value> {
    let (s, v) = c.get(url).await;
    assert_eq!(s, 200, "{v}");
    v.as_array().cloned().unwrap_or_default()
}

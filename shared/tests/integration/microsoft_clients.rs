//! The Graph and Management API clients against a real local HTTP server (wiremock): paging, throttling, token
//! refresh, typed errors, certificate assertions, and secrets kept out of Debug output and logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use licensewatch_core::adapters::auth::{Audience, CertificateCredential, Credential};
use licensewatch_core::adapters::credentials::Microsoft;
use licensewatch_core::adapters::http::ApiError;
use licensewatch_core::config::Settings;
use licensewatch_core::domain::retry::RetryPolicy;
use licensewatch_core::ports::audit_feed::plan_windows;
use licensewatch_core::ports::directory::types::User;
use licensewatch_core::secret::SecretString;
use serde_json::{Value, json};
use sha2::Digest;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "66666666-7777-8888-9999-000000000000";
const SECRET: &str = "client-secret-that-must-not-leak";

fn settings(server: &MockServer) -> Settings {
    let map: HashMap<&str, String> = HashMap::from([
        ("LICENSEWATCH_TENANT_ID", TENANT.to_string()),
        ("LICENSEWATCH_CLIENT_ID", CLIENT.to_string()),
        ("LICENSEWATCH_CLIENT_SECRET", SECRET.to_string()),
        ("LICENSEWATCH_GRAPH_URL", server.uri()),
        ("LICENSEWATCH_LOGIN_URL", server.uri()),
        ("LICENSEWATCH_MANAGE_URL", server.uri()),
    ]);
    Settings::from_lookup(|k| map.get(k).cloned()).expect("valid settings")
}

fn connect(server: &MockServer, policy: RetryPolicy) -> Microsoft {
    Microsoft::build(
        &settings(server),
        policy,
        TENANT,
        CLIENT,
        Credential::Secret(SecretString::new(SECRET)),
        "",
    )
}

/// Token endpoint handing out `tok-1`, `tok-2`, ... one per request.
struct Tokens(Mutex<u32>);
impl Respond for Tokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut n = self.0.lock().expect("lock");
        *n += 1;
        ResponseTemplate::new(200).set_body_json(
            json!({"token_type":"Bearer","expires_in":3599,"access_token":format!("tok-{n}")}),
        )
    }
}

async fn server_with_tokens() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(Tokens(Mutex::new(0)))
        .mount(&server)
        .await;
    server
}

fn user(id: u32) -> Value {
    json!({"id": format!("u{id}"), "userPrincipalName": format!("u{id}@contoso.com"), "accountEnabled": true})
}

#[tokio::test]
async fn pages_through_three_pages_then_stops() {
    let server = server_with_tokens().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$skiptoken", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [user(3), user(4)], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken=p3")}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$skiptoken", "p3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [user(5)]})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$top", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [user(1), user(2)], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken=p2")}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut pager = ms.graph.pages::<User>("users?$top=2");
    let mut ids = Vec::new();
    while let Some(page) = pager.next_page().await.expect("page") {
        ids.extend(page.into_iter().map(|u| u.id));
    }
    assert_eq!(ids, ["u1", "u2", "u3", "u4", "u5"]);
    assert_eq!(pager.pages_fetched(), 3);
    assert_eq!(ms.tokens.requests_sent(), 1, "one token serves every page");
}

#[tokio::test]
async fn page_cap_and_link_loops_stop_the_listing() {
    let server = server_with_tokens().await;
    let base = server.uri();
    // Every page links to the next one forever.
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(move |req: &Request| {
            let n: u32 = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "$skiptoken")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            ResponseTemplate::new(200)
                .set_body_json(json!({"value": [], "@odata.nextLink": format!("{base}/v1.0/users?$skiptoken={}", n + 1)}))
        })
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let graph = ms.graph.clone().with_max_pages(4);
    let mut pager = graph.pages::<User>("users");
    for _ in 0..4 {
        assert!(pager.next_page().await.expect("page").is_some());
    }
    let err = pager.next_page().await.expect_err("cap");
    assert!(
        matches!(err, ApiError::PageCapReached { cap: 4, .. }),
        "{err:?}"
    );

    // A link that points back to itself is a loop.
    let server = server_with_tokens().await;
    let base = server.uri();
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [], "@odata.nextLink": format!("{base}/v1.0/groups?$skiptoken=same")}),
        ))
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut pager = ms.graph.pages::<Value>("groups");
    pager.next_page().await.expect("first");
    pager
        .next_page()
        .await
        .expect("second (the repeated link, first time)");
    let err = pager.next_page().await.expect_err("loop");
    assert!(matches!(err, ApiError::PaginationLoop { .. }), "{err:?}");
}

#[tokio::test]
async fn next_link_to_another_host_is_refused() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [user(1)], "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x"})))
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut pager = ms.graph.pages::<User>("users");
    let err = pager.next_page().await.expect_err("untrusted");
    assert!(
        matches!(err, ApiError::UntrustedLink { ref host, .. } if host == "evil.example"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_next_page_is_requested_while_the_caller_works_on_this_one_and_only_on_its_own_host() {
    let server = server_with_tokens().await;
    let base = server.uri();
    let page = |n: u32, next: Option<String>| {
        let mut body = json!({"value": [user(n)]});
        if let Some(link) = next {
            body["@odata.nextLink"] = json!(link);
        }
        ResponseTemplate::new(200)
            .set_body_json(body)
            .set_delay(Duration::from_millis(300))
    };
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .and(query_param("$skiptoken", "2"))
        .respond_with(page(2, None))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(page(1, Some(format!("{base}/v1.0/users?$skiptoken=2"))))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let started = Instant::now();
    let mut pager = ms.graph.pages::<User>("users");
    let first = pager.next_page().await.expect("page 1").expect("some");
    // The caller spends as long on page 1 as a round trip takes; page 2 is on its way meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = pager.next_page().await.expect("page 2").expect("some");
    let elapsed = started.elapsed();
    assert_eq!((first[0].id.as_str(), second[0].id.as_str()), ("u1", "u2"));
    assert!(pager.next_page().await.expect("end").is_none());
    assert!(
        elapsed < Duration::from_millis(800),
        "three sequential 300 ms steps would take 900 ms; overlapped {elapsed:?}"
    );

    // A next link to another host is never requested, not even ahead of time: the bearer token stays home.
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .expect(0)
        .mount(&other)
        .await;
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"value": [user(1)], "@odata.nextLink": format!("{}/v1.0/users?$skiptoken=x", other.uri())}),
        ))
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut pager = ms.graph.pages::<User>("users");
    assert!(matches!(
        pager.next_page().await.expect_err("untrusted"),
        ApiError::UntrustedLink { .. }
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    other.verify().await;
}

#[tokio::test]
async fn throttling_with_retry_after_is_waited_out() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/subscribedSkus"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1").set_body_json(
            json!({"error":{"code":"TooManyRequests","message":"Too many requests","innerError":{"request-id":"r-1"}}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/subscribedSkus"))
        .and(header("retry-attempt", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": []})))
        .expect(1)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let started = Instant::now();
    let v: Value = ms
        .graph
        .get("subscribedSkus")
        .await
        .expect("ok after waiting");
    assert_eq!(v["value"], json!([]));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn throttling_without_retry_after_backs_off_then_succeeds() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/x"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(3)
        .expect(3)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/x"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(7)))
        .expect(1)
        .mount(&server)
        .await;
    let policy = RetryPolicy::quick();
    let ms = connect(&server, policy.clone());
    let started = Instant::now();
    let u: User = ms.graph.get("users/x").await.expect("ok");
    assert_eq!(u.id, "u7");
    // Three backoffs of at least half their window each: 10 + 20 + 40 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(70),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn service_unavailable_then_success() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/groups"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [{"id":"g1"}]})))
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let v: Value = ms.graph.get("groups").await.expect("ok");
    assert_eq!(v["value"][0]["id"], "g1");
}

#[tokio::test]
async fn unauthorized_refreshes_the_token_exactly_once() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/a"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error":{"code":"InvalidAuthenticationToken","message":"Access token has expired."}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/a"))
        .and(header("authorization", "Bearer tok-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(1)))
        .expect(1)
        .mount(&server)
        .await;
    // A second 401 after the refresh is final: no loop.
    Mock::given(method("GET"))
        .and(path("/v1.0/users/b"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"error":{"code":"InvalidAuthenticationToken","message":"nope"}}),
            ),
        )
        .expect(2)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let u: User = ms.graph.get("users/a").await.expect("ok after refresh");
    assert_eq!(u.id, "u1");
    assert_eq!(ms.tokens.requests_sent(), 2);
    let err = ms
        .graph
        .get::<User>("users/b")
        .await
        .expect_err("second 401 is final");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(ms.tokens.requests_sent(), 3);
}

#[tokio::test]
async fn persistent_server_error_gives_a_typed_error_within_budget() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(500).set_body_json(
            json!({"error":{"code":"generalException","message":"boom","innerError":{"request-id":"req-500"}}}),
        ))
        .mount(&server)
        .await;
    let policy = RetryPolicy::quick();
    let ms = connect(&server, policy.clone());
    let started = Instant::now();
    let err = ms.graph.get::<Value>("users").await.expect_err("500");
    assert!(started.elapsed() < policy.budget);
    match &err {
        ApiError::Unavailable {
            status,
            code,
            request_id,
            ..
        } => {
            assert_eq!(*status, 500);
            assert_eq!(code, "generalException");
            assert_eq!(request_id.as_deref(), Some("req-500"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_retryable());
    // One attempt plus max_server_error_retries.
    let hits = server.received_requests().await.unwrap_or_default();
    let graph_hits = hits
        .iter()
        .filter(|r| r.url.path() == "/v1.0/users")
        .count();
    assert_eq!(graph_hits as u32, 1 + policy.max_server_error_retries);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_carry_graph_code() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error":{"code":"Request_UnsupportedQuery","message":"Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."}})))
        .expect(1)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let err = ms
        .graph
        .get::<Value>("users?$top=1000")
        .await
        .expect_err("400");
    assert_eq!(err.code(), Some("Request_UnsupportedQuery"));
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn truncated_json_is_a_clear_error_not_a_panic() {
    let server = server_with_tokens().await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(r#"{"value":[{"id":"#, "application/json"),
        )
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut pager = ms.graph.pages::<User>("users");
    let err = pager.next_page().await.expect_err("truncated");
    assert!(matches!(err, ApiError::MalformedBody { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid JSON"), "{err}");
    // The position is kept so the same page can be asked for again.
    assert!(pager.checkpoint().is_some());
}

#[tokio::test]
async fn certificate_assertion_is_signed_with_the_key_and_names_the_certificate() {
    let pem = include_str!("../fixtures/test-client-cert.pem");
    let cred = CertificateCredential::from_pem(pem).expect("usable PEM");
    // x5t#S256 is the SHA-256 of the certificate's DER.
    let cert_b64: String = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|s| s.split("-----END CERTIFICATE-----").next())
        .expect("cert block")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(cert_b64)
        .expect("b64");
    let expected =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der));
    assert_eq!(cred.thumbprint_s256(), expected);
    assert!(!format!("{cred:?}").contains("PRIVATE"));

    // The token request carries a JWT that verifies with the certificate's public key.
    let server = MockServer::start().await;
    let captured: Arc<Mutex<Option<String>>> = Arc::default();
    let sink = captured.clone();
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(move |req: &Request| {
            let form: HashMap<String, String> = url::form_urlencoded::parse(&req.body)
                .into_owned()
                .collect();
            *sink.lock().expect("lock") = form.get("client_assertion").cloned();
            assert_eq!(
                form.get("client_assertion_type").map(String::as_str),
                Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            );
            assert!(!form.contains_key("client_secret"));
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token":"cert-token","expires_in":"3599"}))
        })
        .mount(&server)
        .await;
    let ms = Microsoft::build(
        &settings(&server),
        RetryPolicy::quick(),
        TENANT,
        CLIENT,
        Credential::Certificate(Box::new(cred)),
        "",
    );
    let token = ms.tokens.token(Audience::Graph).await.expect("token");
    assert_eq!(token.expose(), "cert-token");
    let jwt = captured
        .lock()
        .expect("lock")
        .clone()
        .expect("assertion sent");
    let header = jsonwebtoken::decode_header(&jwt).expect("header");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    assert_eq!(header.x5t_s256.as_deref(), Some(expected.as_str()));
    let key = jsonwebtoken::DecodingKey::from_rsa_pem(include_bytes!(
        "../fixtures/test-client-pubkey.pem"
    ))
    .expect("pubkey");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::PS256);
    let aud = format!("{}/{TENANT}/oauth2/v2.0/token", server.uri());
    validation.set_audience(&[aud.as_str()]);
    validation.set_issuer(&[CLIENT]);
    let data = jsonwebtoken::decode::<Value>(&jwt, &key, &validation).expect("signature verifies");
    assert_eq!(data.claims["sub"], CLIENT);
    assert!(data.claims["jti"].as_str().is_some_and(|j| j.len() == 36));
}

#[tokio::test]
async fn management_api_pages_retries_af429_and_covers_a_three_day_range() {
    let server = server_with_tokens().await;
    let base = server.uri();
    let feed = format!("/api/v1.0/{TENANT}/activity/feed/subscriptions/content");
    // AF429 once, then pages chained by NextPageUri for every window.
    Mock::given(method("GET"))
        .and(path(feed.clone()))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"error":{"code":"AF429","message":"Too many requests. Method=GetContent"}}),
        ))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let b = base.clone();
    let f = feed.clone();
    Mock::given(method("GET"))
        .and(path(feed.clone()))
        .respond_with(move |req: &Request| {
            let q: HashMap<String, String> = req.url.query_pairs().into_owned().collect();
            assert_eq!(q.get("PublisherIdentifier").map(String::as_str), Some(TENANT), "publisher id on every call");
            let page: u32 = q.get("nextPage").and_then(|p| p.parse().ok()).unwrap_or(1);
            let start = q.get("startTime").cloned().unwrap_or_default();
            let blob = json!([{"contentType":"Audit.AzureActiveDirectory","contentId":format!("{start}-{page}"),
                "contentUri":format!("{b}/api/v1.0/{TENANT}/activity/feed/audit/{page}"),
                "contentCreated":"2026-11-20T10:00:00.000Z","contentExpiration":"2026-11-27T10:00:00.000Z"}]);
            let mut r = ResponseTemplate::new(200).set_body_json(blob);
            if page < 3 {
                let next = format!("{b}{f}?contentType=Audit.AzureActiveDirectory&startTime={start}&endTime={}&nextPage={}", q.get("endTime").cloned().unwrap_or_default(), page + 1);
                r = r.insert_header("NextPageUri", next.as_str());
            }
            r
        })
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
        .expect("t")
        .to_utc();
    let (windows, gap) = plan_windows(now - chrono::Duration::days(3), now, now);
    assert_eq!(windows.len(), 3);
    assert!(gap.is_none());
    let mut ids = Vec::new();
    for w in windows {
        let mut pager = ms.management.content_pages("Audit.AzureActiveDirectory", w);
        while let Some(page) = pager.next_page().await.expect("page") {
            ids.extend(page.into_iter().map(|b| b.content_id));
        }
    }
    assert_eq!(ids.len(), 9, "3 windows x 3 pages: {ids:?}");
    let requests = server.received_requests().await.unwrap_or_default();
    let listing: Vec<_> = requests.iter().filter(|r| r.url.path() == feed).collect();
    assert_eq!(listing.len(), 10, "9 pages + 1 throttled attempt");
    for r in &listing {
        let q: HashMap<String, String> = r.url.query_pairs().into_owned().collect();
        if let (Some(s), Some(e)) = (q.get("startTime"), q.get("endTime")) {
            let s = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").expect("start");
            let e = chrono::NaiveDateTime::parse_from_str(e, "%Y-%m-%dT%H:%M:%S").expect("end");
            assert!(e - s <= chrono::Duration::hours(24));
        }
    }
}

#[tokio::test]
async fn users_are_read_in_json_batches_and_throttled_items_again_on_their_own() {
    use licensewatch_core::ports::directory::Directory;
    let server = server_with_tokens().await;
    let ids: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
    // Every batch: u3 is gone (404), u7 throttled (429); the rest are answered, in reverse order.
    struct Batch;
    impl Respond for Batch {
        fn respond(&self, req: &Request) -> ResponseTemplate {
            let body: Value = serde_json::from_slice(&req.body).expect("json");
            let mut responses: Vec<Value> = body["requests"]
                .as_array()
                .expect("requests")
                .iter()
                .map(|r| {
                    let url = r["url"].as_str().expect("url");
                    let id = url.trim_start_matches("/users/").split('?').next().expect("id");
                    match id {
                        "u3" => json!({"id": r["id"], "status": 404, "body": {"error": {"code": "Request_ResourceNotFound"}}}),
                        "u7" => json!({"id": r["id"], "status": 429, "headers": {"retry-after": "1"}, "body": {"error": {"code": "TooManyRequests"}}}),
                        _ => json!({"id": r["id"], "status": 200, "body": {"id": id, "userPrincipalName": format!("{id}@contoso.com"), "accountEnabled": true}}),
                    }
                })
                .collect();
            assert!(responses.len() <= 20, "Graph's limit");
            responses.reverse();
            ResponseTemplate::new(200).set_body_json(json!({ "responses": responses }))
        }
    }
    Mock::given(method("POST"))
        .and(path("/v1.0/$batch"))
        .respond_with(Batch)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/u7"))
        .respond_with(ResponseTemplate::new(200).set_body_json(user(7)))
        .expect(1)
        .mount(&server)
        .await;
    let ms = connect(&server, RetryPolicy::quick());
    let mut read = ms.graph.users_in_full(&ids).await.expect("read");
    read.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(read.len(), 25);
    for (id, user) in &read {
        match id.as_str() {
            "u3" => assert!(user.is_none(), "gone"),
            _ => assert_eq!(user.as_ref().map(|u| u.id.as_str()), Some(id.as_str())),
        }
    }
}

//! Secrets and tokens never reach Debug output or logs, even on the error paths (401 refresh, throttling, 5xx).
//! Its own test binary: the log capture is the process-wide subscriber.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use licensewatch_core::adapters::auth::Credential;
use licensewatch_core::adapters::credentials::Microsoft;
use licensewatch_core::config::Settings;
use licensewatch_core::domain::retry::RetryPolicy;
use licensewatch_core::secret::SecretString;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "66666666-7777-8888-9999-000000000000";
const SECRET: &str = "client-secret-that-must-not-leak";

/// A writer that keeps everything logged, to search it for secrets.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_and_tokens_never_reach_debug_output_or_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "tok-1", "expires_in": 3599})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/{TENANT}/oauth2/v2.0/token")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "tok-2", "expires_in": 3599})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/a"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/a"))
        .respond_with(ResponseTemplate::new(429))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1.0/users/a"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let map: HashMap<&str, String> = HashMap::from([
        ("LICENSEWATCH_TENANT_ID", TENANT.to_string()),
        ("LICENSEWATCH_CLIENT_ID", CLIENT.to_string()),
        ("LICENSEWATCH_CLIENT_SECRET", SECRET.to_string()),
        ("LICENSEWATCH_GRAPH_URL", server.uri()),
        ("LICENSEWATCH_LOGIN_URL", server.uri()),
    ]);
    let settings = Settings::from_lookup(|k| map.get(k).cloned()).expect("valid");
    let ms = Microsoft::build(
        &settings,
        RetryPolicy::quick(),
        TENANT,
        CLIENT,
        Credential::Secret(SecretString::new(SECRET)),
        "",
    );
    let err = ms.graph.get::<Value>("users/a").await.expect_err("fails");
    let debug = format!("{ms:?} {err:?} {err}");
    let logged = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf8");
    assert!(
        logged.contains("retry policy"),
        "logging was captured: {logged}"
    );
    for secret in [SECRET, "tok-1", "tok-2"] {
        assert!(!debug.contains(secret), "{secret} in Debug output");
        assert!(!logged.contains(secret), "{secret} in logs");
    }
}

//! `TestEnv`: the simulated tenant on a free port, real Microsoft clients pointed at it, a temporary SQLite store
//! and a fixed clock that moves with the simulator's.

use std::collections::HashMap;
use std::sync::Arc;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use licensewatch_core::adapters::auth::Credential;
use licensewatch_core::adapters::credentials::Microsoft;
use licensewatch_core::config::Settings;
use licensewatch_core::domain::catalog::Catalog;
use licensewatch_core::domain::retry::RetryPolicy;
use licensewatch_core::policy::Policy;
use licensewatch_core::ports::clock::FixedClock;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::secret::SecretString;
use licensewatch_core::usecases::check_licenses::{CheckReport, check_licenses};
use licensewatch_core::usecases::notify_grace_period::{
    NotifyDeps, NotifyReport, Step, notify_grace_period,
};
use licensewatch_sim::{Scenario, SimHandle};
use serde_json::{Value, json};

pub(crate) const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
pub(crate) const FACULTY: &str = "94763226-9b3c-4e75-a931-5c89701abe66";
pub(crate) const STUDENT: &str = "314c4481-f395-4525-be8b-2ec4bb1e9d91";

/// A policy that notifies `it-team@contoso.com` by mail from the IT admin's mailbox.
/// Quota windows run this much faster in the tests, in the simulator and in licensewatch's pacer alike: the same
/// 5 requests a window, so a product that does not pace is still throttled, without 10-s waits.
pub(crate) const QUOTA_TIME_SCALE: f64 = 0.01;

/// Microsoft's quota windows (as the simulator defaults to them) shortened by [`QUOTA_TIME_SCALE`], and this
/// process's pacer with them. A scenario that set its own window keeps it.
pub(crate) fn compress_quota_windows(scenarios: &mut [Scenario]) {
    licensewatch_core::adapters::pacer::set_time_scale(QUOTA_TIME_SCALE);
    let microsoft = licensewatch_sim::scenario::Behaviour::default();
    let scaled = |ms: u64| (ms as f64 * QUOTA_TIME_SCALE) as u64;
    for s in scenarios {
        let b = &mut s.behaviour;
        if b.reports_quota_window_ms == microsoft.reports_quota_window_ms {
            b.reports_quota_window_ms = scaled(microsoft.reports_quota_window_ms);
        }
        if b.identity_quota_window_ms == microsoft.identity_quota_window_ms {
            b.identity_quota_window_ms = scaled(microsoft.identity_quota_window_ms);
        }
    }
}

/// A tenant whose Management Activity API subscriptions were started a month ago (the state of a tenant already
/// watched: a new subscription publishes only what happens after its start, the first content up to 12 hours
/// later). A scenario that set its own start keeps it.
pub(crate) fn already_watched(scenarios: &mut [Scenario]) {
    for s in scenarios {
        if s.feeds_started_at.is_none() {
            s.feeds_started_at = Some(s.now - chrono::Duration::days(30));
        }
    }
}

pub(crate) fn notify_policy() -> Policy {
    let mut p = Policy::default();
    p.notify.admins = vec!["it-team@contoso.com".into()];
    p.notify.sender = upn("it.admin");
    p
}

pub(crate) fn upn(nick: &str) -> String {
    format!("{nick}@contoso.onmicrosoft.com")
}

/// Receives and deletes every message on `queue`: (receipt handle, body).
pub(crate) async fn drain(
    queue: &licensewatch_core::adapters::aws::sqs::SqsQueue,
) -> Vec<(String, String)> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(0).await.expect("receive");
        if batch.is_empty() {
            return all;
        }
        for (handle, _) in &batch {
            queue.delete(handle).await.expect("delete");
        }
        all.extend(batch);
    }
}

/// A table, a bucket and two queues in moto (`LICENSEWATCH_TEST_MOTO_URL`, started by `scripts/test.sh`).
pub(crate) struct AwsResources {
    pub conf: aws_config::SdkConfig,
    pub table: String,
    pub bucket: String,
    pub queue_url: String,
    pub tenant_queue_url: String,
}

impl AwsResources {
    pub(crate) async fn create() -> Self {
        let url = std::env::var("LICENSEWATCH_TEST_MOTO_URL").expect(
            "LICENSEWATCH_TEST_MOTO_URL is not set: run the tests with ./scripts/test.sh, which installs and starts moto",
        );
        let conf = licensewatch_core::adapters::aws::emulator_config(&url).await;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let table = format!("lw-{id}");
        licensewatch_core::adapters::aws::dynamo::create_table(&conf, &table)
            .await
            .expect("table");
        licensewatch_core::adapters::aws::create_bucket(&conf, &table)
            .await
            .expect("bucket");
        let queue = |name: String| {
            let conf = conf.clone();
            async move {
                licensewatch_core::adapters::aws::create_queue(&conf, &name)
                    .await
                    .expect("queue")
            }
        };
        let queue_url = queue(format!("rem-{id}")).await;
        let tenant_queue_url = queue(format!("ten-{id}")).await;
        Self {
            conf,
            bucket: table.clone(),
            table,
            queue_url,
            tenant_queue_url,
        }
    }
}

pub(crate) struct TestEnv {
    pub sim: SimHandle,
    pub rt: Runtime,
    pub clock: Arc<FixedClock>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestEnv {
    pub(crate) async fn spawn() -> Self {
        Self::with_policy(Policy::default()).await
    }

    pub(crate) async fn with_policy(policy: Policy) -> Self {
        Self::build(policy, None).await
    }

    /// The default story with the simulator's clock (and ours) at `now`.
    pub(crate) async fn at(now: DateTime<Utc>, policy: Policy) -> Self {
        let mut scenario = Scenario::default_story();
        scenario.now = now;
        Self::from_scenario(scenario, policy, None).await
    }

    /// A scenario of the test's own, at its own time.
    pub(crate) async fn with_scenario(scenario: Scenario, policy: Policy) -> Self {
        Self::from_scenario(scenario, policy, None).await
    }

    /// The same environment with state in DynamoDB, snapshots and the archive in S3 and remediation messages on
    /// SQS, all in moto.
    pub(crate) async fn on_aws(policy: Policy, aws: &AwsResources) -> Self {
        Self::build(policy, Some(aws)).await
    }

    async fn build(policy: Policy, aws: Option<&AwsResources>) -> Self {
        Self::from_scenario(Scenario::default_story(), policy, aws).await
    }

    async fn from_scenario(scenario: Scenario, policy: Policy, aws: Option<&AwsResources>) -> Self {
        Self::with_vars(scenario, policy, aws, &[]).await
    }

    /// A scenario with more environment variables for the runtime (e.g. change notifications).
    pub(crate) async fn with_vars(
        scenario: Scenario,
        policy: Policy,
        aws: Option<&AwsResources>,
        extra: &[(&'static str, String)],
    ) -> Self {
        Self::serving(vec![scenario], policy, aws, extra).await
    }

    /// A managed-service provider's fleet: the simulator serves every scenario (the first is the deployment's own
    /// tenant, whose runtime this is).
    pub(crate) async fn fleet(
        scenarios: Vec<Scenario>,
        policy: Policy,
        aws: Option<&AwsResources>,
    ) -> Self {
        Self::serving(scenarios, policy, aws, &[]).await
    }

    async fn serving(
        mut scenarios: Vec<Scenario>,
        policy: Policy,
        aws: Option<&AwsResources>,
        extra: &[(&'static str, String)],
    ) -> Self {
        compress_quota_windows(&mut scenarios);
        already_watched(&mut scenarios);
        let now = scenarios[0].now;
        let sim = licensewatch_sim::start_fleet(scenarios, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("sim");
        let dir = tempfile::tempdir().expect("tmp");
        let mut rt = runtime_with(&sim, dir.path(), policy, aws, extra);
        let clock = Arc::new(FixedClock::at(now));
        rt.clock = clock.clone();
        Self {
            sim,
            rt,
            clock,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// A control call for one tenant of a fleet (`x-sim-tenant`).
    pub(crate) async fn control_for(&self, tenant: &str, path: &str, body: Value) -> u16 {
        self.http
            .post(format!("{}{path}", self.sim.base_url))
            .header("x-sim-tenant", tenant)
            .json(&body)
            .send()
            .await
            .expect("control call")
            .status()
            .as_u16()
    }

    /// The file archive's directory (when the archive is not in S3).
    pub(crate) fn archive_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("archive")
    }

    /// Gives up the test environment's runtime (the simulator keeps running in this process).
    pub(crate) fn into_runtime(self) -> Runtime {
        std::mem::forget(self._dir);
        self.rt
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        use licensewatch_core::ports::clock::Clock;
        self.clock.now()
    }

    /// Moves the simulator's clock and ours together.
    pub(crate) async fn advance(&self, by: Duration) {
        self.control("/_sim/clock", json!({"advance_minutes": by.num_minutes()}))
            .await;
        self.clock.advance(by);
    }

    pub(crate) async fn control(&self, path: &str, body: Value) -> u16 {
        self.control_for(&self.sim.tenant_id, path, body).await
    }

    pub(crate) async fn check(&self) -> CheckReport {
        check_licenses(
            &self.rt.check_deps(),
            &self.rt.tenant_run(),
            &self.rt.policy,
            &|_| {},
        )
        .await
        .expect("check runs")
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{}", self.sim.base_url, path))
            .send()
            .await
            .expect("get")
            .json::<Value>()
            .await
            .expect("json")
    }

    /// Mail the simulator recorded through sendMail.
    pub(crate) async fn mail(&self) -> Vec<Value> {
        self.get("/_sim/mail")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs grace-period-notify with these channels and crash hook.
    pub(crate) async fn notify_with(
        &self,
        channels: &[Box<dyn licensewatch_core::ports::channel::Channel>],
        crash: &(dyn Fn(Step) -> Result<(), licensewatch_core::error::CoreError> + Sync),
        dry_run: bool,
    ) -> Result<NotifyReport, licensewatch_core::error::CoreError> {
        let deps = NotifyDeps {
            store: self.rt.store.as_ref(),
            clock: self.clock.as_ref(),
            channels,
            retry: RetryPolicy::quick(),
            crash,
        };
        notify_grace_period(&deps, &self.sim.tenant_id, &self.rt.policy, dry_run).await
    }

    /// The mail channel (sender = the IT admin's mailbox, admins = it-team@contoso.com) plus a quiet console.
    pub(crate) fn mail_channels(&self) -> Vec<Box<dyn licensewatch_core::ports::channel::Channel>> {
        vec![Box::new(
            licensewatch_core::adapters::notify::MailChannel::new(
                self.rt.microsoft.graph.clone(),
                self.rt.policy.notify.sender.clone(),
                self.rt.policy.notify.admins.clone(),
            ),
        )]
    }

    pub(crate) async fn requests(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/_sim/requests", self.sim.base_url))
            .send()
            .await
            .expect("requests")
            .json::<Vec<Value>>()
            .await
            .expect("json")
    }
}

/// The findings of one kind, as JSON (the public contract).
pub(crate) fn of_kind(report: &CheckReport, kind: &str) -> Vec<Value> {
    report
        .findings
        .iter()
        .filter(|f| f.kind() == kind)
        .map(|f| serde_json::to_value(f).expect("finding serialises"))
        .collect()
}

pub(crate) fn for_user(findings: &[Value], upn: &str) -> Vec<Value> {
    findings
        .iter()
        .filter(|f| f["user_principal_name"] == upn)
        .cloned()
        .collect()
}

/// A runtime against `sim` with its own state under `dir` (SQLite and a file archive, or the AWS resources).
fn runtime_for(
    sim: &SimHandle,
    dir: &std::path::Path,
    policy: Policy,
    aws: Option<&AwsResources>,
) -> Runtime {
    runtime_with(sim, dir, policy, aws, &[])
}

fn runtime_with(
    sim: &SimHandle,
    dir: &std::path::Path,
    policy: Policy,
    aws: Option<&AwsResources>,
    extra: &[(&'static str, String)],
) -> Runtime {
    let vars: HashMap<&str, String> = HashMap::from([
        ("LICENSEWATCH_TENANT_ID", sim.tenant_id.clone()),
        (
            "LICENSEWATCH_CLIENT_ID",
            "0f0f0f0f-1111-2222-3333-444455556666".to_string(),
        ),
        ("LICENSEWATCH_CLIENT_SECRET", "test-secret".to_string()),
        ("LICENSEWATCH_GRAPH_URL", sim.base_url.clone()),
        ("LICENSEWATCH_LOGIN_URL", sim.base_url.clone()),
        ("LICENSEWATCH_MANAGE_URL", sim.base_url.clone()),
        (
            "LICENSEWATCH_STATE",
            format!("sqlite:{}", dir.join("state.db").display()),
        ),
        (
            "LICENSEWATCH_ARCHIVE",
            format!("file:{}", dir.join("archive").display()),
        ),
    ]);
    let mut vars = vars;
    if let Some(aws) = aws {
        vars.insert("LICENSEWATCH_STATE", format!("dynamodb:{}", aws.table));
        vars.insert("LICENSEWATCH_ARCHIVE", format!("s3://{}/audit", aws.bucket));
        vars.insert("LICENSEWATCH_QUEUE_URL", aws.queue_url.clone());
        vars.insert(
            "LICENSEWATCH_TENANT_QUEUE_URL",
            aws.tenant_queue_url.clone(),
        );
    }
    vars.extend(extra.iter().cloned());
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("settings");
    let ms = Microsoft::build(
        &settings,
        RetryPolicy::quick(),
        &sim.tenant_id,
        "0f0f0f0f-1111-2222-3333-444455556666",
        Credential::Secret(SecretString::new("test-secret")),
        "",
    );
    Runtime::with_aws(
        settings,
        policy,
        ms,
        Catalog::embedded(),
        aws.map(|a| a.conf.clone()),
    )
    .expect("runtime")
}

impl TestEnv {
    /// A second runtime against the same simulated tenant, with its own state and this environment's clock.
    pub(crate) fn beside(&self, policy: Policy) -> (Runtime, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tmp");
        let mut rt = runtime_for(&self.sim, dir.path(), policy, None);
        rt.clock = self.clock.clone();
        (rt, dir)
    }
}

// ---------- Lambda events, from the fixtures ----------

pub(crate) fn schedule() -> EventBridgeEvent<Value> {
    serde_json::from_str(include_str!(
        "../../fixtures/events/eventbridge-schedule.json"
    ))
    .expect("fixture")
}

/// Wraps received SQS messages in the event Lambda's event source mapping would deliver.
pub(crate) fn sqs_event(messages: &[(String, String)]) -> Value {
    let template: Value =
        serde_json::from_str(include_str!("../../fixtures/events/sqs-batch.json"))
            .expect("fixture");
    let mut record = template["Records"][0].clone();
    let records: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, (_, body))| {
            record["messageId"] = format!("moto-{i}").into();
            record["body"] = body.clone().into();
            record.clone()
        })
        .collect();
    json!({ "Records": records })
}

pub(crate) fn function_url(
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> Value {
    let mut ev: Value =
        serde_json::from_str(include_str!("../../fixtures/events/function-url-post.json"))
            .expect("fixture");
    ev["rawPath"] = path.into();
    ev["requestContext"]["http"]["method"] = method.into();
    ev["requestContext"]["http"]["path"] = path.into();
    ev["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    for (k, v) in headers {
        ev["headers"][*k] = v.clone().into();
    }
    ev
}

/// Every archived record id under `prefix` with how many times it is in the archive.
pub(crate) async fn archived(
    archive: &licensewatch_core::adapters::files::FileArchive,
    prefix: &str,
) -> HashMap<String, usize> {
    use licensewatch_core::ports::archive::{AuditArchive, decode_batch};
    let mut ids = HashMap::new();
    for key in archive.keys(prefix).await.expect("keys") {
        for r in decode_batch(&archive.get(&key).await.expect("object")).expect("gzip ndjson") {
            let id = r["id"]
                .as_str()
                .or(r["Id"].as_str())
                .expect("record id")
                .to_string();
            *ids.entry(id).or_default() += 1;
        }
    }
    ids
}

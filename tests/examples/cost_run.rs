//! The cost benchmark's measuring run: the Lambda handlers, as deployed, against a simulated tenant (a separate
//! process) and moto counting every AWS request (`scripts/moto/serve.py PORT --count`). For each kind of invocation
//! it prints the wall time, this process's CPU time, and the AWS requests and billed units (DynamoDB request units,
//! S3 bytes written) the invocation caused, as one JSON document; `scripts/bench/cost.py` turns it into a monthly bill.
//!
//! usage: cost_run MOTO_URL SIM_URL TENANT_ID DOMAIN FAN_OUT_TENANTS

use std::collections::HashMap;
use std::time::Instant;

use licensewatch_core::adapters::auth::Credential;
use licensewatch_core::adapters::aws::{create_bucket, create_queue, dynamo, emulator_config};
use licensewatch_core::adapters::credentials::Microsoft;
use licensewatch_core::config::Settings;
use licensewatch_core::domain::catalog::Catalog;
use licensewatch_core::domain::retry::RetryPolicy;
use licensewatch_core::policy::{Policy, TenantEntry};
use licensewatch_core::runtime::Runtime;
use licensewatch_core::runtime::tenants::TenantRuntimes;
use licensewatch_core::secret::SecretString;
use serde_json::{Value, json};

const CLIENT_ID: &str = "0f0f0f0f-1111-2222-3333-444455556666";

struct Env {
    moto: String,
    sim: String,
    tenant: String,
    domain: String,
    conf: aws_config::SdkConfig,
    table: String,
    queue: String,
    http: reqwest::Client,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [moto, sim, tenant, domain, fan_out] = args.as_slice() else {
        return Err("usage: cost_run MOTO_URL SIM_URL TENANT_ID DOMAIN FAN_OUT_TENANTS".into());
    };
    let fan_out: usize = fan_out
        .parse()
        .map_err(|_| format!("FAN_OUT_TENANTS '{fan_out}' is not a number"))?;
    let conf = emulator_config(moto).await;
    let table = format!("cost-{}", uuid::Uuid::new_v4().simple());
    dynamo::create_table(&conf, &table)
        .await
        .map_err(|e| e.to_string())?;
    create_bucket(&conf, &table)
        .await
        .map_err(|e| e.to_string())?;
    let queue = create_queue(&conf, &format!("{table}-tenants"))
        .await
        .map_err(|e| e.to_string())?;
    let env = Env {
        moto: moto.trim_end_matches('/').to_string(),
        sim: sim.trim_end_matches('/').to_string(),
        tenant: tenant.clone(),
        domain: domain.clone(),
        conf,
        table,
        queue,
        http: reqwest::Client::new(),
    };
    let deps = TenantRuntimes::new(env.runtime(env.policy(0))?);
    let schedule: Value =
        serde_json::from_str(include_str!("../fixtures/events/eventbridge-schedule.json"))
            .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    let check = || license_check::handle_event(&deps, schedule.clone());
    runs.push(env.measure("license-check first run", check()).await?);
    // A busy hour: 1% of the users lose a licence.
    let users = runs[0].1["users_scanned"].as_u64().unwrap_or(0);
    env.sim_post(
        "/_sim/licenses/remove",
        json!({"sku_id": "6fd2c87f-b296-42f0-b197-1e91e994b900", "count": users / 100}),
    )
    .await?;
    runs.push(env.measure("license-check hourly run", check()).await?);
    let audit = || audit_fetch::handle_event(&deps, schedule.clone());
    runs.push(env.measure("audit-fetch first run", audit()).await?);
    runs.push(env.measure("audit-fetch run, nothing new", audit()).await?);
    let notify = || grace_period_notify::handle_event(&deps, schedule.clone());
    runs.push(
        env.measure("grace-period-notify daily run", notify())
            .await?,
    );
    let fleet = TenantRuntimes::new(env.runtime(env.policy(fan_out))?);
    let fan = license_check::handle_event(&fleet, schedule.clone());
    runs.push(env.measure("schedule fan-out", fan).await?);
    let out: Vec<Value> = runs
        .into_iter()
        .map(|(mut m, answer)| {
            m["answer"] = answer;
            m
        })
        .collect();
    println!(
        "{}",
        json!({"runs": out, "peak_rss_kib": status_kib("VmHWM:"), "fan_out_tenants": fan_out})
    );
    Ok(())
}

impl Env {
    fn policy(&self, fan_out: usize) -> Policy {
        let mut p = Policy::default();
        p.notify.admins = vec![format!("it-team@{}", self.domain)];
        p.notify.sender = format!("user000003@{}", self.domain);
        p.tenants = (0..fan_out)
            .map(|i| TenantEntry {
                id: format!("{i:08x}-c057-4000-8000-{i:012x}"),
                ..Default::default()
            })
            .collect();
        p
    }

    fn runtime(&self, policy: Policy) -> Result<Runtime, String> {
        let vars: HashMap<&str, String> = HashMap::from([
            ("LICENSEWATCH_TENANT_ID", self.tenant.clone()),
            ("LICENSEWATCH_CLIENT_ID", CLIENT_ID.into()),
            ("LICENSEWATCH_CLIENT_SECRET", "cost-run".into()),
            ("LICENSEWATCH_GRAPH_URL", self.sim.clone()),
            ("LICENSEWATCH_LOGIN_URL", self.sim.clone()),
            ("LICENSEWATCH_MANAGE_URL", self.sim.clone()),
            ("LICENSEWATCH_STATE", format!("dynamodb:{}", self.table)),
            ("LICENSEWATCH_ARCHIVE", format!("s3://{}/audit", self.table)),
            ("LICENSEWATCH_TENANT_QUEUE_URL", self.queue.clone()),
            (
                "LICENSEWATCH_NOW",
                licensewatch_sim::Scenario::default_story().now.to_rfc3339(),
            ),
        ]);
        let settings =
            Settings::from_lookup(|k| vars.get(k).cloned()).map_err(|e| e.to_string())?;
        let ms = Microsoft::build(
            &settings,
            RetryPolicy::default(),
            &self.tenant,
            CLIENT_ID,
            Credential::Secret(SecretString::new("cost-run")),
            "",
        );
        Runtime::with_aws(
            settings,
            policy,
            ms,
            Catalog::embedded(),
            Some(self.conf.clone()),
        )
        .map_err(|e| e.to_string())
    }

    async fn sim_post(&self, path: &str, body: Value) -> Result<(), String> {
        let status = self
            .http
            .post(format!("{}{path}", self.sim))
            .header("x-sim-tenant", &self.tenant)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .status();
        match status.is_success() {
            true => Ok(()),
            false => Err(format!("{path}: {status}")),
        }
    }

    async fn counts(&self, method: reqwest::Method) -> Result<Value, String> {
        self.http
            .request(method, format!("{}/_lw/counts", self.moto))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| format!("moto was not started with --count: {e}"))
    }

    /// Runs one invocation and returns what it cost, with its answer.
    async fn measure(
        &self,
        name: &str,
        invocation: impl std::future::Future<
            Output = Result<Value, licensewatch_core::error::CoreError>,
        >,
    ) -> Result<(Value, Value), String> {
        self.counts(reqwest::Method::DELETE).await?;
        let cpu = cpu_seconds();
        let started = Instant::now();
        let answer = invocation.await.map_err(|e| format!("{name}: {e}"))?;
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        let aws = self.counts(reqwest::Method::GET).await?;
        eprintln!("{name}: {wall:.2} s wall, {cpu:.2} s CPU");
        Ok((
            json!({"name": name, "wall_s": wall, "cpu_s": cpu, "aws": aws}),
            answer,
        ))
    }
}

/// User and system CPU time of this process (`/proc/self/stat`, in clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A `/proc/self/status` figure in KiB.
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

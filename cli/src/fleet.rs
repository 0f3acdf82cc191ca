//! `licensewatch check --all-tenants` and `notify --all-tenants`: every tenant of the policy's `[[tenants]]`, a few
//! at once. Each tenant runs on its own: a revoked consent, a throttled tenant or a failing one is reported for
//! that tenant and the others go on.

use futures::StreamExt;
use licensewatch_core::domain::findings::Severity;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::check_licenses::check_licenses;
use serde::Serialize;

/// The job run for each tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// license-check.
    Check,
    /// grace-period-notify (`dry_run` when true).
    Notify(bool),
}

impl Job {
    fn label(self) -> &'static str {
        match self {
            Job::Check => "license-check",
            Job::Notify(_) => "grace-period-notify",
        }
    }
}

/// One tenant's outcome.
#[derive(Debug, Serialize)]
pub struct TenantOutcome {
    /// Tenant.
    pub tenant_id: String,
    /// `ok`, `skipped` (another run held it), `consent_missing` (the app is not consented there: ask the customer's
    /// admin to consent again) or `failed`.
    pub status: &'static str,
    /// Users read.
    pub users_scanned: usize,
    /// Findings by severity.
    pub critical: usize,
    /// Findings by severity.
    pub warning: usize,
    /// Findings by severity.
    pub info: usize,
    /// Notices sent (or, in a dry run, due).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices: Option<usize>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Entra's answers when the app has no service principal or consent in a customer tenant.
const CONSENT_CODES: [&str; 3] = ["AADSTS7000229", "AADSTS65001", "AADSTS700016"];

/// Runs `job` for every listed tenant with at most `concurrency` at once.
pub async fn run_all(
    json: bool,
    licensing_csv: Option<std::path::PathBuf>,
    concurrency: usize,
    job: Job,
) -> Result<(), String> {
    let home = crate::runtime(licensing_csv.as_deref()).await?;
    let tenants: Vec<String> = home.policy.tenants.iter().map(|t| t.id.clone()).collect();
    if tenants.is_empty() {
        return Err("--all-tenants: the policy lists no [[tenants]]".into());
    }
    let bar = crate::progress::Progress::start(json, job.label());
    let total = tenants.len();
    let mut done = 0usize;
    let mut outcomes = Vec::with_capacity(total);
    let mut runs = futures::stream::iter(tenants)
        .map(|t| {
            let home = &home;
            async move { one(home, t, job, json).await }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(outcome) = runs.next().await {
        done += 1;
        bar.set(format!("{done}/{total} tenants done"));
        outcomes.push(outcome);
    }
    bar.finish();
    outcomes.sort_by(|a, b| a.tenant_id.cmp(&b.tenant_id));
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o.status, "failed" | "consent_missing"))
        .count();
    if json {
        let doc = serde_json::json!({"tenants": outcomes, "failed": failed});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
    } else {
        for o in &outcomes {
            println!(
                "{:<40} {:<16} {:>7} users  {} critical, {} warning, {} info{}",
                o.tenant_id,
                o.status,
                o.users_scanned,
                o.critical,
                o.warning,
                o.info,
                o.error
                    .as_ref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    match failed {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {total} tenant(s) could not be checked (see above)"
        )),
    }
}

async fn one(home: &Runtime, tenant: String, job: Job, json: bool) -> TenantOutcome {
    let mut outcome = TenantOutcome {
        tenant_id: tenant.clone(),
        status: "ok",
        users_scanned: 0,
        critical: 0,
        warning: 0,
        info: 0,
        notices: None,
        error: None,
    };
    let own = match tenant.eq_ignore_ascii_case(&home.microsoft.tenant_id) {
        true => Ok(None),
        false => home.for_tenant(&tenant).await.map(Some),
    };
    let rt = match &own {
        Ok(rt) => rt.as_ref().unwrap_or(home),
        Err(e) => {
            outcome.status = status_of(e);
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    if let Job::Notify(dry_run) = job {
        return notify_one(rt, outcome, dry_run, json).await;
    }
    match check_licenses(&rt.check_deps(), &rt.tenant_run(), &rt.policy, &|_| {}).await {
        Ok(report) => {
            let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
            outcome.users_scanned = report.users_scanned;
            outcome.critical = count(Severity::Critical);
            outcome.warning = count(Severity::Warning);
            outcome.info = count(Severity::Info);
            if report.skipped.is_some() {
                outcome.status = "skipped";
                outcome.error = report.skipped;
            }
        }
        Err(e) => {
            tracing::error!(tenant = %tenant, error = %e, "tenant check failed");
            outcome.status = status_of(&e);
            outcome.error = Some(e.to_string());
        }
    }
    outcome
}

async fn notify_one(
    rt: &Runtime,
    mut outcome: TenantOutcome,
    dry_run: bool,
    json: bool,
) -> TenantOutcome {
    use licensewatch_core::adapters::notify::ConsoleChannel;
    use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
    let channels = match rt.notify_channels(Some(Box::new(ConsoleChannel::new(json)))) {
        Ok(c) => c,
        Err(e) => {
            outcome.status = "failed";
            outcome.error = Some(e.to_string());
            return outcome;
        }
    };
    let tenant = rt.tenant_run().tenant_id;
    match notify_grace_period(&rt.notify_deps(&channels), &tenant, &rt.policy, dry_run).await {
        Ok(report) => {
            outcome.notices = Some(match dry_run {
                true => report.would_send.len(),
                false => report.sent.len(),
            });
            if let Some(why) = report.skipped {
                outcome.status = "skipped";
                outcome.error = Some(why);
            } else if !report.failed.is_empty() {
                outcome.status = "failed";
                outcome.error = Some(format!("{} delivery failure(s)", report.failed.len()));
            }
        }
        Err(e) => {
            outcome.status = status_of(&e);
            outcome.error = Some(e.to_string());
        }
    }
    outcome
}

fn status_of(e: &CoreError) -> &'static str {
    let text = e.to_string();
    match CONSENT_CODES.iter().any(|c| text.contains(c)) {
        true => "consent_missing",
        false => "failed",
    }
}

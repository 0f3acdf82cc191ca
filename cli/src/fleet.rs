//! `licensewatch check --all-tenants`, `audit-fetch --all-tenants` and `notify --all-tenants`: every tenant of the
//! policy's `[[tenants]]`, a few at once. Each tenant runs on its own: a revoked consent, a throttled tenant or a
//! failing one is reported for that tenant and the others go on. Each run is recorded for its tenant (the fleet
//! report's last runs; a missing consent alerts the deployment's own admins once).

use futures::StreamExt;
use licensewatch_core::domain::findings::Severity;
use licensewatch_core::domain::tenant_status;
use licensewatch_core::error::CoreError;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::check_licenses::check_licenses;
use licensewatch_core::usecases::fetch_audit::fetch_audit;
use serde::Serialize;

/// The job run for each tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// license-check.
    Check,
    /// audit-fetch.
    Audit,
    /// grace-period-notify (`dry_run` when true).
    Notify(bool),
}

impl Job {
    fn recorded(self) -> tenant_status::Job {
        match self {
            Job::Check => tenant_status::Job::LicenseCheck,
            Job::Audit => tenant_status::Job::AuditFetch,
            Job::Notify(_) => tenant_status::Job::GracePeriodNotify,
        }
    }
}

/// One tenant's outcome.
#[derive(Debug, Serialize)]
pub(crate) struct TenantOutcome {
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
    /// Audit records newly archived (audit-fetch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_archived: Option<usize>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `job` for every listed tenant with at most `concurrency` at once.
pub(crate) async fn run_all(
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
    let bar = crate::progress::Progress::start(json, job.recorded().as_str());
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
            let what = match (job, o.records_archived, o.notices) {
                (Job::Audit, n, _) => format!("{:>7} records archived", n.unwrap_or(0)),
                (Job::Notify(_), _, n) => format!("{:>7} notices", n.unwrap_or(0)),
                (Job::Check, _, _) => format!(
                    "{:>7} users  {} critical, {} warning, {} info",
                    o.users_scanned, o.critical, o.warning, o.info
                ),
            };
            println!(
                "{:<40} {:<16} {what}{}",
                o.tenant_id,
                o.status,
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
            "{n} of {total} tenant(s) failed {} (see above)",
            job.recorded()
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
        records_archived: None,
        error: None,
    };
    let own = match tenant.eq_ignore_ascii_case(&home.microsoft.tenant_id) {
        true => Ok(None),
        false => home.for_tenant(&tenant).await.map(Some),
    };
    let rt = match &own {
        Ok(rt) => rt.as_ref().unwrap_or(home),
        Err(e) => {
            home.record_run(job.recorded(), &tenant, Err(e)).await;
            return failed(outcome, e);
        }
    };
    let result = match job {
        Job::Notify(dry_run) => notify_one(rt, &mut outcome, dry_run, json).await,
        Job::Audit => audit_one(rt, &mut outcome).await,
        Job::Check => check_one(rt, &mut outcome).await,
    };
    // A dry run sends nothing and a skipped run did nothing: neither is a run of the job.
    if job != Job::Notify(true) && outcome.status != "skipped" {
        home.record_run(job.recorded(), &tenant, result.as_ref().map(|_| ()))
            .await;
    }
    match result {
        Ok(()) => outcome,
        Err(e) => {
            tracing::error!(tenant = %tenant, error = %e, "tenant run failed");
            failed(outcome, &e)
        }
    }
}

fn failed(mut outcome: TenantOutcome, e: &CoreError) -> TenantOutcome {
    outcome.status = match e.is_consent_missing() {
        true => "consent_missing",
        false => "failed",
    };
    outcome.error = Some(e.to_string());
    outcome
}

async fn check_one(rt: &Runtime, outcome: &mut TenantOutcome) -> Result<(), CoreError> {
    let report = check_licenses(&rt.check_deps(), &rt.tenant_run(), &rt.policy, &|_| {}).await?;
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    outcome.users_scanned = report.users_scanned;
    outcome.critical = count(Severity::Critical);
    outcome.warning = count(Severity::Warning);
    outcome.info = count(Severity::Info);
    if report.skipped.is_some() {
        outcome.status = "skipped";
        outcome.error = report.skipped;
    }
    Ok(())
}

async fn audit_one(rt: &Runtime, outcome: &mut TenantOutcome) -> Result<(), CoreError> {
    let report = fetch_audit(&rt.audit_deps(), &rt.policy).await?;
    outcome.records_archived = Some(report.records_archived);
    if report.skipped.is_some() {
        outcome.status = "skipped";
        outcome.error = report.skipped;
    } else if !report.gaps.is_empty() {
        outcome.error = Some(format!("{} audit gap(s)", report.gaps.len()));
    }
    Ok(())
}

async fn notify_one(
    rt: &Runtime,
    outcome: &mut TenantOutcome,
    dry_run: bool,
    json: bool,
) -> Result<(), CoreError> {
    use licensewatch_core::adapters::notify::ConsoleChannel;
    use licensewatch_core::usecases::notify_grace_period::notify_grace_period;
    let channels = rt.notify_channels(Some(Box::new(ConsoleChannel::new(json))))?;
    let tenant = rt.tenant_run().tenant_id;
    let report =
        notify_grace_period(&rt.notify_deps(&channels), &tenant, &rt.policy, dry_run).await?;
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
    Ok(())
}

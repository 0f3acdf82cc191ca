//! `licensewatch doctor [--tenant ID | --all-tenants] [--send-test-mail TO] [--json]`: whether the app registration
//! and each tenant give every function what it needs, with what to do about each thing missing. Exit 0 only when
//! nothing is missing.

use licensewatch_core::domain::doctor::{DoctorReport, Job, Verdict};
use licensewatch_core::runtime::Runtime;
use licensewatch_core::usecases::doctor::doctor;

/// Runs the checks for the configured tenant, one `--tenant`, or every tenant of the fleet (one row each).
pub(crate) async fn run(
    json: bool,
    tenant: Option<String>,
    all_tenants: bool,
    send_test_mail: Option<String>,
) -> Result<(), String> {
    let home = crate::runtime(None).await?;
    let reports = match (all_tenants, tenant) {
        (true, _) => fleet(&home, send_test_mail).await?,
        (false, t) => {
            let other = crate::tenant_runtime(&home, t.as_deref()).await?;
            let rt = other.as_ref().unwrap_or(&home);
            vec![check(rt, send_test_mail).await]
        }
    };
    if json {
        let doc = serde_json::json!({
            "healthy": reports.iter().all(DoctorReport::healthy),
            "tenants": reports,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
    } else if all_tenants {
        for r in &reports {
            println!("{}", row(r));
        }
    } else {
        for line in reports.iter().flat_map(lines) {
            println!("{line}");
        }
    }
    let unhealthy = reports.iter().filter(|r| !r.healthy()).count();
    match unhealthy {
        0 => Ok(()),
        n => Err(format!(
            "{n} of {} tenant(s) miss something a configured job needs (see above)",
            reports.len()
        )),
    }
}

async fn check(rt: &Runtime, send_test_mail: Option<String>) -> DoctorReport {
    doctor(
        &rt.doctor_deps(),
        &rt.doctor_request(&Job::ALL, send_test_mail),
    )
    .await
}

/// Every tenant of `[[tenants]]` (and the deployment's own), one after another: a tenant whose runtime cannot
/// even be built (its secret unreadable) is a report with that one check.
async fn fleet(
    home: &Runtime,
    send_test_mail: Option<String>,
) -> Result<Vec<DoctorReport>, String> {
    if home.policy.tenants.is_empty() {
        return Err("--all-tenants: the policy lists no [[tenants]]".into());
    }
    let mut reports = vec![check(home, send_test_mail.clone()).await];
    for t in &home.policy.tenants {
        if t.id.eq_ignore_ascii_case(&home.microsoft.tenant_id) {
            continue;
        }
        reports.push(match home.for_tenant(&t.id).await {
            Ok(rt) => check(&rt, send_test_mail.clone()).await,
            Err(e) => DoctorReport {
                tenant_id: t.id.clone(),
                jobs: Job::ALL.to_vec(),
                checks: vec![licensewatch_core::domain::doctor::Check::missing(
                    "configuration",
                    e.to_string(),
                    "fix the [[tenants]] entry or its secret",
                )],
            },
        });
    }
    Ok(reports)
}

fn label(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Missing => "MISSING",
        Verdict::Warning => "warning",
    }
}

/// A tenant's report, a line per check and its fix below it.
fn lines(r: &DoctorReport) -> Vec<String> {
    let jobs: Vec<&str> = r.jobs.iter().map(|j| j.as_str()).collect();
    let mut out = vec![format!(
        "licensewatch doctor: tenant {} ({})",
        r.tenant_id,
        jobs.join(", ")
    )];
    for c in &r.checks {
        out.push(format!(
            "  {:<8} {:<44} {}",
            label(c.verdict),
            c.name,
            c.detail
        ));
        if let Some(fix) = &c.fix {
            out.push(format!("  {:<8} {:<44} fix: {fix}", "", ""));
        }
    }
    out.push(format!(
        "{} ok, {} missing, {} warnings: {}",
        r.count(Verdict::Ok),
        r.count(Verdict::Missing),
        r.count(Verdict::Warning),
        if r.healthy() { "ready" } else { "not ready" }
    ));
    out
}

/// A fleet's row: the tenant, its counts and its first missing check.
fn row(r: &DoctorReport) -> String {
    let first = r
        .checks
        .iter()
        .find(|c| c.verdict == Verdict::Missing)
        .map(|c| format!("  first missing: {} ({})", c.name, c.detail))
        .unwrap_or_default();
    format!(
        "{:<40} {:<10} {:>2} ok {:>2} missing {:>2} warnings{first}",
        r.tenant_id,
        if r.healthy() { "ready" } else { "not ready" },
        r.count(Verdict::Ok),
        r.count(Verdict::Missing),
        r.count(Verdict::Warning)
    )
}

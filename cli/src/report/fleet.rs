//! `licensewatch report --html FILE --all-tenants`: the managed-service provider's page. It opens with one row per
//! tenant (open grace cases and the soonest deadline, licence errors, capacity and subscriptions at risk,
//! unexplained changes, audit gaps, the last check) linking to each tenant's own page, written beside it; the CSV
//! directory gets `fleet.csv` (with a tenant column) and each tenant's tables in a directory of its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use licensewatch_core::domain::findings::{Detail, Severity};
use licensewatch_core::domain::tenant_status::{Job, JobStatus};
use licensewatch_core::ports::channel::html_escape;
use licensewatch_core::runtime::Runtime;
use licensewatch_core::time_zone::TimeZone;

use super::{ReportData, day, latest, load, write};

/// One tenant's row.
struct Row {
    tenant_id: String,
    page: String,
    cells: Vec<String>,
    urgent: bool,
}

const HEADERS: [&str; 11] = [
    "tenant",
    "open grace cases",
    "soonest deadline",
    "licence errors",
    "capacity and subscriptions at risk",
    "unexplained changes",
    "audit gaps",
    "last check",
    "last audit-fetch",
    "last notify",
    "consent",
];

/// Writes the fleet page, the tenants' pages and the CSV files; returns the tenants written.
pub(super) async fn run(
    home: &Runtime,
    html: &Path,
    csv: Option<&Path>,
) -> Result<Vec<String>, String> {
    let tenants: Vec<String> = home.policy.tenants.iter().map(|t| t.id.clone()).collect();
    if tenants.is_empty() {
        return Err("--all-tenants: the policy lists no [[tenants]]".into());
    }
    let stem = html
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("report")
        .to_string();
    let dir = html.parent().map(Path::to_path_buf).unwrap_or_default();
    if !dir.as_os_str().is_empty() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
    }
    let mut rows = Vec::new();
    for tenant in &tenants {
        let rt = match tenant.eq_ignore_ascii_case(&home.microsoft.tenant_id) {
            true => None,
            false => Some(
                home.for_tenant(tenant)
                    .await
                    .map_err(|e| format!("{tenant}: {e}"))?,
            ),
        };
        let data = load(rt.as_ref().unwrap_or(home)).await?;
        let page = format!("{stem}-{}.html", safe(tenant));
        let csv_dir: Option<PathBuf> = csv.map(|d| d.join(safe(tenant)));
        if !data.runs.is_empty() {
            write(&data, Some(&dir.join(&page)), csv_dir.as_deref())?;
        }
        let statuses = home
            .store
            .job_statuses(tenant)
            .await
            .map_err(|e| format!("{tenant}: {e}"))?;
        rows.push(row(tenant, page, &data, &statuses));
    }
    std::fs::write(html, page(&rows, home))
        .map_err(|e| format!("cannot write '{}': {e}", html.display()))?;
    if let Some(d) = csv {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create '{}': {e}", d.display()))?;
        let path = d.join("fleet.csv");
        let mut w = csv::Writer::from_path(&path)
            .map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
        w.write_record(HEADERS).map_err(|e| e.to_string())?;
        for r in &rows {
            w.write_record(&r.cells).map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    Ok(tenants)
}

/// A tenant id as a file name.
fn safe(tenant: &str) -> String {
    tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .to_ascii_lowercase()
}

/// A job's last run as a cell: the day of its last success, and how long it has been failing.
fn last_run(statuses: &[JobStatus], job: Job, tz: &TimeZone) -> String {
    let Some(s) = statuses.iter().find(|s| s.job == job) else {
        return "never".into();
    };
    let ok = s
        .last_ok_at
        .map_or_else(|| "never".to_string(), |t| day(&t, tz));
    match &s.failure {
        None => ok,
        Some(f) => format!("{ok} (failing since {})", day(&f.since, tz)),
    }
}

/// The tenant's consent as its runs last found it.
fn consent(statuses: &[JobStatus], tz: &TimeZone) -> String {
    let missing = statuses
        .iter()
        .filter_map(|s| s.failure.as_ref().filter(|f| f.consent_missing))
        .map(|f| f.since)
        .min();
    match (missing, statuses.iter().any(|s| s.last_ok_at.is_some())) {
        (Some(since), _) => format!("missing since {}", day(&since, tz)),
        (None, true) => "ok".into(),
        (None, false) => "unknown".into(),
    }
}

fn row(tenant: &str, page: String, data: &ReportData, statuses: &[JobStatus]) -> Row {
    let findings = latest(data)
        .map(|r| r.findings.as_slice())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Detail) -> bool| findings.iter().filter(|x| f(&x.detail)).count();
    let errors = count(&|d| matches!(d, Detail::LicenseAssignmentError { .. }));
    let at_risk = findings
        .iter()
        .filter(|f| {
            f.severity != Severity::Info
                && matches!(
                    f.detail,
                    Detail::SkuCapacity { .. } | Detail::SubscriptionLapsing { .. }
                )
        })
        .count();
    let unexplained = count(&|d| {
        matches!(
            d,
            Detail::LicenseRemoved {
                explained: false,
                ..
            } | Detail::LicenseAdded {
                explained: false,
                ..
            }
        )
    });
    let soonest = data.cases.first().map(|c| c.deadlines.access_ends_at);
    let cells = vec![
        tenant.to_string(),
        data.cases.len().to_string(),
        soonest
            .map(|t| day(&t, &data.time_zone))
            .unwrap_or_default(),
        errors.to_string(),
        at_risk.to_string(),
        unexplained.to_string(),
        data.gaps.len().to_string(),
        match statuses.iter().any(|s| s.job == Job::LicenseCheck) {
            true => last_run(statuses, Job::LicenseCheck, &data.time_zone),
            // Checks run before the runs were recorded: the newest run record.
            false => latest(data)
                .map(|r| day(&r.run_at, &data.time_zone))
                .unwrap_or_else(|| "never".into()),
        },
        last_run(statuses, Job::AuditFetch, &data.time_zone),
        last_run(statuses, Job::GracePeriodNotify, &data.time_zone),
        consent(statuses, &data.time_zone),
    ];
    let urgent = soonest.is_some_and(|t| t - data.generated_at < chrono::Duration::days(7))
        || latest(data).is_none()
        || statuses.iter().any(|s| s.failure.is_some())
        || findings
            .iter()
            .any(|f| f.severity == Severity::Critical && f.suppressed.is_none());
    Row {
        tenant_id: tenant.to_string(),
        page,
        cells,
        urgent,
    }
}

fn page(rows: &[Row], home: &Runtime) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>licensewatch: {} tenants</title><style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b2733}}\
         table{{border-collapse:collapse;width:100%}}th,td{{border-bottom:1px solid #dfe6ee;padding:.4rem .6rem;text-align:left}}\
         tr.urgent td{{background:#fdecea}}td.n{{text-align:right}}a{{color:#0b5cad}}</style></head><body>\
         <h1>licensewatch: {} tenants</h1><p>Generated {}. A red row needs attention this week (a deadline within 7 days, \
         a critical finding, a job failing, or a tenant never checked). \"consent\" is what the last runs found: a customer \
         whose consent is missing must consent to the app again before anything runs there.</p>",
        rows.len(),
        rows.len(),
        home.clock.now().format("%Y-%m-%d %H:%M UTC")
    );
    h.push_str("<section id=\"fleet\"><table><thead><tr>");
    for head in HEADERS {
        let _ = write!(h, "<th>{}</th>", html_escape(head));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        let _ = write!(
            h,
            "<tr{}><td><a href=\"{}\">{}</a></td>",
            if r.urgent { " class=\"urgent\"" } else { "" },
            html_escape(&r.page),
            html_escape(&r.tenant_id)
        );
        for c in &r.cells[1..] {
            let _ = write!(h, "<td class=\"n\">{}</td>", html_escape(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></section></body></html>");
    h
}

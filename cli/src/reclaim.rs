//! `licensewatch reclaim`: licences nobody uses, with what they cost and the command that would remove each.

use std::path::{Path, PathBuf};

use licensewatch_core::domain::reclaim::{Reason, ReclaimReport, ReclaimRow};
use licensewatch_core::usecases::reclaim::reclaim;

/// Builds the report, saves it for `licensewatch report`, and prints it (or writes CSV).
pub(crate) async fn run(json: bool, csv: Option<PathBuf>) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let tenant = rt.tenant_run().tenant_id;
    let report = reclaim(
        &rt.reclaim_deps(),
        &tenant,
        &rt.reclaim_rules(),
        rt.clock.now(),
    )
    .await
    .map_err(|e| format!("{e} ({})", e.kind()))?;
    if let Some(path) = &csv {
        write_csv(path, &report)?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print_human(&report);
    }
    Ok(())
}

/// The reason in words.
pub(crate) fn reason(r: &Reason) -> String {
    match r {
        Reason::Inactive { days } => format!("no sign-in for {days} days"),
        Reason::NeverUsed { days } => format!("never signed in ({days} days licensed)"),
        Reason::Disabled => "account disabled".into(),
        Reason::SharedMailbox {
            storage_bytes: Some(b),
        } => format!(
            "a shared mailbox of {}: none needed under 50 GB (check it is not on litigation hold)",
            licensewatch_core::domain::reclaim::gigabytes(*b)
        ),
        Reason::SharedMailbox { storage_bytes: None } => {
            "a shared mailbox: none needed under 50 GB (size unknown: check it, and that it is not on litigation hold)"
                .into()
        }
        Reason::Overlapping {
            covered_by,
            services,
        } => format!("{} also in {covered_by}", services.join(", ")),
    }
}

/// An amount with the report's currency.
pub(crate) fn money(report: &ReclaimReport, amount: Option<f64>) -> String {
    match (amount, &report.currency) {
        (Some(a), Some(c)) => format!("{a:.2} {c}"),
        (Some(a), None) => format!("{a:.2}"),
        _ => String::new(),
    }
}

fn print_human(report: &ReclaimReport) {
    println!(
        "licensewatch reclaim: {} licence(s) worth reclaiming among {} users (activity: {:?}, inactive after {} days){}",
        report.rows.len(),
        report.users_read,
        report.activity_source,
        report.inactive_days,
        report
            .monthly_total
            .map(|_| format!(", {} a month", money(report, report.monthly_total)))
            .unwrap_or_default()
    );
    for note in report.activity_notes.iter().chain(&report.mailbox_notes) {
        println!("  note: {note}");
    }
    for r in &report.rows {
        println!(
            "  {}  {}  {}{}\n      {}",
            r.user_principal_name,
            r.sku_name,
            reason(&r.reason),
            match money(report, r.monthly_cost) {
                m if m.is_empty() => String::new(),
                m => format!("  ({m}/month)"),
            },
            r.action
        );
    }
    for s in &report.idle_seats {
        println!(
            "  {} unassigned seat(s) of {}{}",
            s.unassigned,
            s.sku_name,
            match money(report, s.monthly_cost) {
                m if m.is_empty() => String::new(),
                m => format!("  ({m}/month)"),
            }
        );
    }
}

/// The rows to `path`, and the idle seats beside it (`NAME-idle-seats.csv`).
fn write_csv(path: &Path, report: &ReclaimReport) -> Result<(), String> {
    let fail = |p: &Path, e: &dyn std::fmt::Display| format!("cannot write '{}': {e}", p.display());
    let mut w = csv::Writer::from_path(path).map_err(|e| fail(path, &e))?;
    w.write_record([
        "user_principal_name",
        "user_id",
        "sku",
        "sku_id",
        "reason",
        "last_activity",
        "licensed_since",
        "assigned_by_group",
        "monthly_cost",
        "currency",
        "action",
    ])
    .map_err(|e| fail(path, &e))?;
    for r in &report.rows {
        w.write_record(row(report, r)).map_err(|e| fail(path, &e))?;
    }
    w.flush().map_err(|e| fail(path, &e))?;
    let idle_path = path.with_file_name(format!(
        "{}-idle-seats.csv",
        path.file_stem().unwrap_or_default().to_string_lossy()
    ));
    let mut w = csv::Writer::from_path(&idle_path).map_err(|e| fail(&idle_path, &e))?;
    w.write_record(["sku", "sku_id", "unassigned", "monthly_cost", "currency"])
        .map_err(|e| fail(&idle_path, &e))?;
    for s in &report.idle_seats {
        w.write_record([
            s.sku_name.clone(),
            s.sku_id.clone(),
            s.unassigned.to_string(),
            s.monthly_cost
                .map(|c| format!("{c:.2}"))
                .unwrap_or_default(),
            report.currency.clone().unwrap_or_default(),
        ])
        .map_err(|e| fail(&idle_path, &e))?;
    }
    w.flush().map_err(|e| fail(&idle_path, &e))
}

fn row(report: &ReclaimReport, r: &ReclaimRow) -> [String; 11] {
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    [
        r.user_principal_name.clone(),
        r.user_id.clone(),
        r.sku_name.clone(),
        r.sku_id.clone(),
        reason(&r.reason),
        time(r.last_activity),
        time(r.licensed_since),
        r.assigned_by_group.clone().unwrap_or_default(),
        r.monthly_cost
            .map(|c| format!("{c:.2}"))
            .unwrap_or_default(),
        report.currency.clone().unwrap_or_default(),
        r.action.clone(),
    ]
}

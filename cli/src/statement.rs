//! `licensewatch statement --month YYYY-MM [--tenant ID | --all-tenants] [--csv DIR] [--pdf FILE]`: the month's
//! licence statement of one customer or of every customer of `[[tenants]]` (one PDF, a customer per section; one
//! pair of CSVs, each row naming its tenant), from the state store alone: no Graph call.

use std::path::{Path, PathBuf};

use licensewatch_core::domain::statement::{Month, Statement, pdf};
use licensewatch_core::usecases::statement::{fleet_csv, fleet_tenants, statement};

/// The command's arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct StatementArgs {
    /// The month, YYYY-MM (default: the month before this one).
    #[arg(long)]
    month: Option<String>,
    /// This tenant of the policy's [[tenants]] (GUID or domain) instead of the configured one.
    #[arg(long, conflicts_with = "all_tenants")]
    tenant: Option<String>,
    /// Every customer: the configured tenant and each of [[tenants]].
    #[arg(long)]
    all_tenants: bool,
    /// Directory for skus.csv and changes.csv.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// PDF file to write.
    #[arg(long)]
    pdf: Option<PathBuf>,
}

/// Builds the statements, writes what was asked, prints a summary (or the statements as JSON).
pub(crate) async fn run(json: bool, args: StatementArgs) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let month = match &args.month {
        Some(m) => Month::parse(m).map_err(|e| format!("--month: {e}"))?,
        None => Month::previous(rt.clock.now()),
    };
    let home = rt.microsoft.tenant_id.clone();
    let tenants = match (&args.tenant, args.all_tenants) {
        (_, true) => fleet_tenants(&rt.policy, &home),
        (Some(t), false) => vec![listed(&rt.policy, &home, t)?],
        (None, false) => vec![home],
    };
    let mut statements = Vec::with_capacity(tenants.len());
    for t in &tenants {
        statements.push(
            statement(&rt.statement_deps(), t, month, &rt.policy)
                .await
                .map_err(|e| format!("statement of tenant {t}: {e} ({})", e.kind()))?,
        );
    }
    if let Some(dir) = &args.csv {
        write_csv(dir, &statements)?;
    }
    if let Some(file) = &args.pdf {
        let pages: Vec<Vec<String>> = statements.iter().map(Statement::lines).collect();
        write(file, &pdf(&pages))?;
    }
    if json {
        let doc = serde_json::json!({"month": month.to_string(), "statements": statements});
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
    } else {
        for st in &statements {
            for line in st.lines() {
                println!("{line}");
            }
            println!();
        }
    }
    Ok(())
}

/// The configured tenant or one of `[[tenants]]`, as the policy spells it (the state is kept under that id).
fn listed(
    policy: &licensewatch_core::policy::Policy,
    home: &str,
    tenant: &str,
) -> Result<String, String> {
    fleet_tenants(policy, home)
        .into_iter()
        .find(|t| t.eq_ignore_ascii_case(tenant.trim()))
        .ok_or_else(|| {
            format!("--tenant {tenant}: not the configured tenant nor listed in the policy's [[tenants]]")
        })
}

fn write_csv(dir: &Path, statements: &[Statement]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--csv {}: {e}", dir.display()))?;
    let (skus, changes) = fleet_csv(statements);
    write(&dir.join("skus.csv"), skus.as_bytes())?;
    write(&dir.join("changes.csv"), changes.as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write '{}': {e}", path.display()))
}

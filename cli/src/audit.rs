//! `licensewatch audit-fetch` and `licensewatch license-events`.

use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::usecases::fetch_audit::fetch_audit;

/// Archives new audit records and derives licence events, for the configured tenant or one of `[[tenants]]`.
pub(crate) async fn fetch(json: bool, tenant: Option<String>) -> Result<(), String> {
    let home = crate::runtime(None).await?;
    let rt = crate::tenant_runtime(&home, tenant.as_deref()).await?;
    let rt = rt.as_ref().unwrap_or(&home);
    let bar = crate::progress::Progress::start(json, "audit-fetch");
    let progress = |r: &licensewatch_core::usecases::fetch_audit::AuditReport| {
        bar.set(format!(
            "{} blobs fetched, {} records archived",
            r.blobs_fetched, r.records_archived
        ))
    };
    let mut deps = rt.audit_deps();
    deps.progress = &progress;
    let report = fetch_audit(&deps, &rt.policy).await;
    bar.finish();
    if !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        let tenant = &rt.microsoft.tenant_id;
        home.record_run(Job::AuditFetch, tenant, report.as_ref().map(|_| ()))
            .await;
    }
    let report = report.map_err(|e| format!("{e} ({})", e.kind()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else if let Some(why) = &report.skipped {
        println!("licensewatch audit-fetch: skipped: {why}");
    } else {
        println!(
            "licensewatch audit-fetch: {} record(s) archived, {} duplicate(s) skipped, {} blob(s), {} new licence event(s)",
            report.records_archived,
            report.duplicates_skipped,
            report.blobs_fetched,
            report.license_events
        );
        for g in &report.gaps {
            println!(
                "  GAP {}: {} .. {} is no longer available from Microsoft",
                g.source, g.from, g.to
            );
        }
    }
    Ok(())
}

/// `licensewatch backfill`: one step of the Purview audit log backfill (the query created, polled, or its records
/// archived); with `--wait`, steps every 30 seconds until Microsoft's search is done and its records archived.
pub(crate) async fn backfill(
    json: bool,
    tenant: Option<String>,
    days: i64,
    wait: bool,
) -> Result<(), String> {
    let home = crate::runtime(None).await?;
    let rt = crate::tenant_runtime(&home, tenant.as_deref()).await?;
    let rt = rt.as_ref().unwrap_or(&home);
    // What earlier steps archived (a step the deadline cut short), added to the last step's figures.
    let (mut archived, mut events) = (0, 0);
    loop {
        let (step, mut report) =
            licensewatch_core::usecases::fetch_audit::backfill(&rt.audit_deps(), days)
                .await
                .map_err(|e| format!("{e} ({})", e.kind()))?;
        let status = step.as_ref().map(|s| s.status.clone());
        let pending = matches!(
            status.as_deref(),
            Some("requested" | "running" | "incomplete")
        );
        // One document (or line) at the end: the steps before it only say on stderr that Microsoft is still searching.
        report.records_archived += archived;
        report.license_events += events;
        if !(wait && pending) {
            print_backfill(json, &report)?;
            return match status.as_deref() {
                Some("failed") => Err("the backfill failed (see above); run it again".into()),
                _ => Ok(()),
            };
        }
        (archived, events) = (report.records_archived, report.license_events);
        eprintln!(
            "licensewatch backfill: {}; asking again in 30 s",
            status.as_deref().unwrap_or("pending")
        );
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    }
}

fn print_backfill(
    json: bool,
    report: &licensewatch_core::usecases::fetch_audit::AuditReport,
) -> Result<(), String> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    match (&report.skipped, &report.backfill) {
        (Some(why), _) => println!("licensewatch backfill: skipped: {why}"),
        (None, Some(b)) => {
            let window = match (b.from, b.until) {
                (Some(f), Some(u)) => {
                    format!(" ({} .. {})", f.format("%Y-%m-%d"), u.format("%Y-%m-%d"))
                }
                _ => String::new(),
            };
            println!(
                "licensewatch backfill: {}{window}: {} record(s) read, {} archived, {} new licence event(s){}",
                b.status,
                b.records_read,
                report.records_archived,
                report.license_events,
                b.detail
                    .as_ref()
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            );
        }
        (None, None) => println!("licensewatch backfill: nothing to do"),
    }
    Ok(())
}

/// Lists licence-change events.
pub(crate) async fn events(json: bool, user: Option<String>) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    let tenant = rt.tenant_run().tenant_id;
    let events = rt
        .store
        .license_events(&tenant, user.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::json!({"events": events}));
        return Ok(());
    }
    for e in &events {
        let names = |ids: &[String]| {
            ids.iter()
                .map(|s| rt.catalog.sku_label(s, ""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{}  {}  {}{}{}  by {}  [{}]{}",
            e.at.to_rfc3339(),
            e.user_principal_name
                .as_deref()
                .or(e.user_id.as_deref())
                .unwrap_or("?"),
            if e.added_sku_ids.is_empty() {
                String::new()
            } else {
                format!("+{} ", names(&e.added_sku_ids))
            },
            if e.removed_sku_ids.is_empty() {
                String::new()
            } else {
                format!("-{} ", names(&e.removed_sku_ids))
            },
            e.result,
            e.actor.as_deref().unwrap_or("?"),
            e.source,
            e.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Re-lists one day from the sources and compares it with the archive.
pub(crate) async fn verify(json: bool, day: &str) -> Result<(), String> {
    let day = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .map_err(|_| format!("--day '{day}' is not YYYY-MM-DD"))?;
    let rt = crate::runtime(None).await?;
    let checks =
        licensewatch_core::usecases::fetch_audit::verify_day(&rt.audit_deps(), &rt.policy, day)
            .await
            .map_err(|e| format!("{e} ({})", e.kind()))?;
    let complete = checks
        .iter()
        .all(|c| c.missing_records.is_empty() && c.blobs_missing.is_empty());
    if json {
        println!(
            "{}",
            serde_json::json!({"day": day.to_string(), "complete": complete, "sources": checks})
        );
    } else {
        for c in &checks {
            println!(
                "{}: {} record(s) at the source, {} archived, {} missing; {} blob(s) listed, {} not archived",
                c.source,
                c.source_records,
                c.archived_records,
                c.missing_records.len(),
                c.blobs_listed,
                c.blobs_missing.len()
            );
        }
    }
    if complete {
        Ok(())
    } else {
        Err(format!("the archive misses records for {day}"))
    }
}

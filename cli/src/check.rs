//! `licensewatch check` and `licensewatch history`: the license-check use case with local adapters.

use licensewatch_core::ports::store::traits::*;
use std::path::PathBuf;

use licensewatch_core::domain::findings::{Detail, Finding, Severity};
use licensewatch_core::domain::tenant_status::Job;
use licensewatch_core::runtime::{Runtime, load_config};
use licensewatch_core::usecases::check_licenses::{CheckReport, check_licenses};

/// Runs license-check once.
pub(crate) async fn run(
    json: bool,
    csv: Option<PathBuf>,
    licensing_csv: Option<PathBuf>,
    tenant: Option<String>,
) -> Result<(), String> {
    let home = crate::runtime(licensing_csv.as_deref()).await?;
    let rt = crate::tenant_runtime(&home, tenant.as_deref()).await?;
    let rt = rt.as_ref().unwrap_or(&home);
    let bar = crate::progress::Progress::start(json, "license-check");
    let progress = |n: usize| bar.set(format!("{n} users read"));
    let report = check_licenses(&rt.check_deps(), &rt.tenant_run(), &rt.policy, &progress).await;
    bar.finish();
    if !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        let tenant = &rt.microsoft.tenant_id;
        home.record_run(Job::LicenseCheck, tenant, report.as_ref().map(|_| ()))
            .await;
    }
    let report = report.map_err(|e| format!("{e} ({})", e.kind()))?;
    // A skipped run found nothing: it must not overwrite a previous run's CSV with an empty one.
    if let Some(path) = csv.filter(|_| report.skipped.is_none()) {
        write_csv(&path, &report).map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else if let Some(why) = &report.skipped {
        println!("licensewatch check: skipped: {why}");
    } else {
        print_human(rt, &report);
    }
    Ok(())
}

fn label(rt: &Runtime, sku_id: &str, part: &str) -> String {
    rt.catalog.sku_label(sku_id, part)
}

/// ", SKU tried: ..." for a failed assignment: the SKUs with where they are known from, or that nobody knows.
pub(crate) fn attempted(
    rt: &Runtime,
    skus: Option<&[String]>,
    source: Option<licensewatch_core::domain::findings::AttemptSource>,
) -> String {
    use licensewatch_core::domain::findings::AttemptSource;
    match (skus, source) {
        (_, None) => String::new(),
        (Some(skus), Some(source)) if !skus.is_empty() && source != AttemptSource::Unknown => {
            let names: Vec<String> = skus.iter().map(|s| label(rt, s, "")).collect();
            format!(", SKU tried: {} (from {source})", names.join(", "))
        }
        _ => ", SKU tried: unknown (the failure record names none)".to_string(),
    }
}

/// A finding in one line, for people: its kind's own words, in the tenant's time zone.
pub(crate) fn describe(rt: &Runtime, f: &Finding) -> String {
    match &f.detail {
        Detail::UnlicensedMailbox { .. }
        | Detail::LicenseAssignmentError { .. }
        | Detail::SharedMailboxSignIn { .. } => describe_user(rt, f),
        Detail::LicenseRemoved { .. }
        | Detail::LicenseAdded { .. }
        | Detail::OverlappingLicenses { .. }
        | Detail::LicensedDisabledAccount { .. } => describe_holding(rt, f),
        Detail::SkuCapacity { .. }
        | Detail::MassDelicensing { .. }
        | Detail::SubscriptionLapsing { .. }
        | Detail::UnusedSeatsBeforeRenewal { .. }
        | Detail::SeatForecast { .. }
        | Detail::SeatWaitingRoom { .. } => describe_tenant(rt, f),
    }
}

/// A user's mailbox or licence error.
fn describe_user(rt: &Runtime, f: &Finding) -> String {
    let day = |t: &chrono::DateTime<chrono::Utc>| rt.time_zone.format(t, "%Y-%m-%d %H:%M %Z");
    match &f.detail {
        Detail::UnlicensedMailbox {
            user_principal_name,
            case_type,
            grace_evidence,
            access_ends_at,
            data_deleted_at,
            days_left,
            attempted_sku_ids,
            attempted_sku_source,
            ..
        } => format!(
            "{user_principal_name}: mailbox without an Exchange licence ({case_type}, evidence {grace_evidence}{}); access ends {}, data deleted {}; {days_left} day(s) left",
            attempted(rt, attempted_sku_ids.as_deref(), *attempted_sku_source),
            day(access_ends_at),
            day(data_deleted_at)
        ),
        Detail::LicenseAssignmentError {
            user_principal_name,
            sku_id,
            sku_part_number,
            error,
            group_display_name,
            cause,
            ..
        } => {
            let via = group_display_name
                .as_deref()
                .map(|g| format!(" via group '{g}'"))
                .unwrap_or_default();
            let why = cause
                .as_ref()
                .map(|c| {
                    format!(
                        " (blocked by {} {})",
                        label(rt, &c.sku_id, &c.sku_part_number),
                        c.error
                    )
                })
                .unwrap_or_default();
            format!(
                "{user_principal_name}: {} {error}{via}{why}",
                label(rt, sku_id, sku_part_number)
            )
        }
        Detail::SharedMailboxSignIn {
            user_principal_name,
            mailbox_purpose,
            ..
        } => format!(
            "{user_principal_name}: a {mailbox_purpose} mailbox needs no licence, but its account can sign in: block sign-in"
        ),
        Detail::LicenseRemoved { .. }
        | Detail::LicenseAdded { .. }
        | Detail::OverlappingLicenses { .. }
        | Detail::LicensedDisabledAccount { .. } => describe_holding(rt, f),
        Detail::SkuCapacity { .. }
        | Detail::MassDelicensing { .. }
        | Detail::SubscriptionLapsing { .. }
        | Detail::UnusedSeatsBeforeRenewal { .. }
        | Detail::SeatForecast { .. }
        | Detail::SeatWaitingRoom { .. } => describe_tenant(rt, f),
    }
}

/// What a user holds: a licence gained or lost, overlapping licences, a disabled account's licences.
fn describe_holding(rt: &Runtime, f: &Finding) -> String {
    match &f.detail {
        Detail::LicenseRemoved {
            user_principal_name,
            sku_id,
            sku_part_number,
            actor,
            explained,
            ..
        }
        | Detail::LicenseAdded {
            user_principal_name,
            sku_id,
            sku_part_number,
            actor,
            explained,
            ..
        } => {
            let verb = if f.kind() == "license_added" {
                "gained"
            } else {
                "lost"
            };
            let who = match (explained, actor) {
                (true, Some(a)) => format!(" (by {a})"),
                (true, None) => " (audited)".into(),
                (false, _) => " (no audit record explains it yet)".into(),
            };
            format!(
                "{user_principal_name} {verb} {}{who}",
                label(rt, sku_id, sku_part_number)
            )
        }
        Detail::OverlappingLicenses {
            user_principal_name,
            remove_sku_id,
            remove_sku_part_number,
            keep_sku_id,
            keep_sku_part_number,
            shared_services,
            via_group,
            ..
        } => format!(
            "{user_principal_name}: {} and {} both give {}; remove {}{}",
            label(rt, remove_sku_id, remove_sku_part_number),
            label(rt, keep_sku_id, keep_sku_part_number),
            shared_services.join(", "),
            label(rt, remove_sku_id, remove_sku_part_number),
            via_group
                .as_ref()
                .map(|g| format!(" (it comes from group {g}: leave the group)"))
                .unwrap_or_default()
        ),
        Detail::LicensedDisabledAccount {
            user_principal_name,
            sku_ids,
            ..
        } => format!(
            "{user_principal_name}: disabled account still holds {}",
            sku_ids
                .iter()
                .map(|s| label(rt, s, ""))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Detail::UnlicensedMailbox { .. }
        | Detail::LicenseAssignmentError { .. }
        | Detail::SharedMailboxSignIn { .. } => describe_user(rt, f),
        Detail::SkuCapacity { .. }
        | Detail::MassDelicensing { .. }
        | Detail::SubscriptionLapsing { .. }
        | Detail::UnusedSeatsBeforeRenewal { .. }
        | Detail::SeatForecast { .. }
        | Detail::SeatWaitingRoom { .. } => describe_tenant(rt, f),
    }
}

/// The tenant's seats and subscriptions, and mass delicensing.
fn describe_tenant(rt: &Runtime, f: &Finding) -> String {
    match &f.detail {
        Detail::SkuCapacity {
            sku_id,
            sku_part_number,
            enabled,
            consumed,
            reason,
            ..
        } => format!(
            "{}: {consumed}/{enabled} seats used; {reason}",
            label(rt, sku_id, sku_part_number)
        ),
        Detail::MassDelicensing {
            removed_count,
            threshold,
            sample_users,
        } => format!(
            "{removed_count} users lost licences within the mass-delicensing window (threshold {threshold}), e.g. {}",
            sample_users.join(", ")
        ),
        Detail::SubscriptionLapsing {
            subscription_id,
            sku_id,
            sku_part_number,
            total_licenses,
            users_affected,
            reason,
            ..
        } => format!(
            "{} subscription {subscription_id} ({total_licenses} seats) {reason}; {users_affected} user(s) will have no seat",
            label(rt, sku_id, sku_part_number)
        ),
        Detail::UnusedSeatsBeforeRenewal {
            sku_id,
            sku_part_number,
            renews_at,
            unassigned,
            total_licenses,
            ..
        } => format!(
            "{}: {unassigned} of {total_licenses} seats unassigned, renewing on {}: reduce the subscription before then",
            label(rt, sku_id, sku_part_number),
            renews_at.format("%Y-%m-%d")
        ),
        Detail::SeatForecast {
            sku_id,
            sku_part_number,
            available,
            rate_per_day,
            days_until_exhausted,
            exhausted_at,
            seats_to_buy,
            horizon_days,
            renewal_at,
            by_group,
            ..
        } => format!(
            "{}: {available} seat(s) free run out in about {days_until_exhausted} day(s) ({}) at {rate_per_day} a day (net, last month); buy {seats_to_buy} to last {horizon_days} days{}{}",
            label(rt, sku_id, sku_part_number),
            rt.time_zone.format(exhausted_at, "%Y-%m-%d"),
            renewal_at
                .map(|r| format!(
                    "; the subscription renews {}",
                    rt.time_zone.format(&r, "%Y-%m-%d")
                ))
                .unwrap_or_default(),
            by_group
                .iter()
                .find(|g| g.net_change > 0)
                .map(|g| format!(
                    "; most through group {} (+{} a day)",
                    g.group_name.as_deref().unwrap_or(&g.group_id),
                    g.rate_per_day
                ))
                .unwrap_or_default()
        ),
        Detail::SeatWaitingRoom {
            sku_id,
            sku_part_number,
            waiting,
            waiting_since,
            longest_wait_hours,
            seats_to_buy,
        } => format!(
            "{}: {waiting} user(s) wait for a seat, the first since {} ({longest_wait_hours} h); {}",
            label(rt, sku_id, sku_part_number),
            rt.time_zone.format(waiting_since, "%Y-%m-%d %H:%M"),
            match seats_to_buy {
                0 => "seats are free: they will be let in".to_string(),
                n => format!("buy {n} seat(s) to let everyone in"),
            }
        ),
        Detail::UnlicensedMailbox { .. }
        | Detail::LicenseAssignmentError { .. }
        | Detail::SharedMailboxSignIn { .. } => describe_user(rt, f),
        Detail::LicenseRemoved { .. }
        | Detail::LicenseAdded { .. }
        | Detail::OverlappingLicenses { .. }
        | Detail::LicensedDisabledAccount { .. } => describe_holding(rt, f),
    }
}

fn print_human(rt: &Runtime, report: &CheckReport) {
    println!(
        "licensewatch check: tenant {} at {}: {} users, {} critical, {} warning, {} info",
        report.tenant_id,
        report.run_at.to_rfc3339(),
        report.users_scanned,
        report.counts.critical,
        report.counts.warning,
        report.counts.info
    );
    for sev in [Severity::Critical, Severity::Warning, Severity::Info] {
        let items: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| f.severity == sev)
            .collect();
        if items.is_empty() {
            continue;
        }
        println!("\n{} ({})", format!("{sev:?}").to_uppercase(), items.len());
        for f in items {
            let suppressed = f
                .suppressed
                .as_ref()
                .map(|s| {
                    format!(
                        " (suppressed until {}: {})",
                        s.until.format("%Y-%m-%d"),
                        s.reason
                    )
                })
                .unwrap_or_default();
            println!("  [{}] {}{suppressed}", f.kind(), describe(rt, f));
        }
    }
    if !report.disabled_mailboxes.is_empty() {
        println!("\nShared or resource mailboxes on disabled accounts (not grace cases):");
        for m in &report.disabled_mailboxes {
            println!(
                "  {}{}",
                m.user_principal_name,
                if m.licensed { " (licensed)" } else { "" }
            );
        }
    }
    if report.first_run {
        println!("\nFirst run: licence changes are reported from the next run on.");
    }
}

fn write_csv(path: &std::path::Path, report: &CheckReport) -> std::io::Result<()> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record([
        "kind",
        "severity",
        "user_principal_name",
        "sku_id",
        "detail_json",
    ])?;
    for f in &report.findings {
        let v = serde_json::to_value(f).unwrap_or_default();
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        w.write_record([
            f.kind().to_string(),
            s("severity"),
            s("user_principal_name"),
            s("sku_id"),
            v.to_string(),
        ])?;
    }
    w.flush()
}

/// Prints a user's licence history as licensewatch saw it.
pub(crate) async fn history(json: bool, user: &str) -> Result<(), String> {
    let (settings, policy) = load_config().map_err(|e| e.to_string())?;
    let tenant = settings.tenant_id.clone().unwrap_or_default();
    let store = match &settings.state {
        licensewatch_core::config::StateLocation::Sqlite(p) => {
            licensewatch_core::adapters::sqlite::SqliteStore::open(p).map_err(|e| e.to_string())?
        }
        other => {
            return Err(format!(
                "history needs a local state store; {other:?} is not supported in this build"
            ));
        }
    };
    let _ = policy;
    let entries = store
        .history(&tenant, user)
        .await
        .map_err(|e| e.to_string())?;
    // A licence already held on the first run is dated by the audit logs when they saw it assigned.
    let events = store
        .license_events(&tenant, Some(user))
        .await
        .map_err(|e| e.to_string())?;
    let assigned = |e: &licensewatch_core::ports::store::HistoryEntry| {
        e.baseline
            .then(|| {
                licensewatch_core::domain::license_event::assigned_before(&events, &e.sku_id, e.at)
            })
            .flatten()
    };
    if json {
        let history: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                if let Some(a) = assigned(e) {
                    v["assigned_at"] = serde_json::json!(a.at);
                    v["assigned_by"] = serde_json::json!(a.actor);
                    v["assigned_source"] = serde_json::json!(a.source);
                }
                v
            })
            .collect();
        println!("{}", serde_json::json!({"user": user, "history": history}));
        return Ok(());
    }
    if entries.is_empty() {
        println!("no licence history for {user} (has `licensewatch check` run?)");
        return Ok(());
    }
    let catalog = licensewatch_core::domain::catalog::Catalog::embedded();
    for e in &entries {
        let since = match (e.baseline, assigned(e)) {
            (true, Some(a)) => format!(
                "assigned {} by {} (audit log, {}); held on the first run {}",
                a.at.to_rfc3339(),
                a.actor.as_deref().unwrap_or("unknown"),
                a.source,
                e.at.to_rfc3339()
            ),
            (true, None) => format!("held before {} (first run)", e.at.to_rfc3339()),
            (false, _) => format!("{} {}", e.change, e.at.to_rfc3339()),
        };
        println!(
            "{}  {}  {since}",
            e.user_principal_name,
            catalog.sku_label(&e.sku_id, "")
        );
    }
    Ok(())
}

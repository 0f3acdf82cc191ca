//! `licensewatch notify`: the grace-period-notify use case with the configured channels plus the console.

use licensewatch_core::adapters::notify::ConsoleChannel;
use licensewatch_core::usecases::notify_grace_period::notify_grace_period;

/// Sends the notices that are due (or, with `dry_run`, shows them).
pub(crate) async fn run(json: bool, dry_run: bool) -> Result<(), String> {
    let rt = crate::runtime(None).await?;
    // The console shows every notice locally; with --json it stays quiet so stdout holds one JSON document.
    let channels = rt
        .notify_channels(Some(Box::new(ConsoleChannel::new(json))))
        .map_err(|e| e.to_string())?;
    let tenant = rt.tenant_run().tenant_id;
    let report =
        notify_grace_period(&rt.notify_deps(&channels), &tenant, &rt.policy, dry_run).await;
    if !dry_run && !report.as_ref().is_ok_and(|r| r.skipped.is_some()) {
        let job = licensewatch_core::domain::tenant_status::Job::GracePeriodNotify;
        rt.record_run(job, &tenant, report.as_ref().map(|_| ()))
            .await;
    }
    let report = report.map_err(|e| format!("{e} ({})", e.kind()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    if let Some(why) = &report.skipped {
        println!("licensewatch notify: skipped: {why}");
        return Ok(());
    }
    let list = if dry_run {
        &report.would_send
    } else {
        &report.sent
    };
    println!(
        "licensewatch notify{}: {} notice(s) {}, {} already sent earlier, {} channel failure(s)",
        if dry_run { " (dry run)" } else { "" },
        list.len(),
        if dry_run { "would be sent" } else { "sent" },
        report.skipped_already_sent,
        report.failed.len()
    );
    for n in list {
        println!(
            "  {} {} {} {} via {} to {}{}",
            n.audience,
            n.kind,
            n.threshold_days
                .map(|t| format!("{t}d"))
                .unwrap_or_default(),
            if n.user_principal_name.is_empty() {
                &n.case_id
            } else {
                &n.user_principal_name
            },
            n.channel,
            n.recipient,
            n.deadline
                .map(|d| format!(" (deadline {})", d.to_rfc3339()))
                .unwrap_or_default()
        );
    }
    for f in &report.failed {
        println!(
            "  FAILED {} to {}: {} ({} notice(s) stay due)",
            f.channel, f.recipient, f.error, f.notices
        );
    }
    Ok(())
}
